"""The JSON tables kept in the cache folder between runs."""

from __future__ import annotations

import logging
import threading

import pytest

from remaster.kept import KeptTable


def test_a_table_is_shared_by_processes_through_its_file(tmp_path):
    path = tmp_path / "cache" / "table.json"
    KeptTable(path, "thing").put("a", 1)
    again = KeptTable(path, "thing")
    assert again.get("a") == 1
    assert again.get("b") is None


def test_changes_from_many_threads_are_all_kept(tmp_path):
    table = KeptTable(tmp_path / "table.json", "count")
    threads = [threading.Thread(target=lambda: table.change("n", lambda n: (n or 0) + 1)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert table.get("n") == 20


def test_a_refused_change_leaves_the_table_as_it_was(tmp_path):
    table = KeptTable(tmp_path / "table.json", "pin")
    table.put("file", {"sha256": "abc"})

    def refuse(entry):
        raise ValueError("changed")

    with pytest.raises(ValueError):
        table.change("file", refuse)
    assert table.get("file") == {"sha256": "abc"}


def test_a_damaged_table_counts_as_empty_and_an_unwritable_one_warns(tmp_path, caplog):
    damaged = tmp_path / "table.json"
    damaged.write_text("{not json")
    assert KeptTable(damaged, "thing").get("a") is None
    blocked = tmp_path / "file"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="remaster.kept"):
        KeptTable(blocked / "table.json", "measured overlap").put("a", 1)
    assert "Could not keep the measured overlap" in caplog.text
