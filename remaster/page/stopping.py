"""What stops a request's work: the page's Stop buttons, Gradio's cancel (an API client's ``job.cancel()``), and a
client that went away (a tab closed, an API client killed). Each sets the request's ``cancel`` event, which the tile
scheduler and the networks' stop points check: the work ends between two layers, within a fraction of a second."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import gradio as gr

__all__ = ["STOPPED", "Stopped", "Stops", "cancellable", "session_of_request", "stoppable"]

log = logging.getLogger(__name__)
T = TypeVar("T")

STOPPED = "Stopped — nothing was kept."
"""What a tab says when its Stop button ended its work (in its result line, or as an error where it has none)."""
_WATCH_SECONDS = 0.25
"""How often a request's work asks whether its client is still there."""
_KEEP_PRESSES = 3600.0
"""Seconds a Stop press is remembered for work of its tab still waiting in the queue."""


class Stopped(gr.Error):
    """The visitor pressed Stop and the work ended early; the message says what was kept, if anything."""

    def __init__(self, message: str = STOPPED) -> None:
        super().__init__(message, print_exception=False)


def stoppable(endpoint: Callable[..., Awaitable[T]], stopped: Callable[[Stopped], T]) -> Callable[..., Awaitable[T]]:
    """``endpoint`` answering ``stopped(the stop)`` (its outputs saying so) instead of failing when Stop ended it.

    For the page's buttons; the examples keep the failure, so that a stopped run is not cached as their result. The
    signature stays ``endpoint``'s (``inspect.signature`` follows ``__wrapped__``), so ``gr.Progress`` is injected.
    """

    @functools.wraps(endpoint)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await endpoint(*args, **kwargs)
        except Stopped as stop:
            return stopped(stop)

    return wrapper


class Stops:
    """The Stop buttons' presses, by session and tab: a press stops that tab's work of the session that was asked
    for before it, running (at once) or still waiting in the queue (as it starts)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pressed: dict[tuple[str, str], float] = {}
        self._running: dict[tuple[str, str], set[threading.Event]] = {}

    def press(self, session: str, tab: str) -> None:
        """Stop the work of ``session`` on ``tab``."""
        now = time.monotonic()
        with self._lock:
            self._pressed = {key: at for key, at in self._pressed.items() if now - at < _KEEP_PRESSES}
            self._pressed[(session, tab)] = now
            for cancel in self._running.get((session, tab), ()):
                cancel.set()

    def pressed_since(self, session: str, tab: str, asked: float) -> bool:
        """Whether Stop was pressed on ``tab`` of ``session`` after the moment ``asked`` (``time.monotonic()``)."""
        with self._lock:
            return self._pressed.get((session, tab), -1.0) >= asked

    def attach(self, session: str, tab: str, cancel: threading.Event) -> None:
        """Let a press on ``tab`` of ``session`` set ``cancel``, until :meth:`detach`."""
        with self._lock:
            self._running.setdefault((session, tab), set()).add(cancel)

    def detach(self, session: str, tab: str, cancel: threading.Event) -> None:
        """The work of ``cancel`` has ended."""
        with self._lock:
            running = self._running.get((session, tab), set())
            running.discard(cancel)
            if not running:
                self._running.pop((session, tab), None)


async def cancellable(work: Callable[[threading.Event], T], stops: Stops | None = None, tab: str = "") -> T:
    """Run ``work(cancel)`` in a worker thread; set ``cancel`` so that the work stops between two of the network's
    layers, instead of running on unseen, when Stop is pressed on ``tab`` (``stops`` keeps the presses), Gradio
    cancels the request, or its client goes away.

    Raises:
        Stopped: Stop was pressed for this work (before it started, or while it ran).
    """
    cancel = threading.Event()
    event = _gradio_event()
    asked = getattr(event, "enqueue_time", time.monotonic())
    session = getattr(event, "session_hash", None)
    listening = stops is not None and session is not None
    if listening and stops.pressed_since(session, tab, asked):
        raise Stopped()
    watching = asyncio.ensure_future(_watch(event, cancel)) if event is not None else None
    if listening:
        stops.attach(session, tab, cancel)
    try:
        return await anyio.to_thread.run_sync(functools.partial(work, cancel), abandon_on_cancel=True)
    except Exception as error:
        if listening and stops.pressed_since(session, tab, asked):
            # A video keeps what it finished, and its error says how much.
            raise Stopped(_kept(str(getattr(error, "message", error)))) from None
        raise
    except BaseException:
        cancel.set()
        raise
    finally:
        if watching is not None:
            watching.cancel()
        if listening:
            stops.detach(session, tab, cancel)


def _kept(message: str) -> str:
    """What a stopped work's error says was kept, as the page says it: "nothing" unless it says otherwise."""
    if "kept" not in message:
        return STOPPED
    return f"Stopped — {message.removeprefix('Stopped: ').rstrip('.')}."


async def _watch(event: object, cancel: threading.Event) -> None:
    """Set ``cancel`` when Gradio marks the request's client as gone."""
    while not cancel.is_set():
        if not getattr(event, "alive", True):
            log.info("The client of a request went away; its work stops")
            cancel.set()
            return
        await asyncio.sleep(_WATCH_SECONDS)


def _gradio_event() -> object | None:
    """Gradio's queue event of the request this task handles (None outside a queued request): its session, when it
    was asked for, and whether its client is still there.

    Gradio marks a request whose client went away as no longer ``alive`` (when its event stream closes) but lets
    its function run on, and has no public way to ask: ``gr.Request.is_disconnected()`` asks about the POST that
    queued the request, which ended long before. So the event is looked up in Gradio's queue.
    """
    from gradio.context import LocalContext

    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    events = getattr(getattr(blocks, "_queue", None), "event_ids_to_events", None)
    event = events.get(event_id) if isinstance(events, dict) and event_id else None
    return event if hasattr(event, "alive") else None


def session_of_request() -> str | None:
    """The session of the request this task handles (queued or not), if any."""
    from gradio.context import LocalContext

    return getattr(LocalContext.request.get(None), "session_hash", None)
