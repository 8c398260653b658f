"""Guards of the web demo against hostile clients that are not about one request's content.

* :class:`HostAllowList` — answers only requests whose ``Host`` header names this server. Why: a page on any
  web site can point a DNS name it controls at 127.0.0.1 ("DNS rebinding"); the browser then sends that name
  as ``Host`` and lets the page read the answers (``/api/sample``, ``/api/gallery``: the dataset's images).
  Refusing foreign names closes that door; a real browser cannot forge the header.
* :class:`HeaderTimeoutH11` — closes a connection whose request headers are not complete
  :data:`HEADER_TIMEOUT` seconds after it opened or after its previous response. Why: uvicorn arms its
  keep-alive timer only after a response and disarms it on every byte received, so a client that opens
  connections and sends a header byte now and then ("slowloris") holds them open forever.

The body size limit is FastAPI's own ``max_body_size`` (counted while the body streams in; see
:func:`posetransfer.apps.serve.create_app`).
"""
from __future__ import annotations

import asyncio
import json
from typing import Iterable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Names a loopback server always answers to.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
#: Interfaces meaning "every interface": the server is reachable under any name, no allow-list applies.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})
#: Seconds a client has to finish its request headers.
HEADER_TIMEOUT = 10.0


def allowed_host_names(host: str) -> set[str] | None:
    """The ``Host`` names a server listening on ``host`` answers to; None = any (a wildcard interface)."""
    host = host.strip().strip("[]").lower()
    if host in WILDCARD_HOSTS:
        return None
    return set(LOOPBACK_NAMES) | {host}


def host_name(header: str) -> str:
    """``example.org:8000`` → ``example.org``; ``[::1]:8000`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostAllowList:
    """ASGI middleware: 421 with a one-line JSON error for a ``Host`` outside ``names``."""

    def __init__(self, app, names: Iterable[str]) -> None:
        self.app = app
        self.names = frozenset(n.lower() for n in names)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        raw = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(raw) in self.names:
            return await self.app(scope, receive, send)
        shown = raw[:80] or "(none)"
        body = json.dumps({"error": f"Host header {shown!r} is not a name of this server (it answers to "
                                    f"{', '.join(sorted(self.names))}; start it with --host NAME to add one)"})
        await send({"type": "http.response.start", "status": 421,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline for the request headers (see the module docstring)."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _cancel_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()          # headers still unfinished: drop the connection

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:   # a request line and headers have arrived
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_timer()       # the next request on a kept-alive connection has a deadline too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)


def protocol_with_timeout(seconds: float) -> type[HeaderTimeoutH11]:
    """:class:`HeaderTimeoutH11` with another deadline (tests use a short one)."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout": float(seconds)})
