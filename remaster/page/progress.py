"""What the page's progress bar says of a request: the share done and its stage, the time left, and the
background work that slows it. The API's ``job.status()`` and MCP's progress notifications carry the same."""

from __future__ import annotations

import time
from collections.abc import Callable

from .. import background

__all__ = ["PageProgress", "from_an_agent", "time_left"]

_SETTLE_SECONDS = 2.0
"""The time left is said once the work has gone on this long: the first moments time the start, not the work."""


def time_left(seconds: float) -> str:
    """``seconds`` as the page says the time left: "about 40 s left", "about 3 min left"."""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {round(seconds / 5) * 5} s left"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


def from_an_agent() -> bool:
    """Whether the request Gradio is handling in this task came through its MCP server: MCP's Streamable HTTP
    clients send these headers, which that server passes on to the request it queues."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    try:
        headers = {name.lower() for name in dict(request.headers)} if request is not None else set()
    except (AttributeError, TypeError):
        return False
    return bool(headers & {"mcp-session-id", "mcp-protocol-version"})


class PageProgress:
    """Called as the pipeline's ``progress(fraction, desc)``; tells Gradio's ``gr.Progress`` (or any such callable)
    the fraction, the stage, the time left at the rate seen so far, and any build running in the background.

    Args:
        progress: Gradio's progress tracker of the request, or None (no one is watching).
        steps: say the fraction as percent steps (``(42, 100)``) rather than as a fraction: Gradio's MCP server
            passes a progress's words on to the agent only when it counts steps.
        clock: the time, in seconds; replaced in tests.
    """

    def __init__(
        self,
        progress: Callable[..., object] | None,
        steps: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._progress = progress
        self._steps = steps
        self._clock = clock
        self._since: tuple[float, float] | None = None

    def __call__(self, fraction: float, desc: str | None = None) -> None:
        if self._progress is None:
            return
        parts = [desc or "Working"]
        left = self._left(fraction)
        if left is not None and "left" not in parts[0]:  # a video's progress says its own
            parts.append(left)
        builds = background.running()
        if builds:
            parts.append(f"slower while {' and '.join(builds)} runs in the background")
        text = " · ".join(parts)
        if self._steps:
            self._progress((round(fraction * 100), 100), desc=text, unit="%")
        else:
            self._progress(fraction, desc=text)

    def _left(self, fraction: float) -> str | None:
        """The time left at the rate since the work first moved, once that rate means something."""
        now = self._clock()
        if self._since is None or fraction < self._since[1]:  # the first move, or the work began again
            self._since = (now, fraction) if fraction > 0 else None
            return None
        started, first = self._since
        if now - started < _SETTLE_SECONDS or fraction - first < 0.005:
            return None
        return time_left((now - started) * (1 - fraction) / (fraction - first))
