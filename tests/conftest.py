"""The test session's setup: the environment, the test layers, the processes' grouping, and the fixtures.

The fixtures and their heavy imports (torch, remaster's engine) live in :mod:`tests.fixtures`, loaded as a plugin
where tests run: pytest-xdist's controller, which runs none, starts its workers 6 s sooner without them.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before huggingface_hub or gradio is imported: no telemetry, no stray offline mode,
# and a private cache so the tests never read or write the user's.
SANDBOX = Path(tempfile.mkdtemp(prefix="remaster-tests-"))
os.environ["HF_HUB_OFFLINE"] = "0"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = str(SANDBOX / "hf-home")
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["GRADIO_TEMP_DIR"] = str(SANDBOX / "gradio")
os.environ["GRADIO_EXAMPLES_CACHE"] = str(SANDBOX / "gradio-examples")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The test processes already keep every core busy: each (and what it starts) computes on one thread, as
    # several threads each would only wait for each other (6:23 instead of 7:39 for the suite on two cores).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    """Load the fixtures where tests run."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):  # not the controller
        config.pluginmanager.import_plugin("tests.fixtures")


_UNGROUPED = pytest.StashKey[str]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test not marked ``integration`` or ``browser`` is a ``unit`` test (``python -m pytest -m unit``)."""
    for item in items:
        if not any(item.get_closest_marker(layer) for layer in ("integration", "browser")):
            item.add_marker(pytest.mark.unit)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Under ``--dist loadgroup`` the tests of one ``xdist_group`` must run in one process (one local Ray at a time,
    one conversion cache): pytest-xdist marks them by the group's name at the end of their ids. pytest 9.2 silently
    stops that (pytest-xdist#1386); such tests then fail, saying why, rather than run two Rays at once."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        group = item.get_closest_marker("xdist_group")
        if group is not None and not item.nodeid.endswith(f"@{group.args[0]}"):
            item.stash[_UNGROUPED] = group.args[0]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if _UNGROUPED in item.stash:
        pytest.fail(
            f"pytest-xdist did not keep the {item.stash[_UNGROUPED]!r} tests in one process: install the pytest of "
            "requirements-dev.txt (pytest 9.2 stops it: pytest-xdist#1386)",
            pytrace=False,
        )
