"""Can a download start at all? One short TCP connect to the host (or to the proxy for it), answered once
per host and process, so that a machine without network fails at once with the real advice instead of
after a client's retries (the Hub client retries for 20-40 s)."""

from __future__ import annotations

import functools
import socket
import urllib.parse
import urllib.request

__all__ = ["CONNECT_TIMEOUT", "unreachable_reason"]

CONNECT_TIMEOUT = 1.5  # seconds; a reachable host answers a TCP connect far sooner


def unreachable_reason(url: str) -> str | None:
    """Why ``url`` cannot be downloaded from here (e.g. "huggingface.co:443 did not answer within 1.5 s"),
    or None when its host (or the proxy for its scheme) accepts a connection. Non-HTTP URLs are None."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return None
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname):
        parsed = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if parsed.scheme == "https" else 80
    return _connect(parsed.hostname or "", parsed.port or default_port)


@functools.cache
def _connect(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except Exception as error:  # DNS failure, refusal, timeout, or a sandbox that forbids sockets
        return f"{host}:{port} did not answer within {CONNECT_TIMEOUT:g} s ({type(error).__name__}), so there is probably no network"
