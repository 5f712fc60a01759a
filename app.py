"""The remaster web app: ``python app.py``, or the entry point of a Hugging Face Space."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_STARTING = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>remaster is starting</title></head>
<body style="font-family: system-ui, sans-serif; margin: 3em auto; max-width: 40em; padding: 0 1em">
<h1>remaster</h1><p>Starting: the page appears here by itself in a few seconds.</p>
<script>
setInterval(() => fetch(location.href, {cache: "no-store"})
  .then((answer) => answer.headers.get("X-Remaster-Starting") || location.reload())
  .catch(() => {}), 1000);
</script></body></html>"""


class _Starting(BaseHTTPRequestHandler):
    """Answers while the app starts: the page says so and reloads itself once the app answers; the API is 503."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's spelling
        page = "text/html" in self.headers.get("Accept", "")
        self.send_response(200 if page else 503)
        self.send_header("X-Remaster-Starting", "1")
        self.send_header("Retry-After", "1")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Type", "text/html; charset=utf-8" if page else "text/plain")
        body = _STARTING if page else b"remaster is starting; try again in a second\n"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        """Quiet: the app's own log starts in a moment."""


def _serve_while_starting() -> ThreadingHTTPServer | None:
    """Answer at the app's address at once, while Gradio and torch load (10 to 20 s on a busy two-core machine);
    None where the address is taken (Gradio then picks another port, as it does)."""
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    try:
        server = ThreadingHTTPServer((host, int(os.environ.get("GRADIO_SERVER_PORT", "7860"))), _Starting)
    except (OSError, ValueError):
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="remaster-starting", daemon=True).start()
    return server


if __name__ == "__main__":
    _starting = _serve_while_starting()

# Loaded after the address answers: importing Gradio and torch is most of the start.
from remaster import Enhancer, logs  # noqa: E402
from remaster.page import build_demo, launch_options  # noqa: E402

# Before the page starts its downloads in the background, so their messages come out like the rest.
logs.configure()

enhancer = Enhancer()
demo = build_demo(enhancer)

if __name__ == "__main__":
    if _starting is not None:
        _starting.shutdown()
        _starting.server_close()
    demo.launch(**launch_options(enhancer.settings))
