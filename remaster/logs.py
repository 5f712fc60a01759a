"""Where log messages go when remaster runs as a program (the app, the command lines): standard error, once each."""

from __future__ import annotations

import logging

__all__ = ["configure"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int = logging.INFO, fmt: str = FORMAT) -> None:
    """Log to standard error through the root logger, and only through it.

    huggingface_hub gives its loggers a handler of their own at import and lets them
    propagate too, so under any root handler each of its messages would print twice:
    its handler is removed, and its messages come through ours.
    """
    logging.basicConfig(level=level, format=fmt)
    from huggingface_hub.utils import logging as hub_logging

    hub = hub_logging.get_logger()
    for handler in list(hub.handlers):
        if type(handler) is logging.StreamHandler:
            hub.removeHandler(handler)
