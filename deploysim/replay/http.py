"""A small HTTP/1.1 keep-alive client for the replay engine's POSTs.

Responses are parsed by httptools (the parser uvicorn uses); this module only keeps a pool
of connections to one host. It costs about 0.1 ms of CPU per request, a third of aiohttp's,
which is what lets one process keep hundreds of requests in flight. No proxies, redirects or
compression: the engine falls back to httpx when a proxy is configured (see deploysim.replay.client).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import NamedTuple
from urllib.parse import urlsplit

import httptools

IDLE_S = 4.0  # drop pooled connections idle longer than this (servers close idle ones: uvicorn after 5 s)


class ConnectionFailed(Exception):
    """The connection failed or closed before a whole response arrived.

    kind: "dns" (the host name does not resolve), "refused" (nothing listens there),
    "connect" (another failure to connect) or "broken" (the response was cut or unparseable)."""

    def __init__(self, reason: str, kind: str = "broken") -> None:
        super().__init__(reason)
        self.kind = kind


class Reply(NamedTuple):
    status: int
    retry_after: bytes | None
    body: bytes
    content_type: bytes | None = None


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.retry_after: bytes | None = None
        self.content_type: bytes | None = None
        self.body: list[bytes] = []
        self.headers_done = False
        self.framed = False  # Content-Length or chunked: the end is known without the connection closing

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.framed:  # body delimited by the close
            self._finish()
        else:
            self._fail("connection closed before the response was complete")

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail("unparseable HTTP response")
            self.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        low = name.lower()
        if low == b"retry-after":
            self.retry_after = value
        elif low == b"content-type":
            self.content_type = value
        elif low in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if not self.parser.should_keep_alive():
            self.closed = True  # the server will close it: never reuse
        self._finish()

    # helpers
    def _finish(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _fail(self, reason: str) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionFailed(reason))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Http1Pool:
    """POSTs to one origin over pooled keep-alive connections (one request per connection at a time)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {u.scheme}://{u.hostname or ''}")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if u.scheme == "https" else None
        self.path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        host = self.host if u.port is None else f"{self.host}:{u.port}"
        if ":" in self.host and u.port is None:
            host = f"[{self.host}]"
        fixed = {
            "Host": host,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "deploysim",
            **headers,
        }
        self._head = (f"POST {self.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fixed.items())).encode()
        self._idle: list[_Connection] = []

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < IDLE_S:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
        )
        return conn

    async def post(self, body: bytes, timeout: float) -> Reply:
        """The response (status, Retry-After, body, Content-Type). Raises TimeoutError or ConnectionFailed."""
        conn: _Connection | None = None
        result = None
        try:
            async with asyncio.timeout(timeout):
                try:
                    conn = await self._connection()
                except socket.gaierror:
                    raise ConnectionFailed(f"cannot resolve host {self.host}", "dns") from None
                except ConnectionRefusedError:
                    raise ConnectionFailed("connection refused", "refused") from None
                except OSError as e:
                    raise ConnectionFailed(f"cannot connect ({type(e).__name__})", "connect") from None
                conn._reset()
                conn.waiter = asyncio.get_running_loop().create_future()
                assert conn.transport is not None
                conn.transport.write(self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await conn.waiter
                result = Reply(conn.status, conn.retry_after, b"".join(conn.body), conn.content_type)
        finally:
            if conn is not None:
                conn.waiter = None
                if result is not None and not conn.closed:
                    conn.idle_since = time.monotonic()
                    self._idle.append(conn)
                else:
                    conn.close()  # timed out, cancelled or broken: a late response must not reach the next request
        return result

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
