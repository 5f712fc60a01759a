"""A small HTTP server on 127.0.0.1 that answers like the Hugging Face Hub's file endpoint.

It serves ``/{repo}/resolve/{revision}/{filename}`` with the headers huggingface_hub
needs (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and any other path as a plain
download (standing in for the GitHub release URLs). Tests can make it misbehave on
purpose: serve other bytes than it advertises, fail, or be slow.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Fault:
    """How one path misbehaves."""

    status: int | None = None
    """Answer with this HTTP status instead of the file."""
    body: bytes | None = None
    """Send these bytes instead of the real file (the headers still describe the real one)."""
    delay: float = 0.0
    """Seconds to wait before answering a GET."""
    location: str | None = None
    """Answer with a redirect (302) to this URL."""


@dataclass
class HubServer:
    """The server's state: the files it holds, the faults it plays, the requests it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    hits: Counter = field(default_factory=Counter)
    """GET requests per path."""
    order: list[str] = field(default_factory=list)
    """Paths of GET requests, in the order they arrived."""
    url: str = ""

    def hub_path(self, repo: str, filename: str, revision: str = "main") -> str:
        return f"/{repo}/resolve/{revision}/{filename}"

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return f"{self.url}{path}"

    def reset(self) -> None:
        self.faults.clear()
        self.hits.clear()
        self.order.clear()


def _handler(state: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(send_body=False)

        def do_GET(self) -> None:  # noqa: N802
            state.hits[self.path] += 1
            state.order.append(self.path)
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            fault = state.faults.get(path, Fault())
            data = state.files.get(path)
            if fault.location is not None:
                self.send_response(302)
                self.send_header("Location", fault.location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if fault.status is not None or data is None:
                self.send_response(fault.status or 404)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Error-Code", "EntryNotFound" if data is None else "ServerError")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if send_body and fault.delay:
                time.sleep(fault.delay)
            body = data if fault.body is None else fault.body
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if send_body:
                self.wfile.write(body)

    return Handler


def start() -> tuple[HubServer, ThreadingHTTPServer]:
    """Start a server on a free port of 127.0.0.1 in a background thread."""
    state = HubServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="hub-server", daemon=True).start()
    return state, server
