"""Fetching an image by URL for agents (the MCP tool): public web addresses only, size-limited.

Only ``http`` and ``https``; every address the host name resolves to must be public (no
loopback, private, link-local, multicast or reserved address), the connection goes to the
address that was checked (so a second DNS answer cannot point it elsewhere), each redirect
is checked the same way, and the download stops at ``max_bytes``.
"""

from __future__ import annotations

import ipaddress
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from .errors import InvalidImageError, RemasterError

__all__ = ["fetch_url", "is_public_address"]

_MAX_REDIRECTS = 5
_TIMEOUT = httpx.Timeout(20.0, connect=10.0)


def is_public_address(address: str) -> bool:
    """Whether ``address`` (IPv4 or IPv6) is on the public internet."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


def fetch_url(
    url: str,
    folder: Path,
    max_bytes: int,
    allowed: Callable[[str], bool] = is_public_address,
    what: str = "image",
    error: type[RemasterError] = InvalidImageError,
) -> Path:
    """Download ``url`` into ``folder`` (under a generated name) and return the file's path.

    Args:
        allowed: which resolved addresses may be contacted; public ones only, unless a
            test (or the command line, on the user's own machine) says otherwise.
        what: what the URL should hold ("image", "model file"), for messages.
        error: the error to raise.

    Raises:
        RemasterError: (``error``) not an http(s) URL, a host that resolves to a non-public address,
            a failed request, or more than ``max_bytes``; the message says which.
    """
    for _ in range(_MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise error(f"Only http and https {what} URLs can be fetched, not {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = _checked_address(parts.hostname, port, allowed, what, error)
        host = f"[{address}]" if ":" in address else address
        direct = parts._replace(netloc=f"{host}:{parts.port or (443 if parts.scheme == 'https' else 80)}").geturl()
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "remaster"}
        try:
            with (
                httpx.Client(timeout=_TIMEOUT, follow_redirects=False) as client,
                client.stream("GET", direct, headers=headers, extensions={"sni_hostname": parts.hostname}) as response,
            ):
                if response.is_redirect and "location" in response.headers:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise error(f"The {what} URL answered HTTP {response.status_code}")
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise error(_too_large(max_bytes, what))
                return _save(response, folder, max_bytes, Path(parts.path).suffix[:12], what, error)
        except httpx.HTTPError as failure:
            raise error(f"The {what} URL could not be fetched ({failure})") from None
    raise error(f"The {what} URL redirected more than {_MAX_REDIRECTS} times")


def _checked_address(
    hostname: str, port: int, allowed: Callable[[str], bool], what: str, error: type[RemasterError]
) -> str:
    try:
        answers = {info[4][0] for info in socket.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)}
    except socket.gaierror:
        raise error(f"The {what} URL's host {hostname!r} could not be found") from None
    refused = sorted(address for address in answers if not allowed(address))
    if refused or not answers:
        raise error(
            f"The {what} URL's host {hostname!r} is not a public internet address ({', '.join(refused)}); "
            "only public URLs can be fetched"
        )
    return sorted(answers)[0]


def _save(
    response: httpx.Response, folder: Path, max_bytes: int, suffix: str, what: str, error: type[RemasterError]
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"url-{uuid.uuid4().hex}{suffix.lower() if suffix.isascii() else ''}"
    received = 0
    try:
        with path.open("wb") as out:
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise error(_too_large(max_bytes, what))
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _too_large(max_bytes: int, what: str) -> str:
    limit = "REMASTER_MAX_MODEL_MB" if what == "model file" else "REMASTER_MAX_UPLOAD_MB"
    return f"The {what} at that URL is larger than {max_bytes / 2**20:.0f} MB, the limit ({limit})"
