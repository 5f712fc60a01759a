"""The Gradio page and its API endpoints; with ``app.py``, the only code that imports Gradio.

``layout`` builds the page tab by tab (components, then events), ``handlers`` holds the
functions the buttons and the API call, ``stopping`` what ends their work (Stop, a cancel, a
client gone), ``progress`` what the progress bar says, ``previews`` makes the before/after and
100% views from results in memory, ``session`` keeps a visitor's results in their browser,
``status`` the texts on weights, faces, background work and limits, and ``components``
remaster's own upload component.
"""

from .layout import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]
