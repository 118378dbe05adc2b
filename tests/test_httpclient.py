"""The replay engine's HTTP/1.1 client against a raw socket server on 127.0.0.1 that answers
each request with a scripted byte string (framing, keep-alive, broken responses, timeouts)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from deploysim.replay.engine import run_async
from deploysim.replay.http import ConnectionFailed, Http1Pool


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def scripted(replies: list[bytes | None], run) -> tuple[list[bytes], int]:
    """Serve `replies` in order (None: read the request and say nothing); return (requests, connections)."""
    seen: list[bytes] = []
    connections = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            while replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(
                    next(h.split(b":")[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                )
                seen.append(head + await reader.readexactly(length))
                reply = replies.pop(0)
                if reply is None:
                    await asyncio.sleep(5)
                    return
                writer.write(reply)
                await writer.drain()
                if b"Connection: close" in reply or b"Content-Length" not in reply and b"chunked" not in reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            return  # the client closed the connection: nothing more to serve on it
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        await run(Http1Pool(f"http://127.0.0.1:{port}/v1/chat/completions", {"Authorization": "Bearer k"}))
    finally:
        server.close()
    return seen, connections


def test_keep_alive_reuses_one_connection_and_sends_a_well_formed_post() -> None:
    got = []

    async def run(pool: Http1Pool) -> None:
        for i in range(3):
            got.append(await pool.post(b'{"n": %d}' % i, 5))
        pool.close()

    seen, conns = run_async(scripted([ok(b'{"a": 1}'), ok(b'{"a": 2}', b"Retry-After: 7\r\n"), ok(b"{}")], run))
    assert conns == 1
    assert [g[0] for g in got] == [200, 200, 200] and got[1][1] == b"7" and got[1][2] == b'{"a": 2}'
    assert got[0].content_type == b"application/json"
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Authorization: Bearer k\r\n" in seen[0] and seen[2].endswith(b'{"n": 2}')


def test_chunked_close_delimited_and_connection_close_responses() -> None:
    chunked = (
        b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nRetry-After: 2\r\n\r\n"
        b'4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n'
    )
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    unframed = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"b": 2}'
    got = []

    async def run(pool: Http1Pool) -> None:
        for _ in range(3):
            got.append(await pool.post(b"{}", 5))

    _, conns = run_async(scripted([chunked, closing, unframed], run))
    assert [g[:3] for g in got] == [(429, b"2", b'{"a": 1}'), (200, None, b"{}"), (200, None, b'{"b": 2}')]
    assert conns == 2  # the connection the server closed was not reused


@pytest.mark.parametrize(
    "reply, reason",
    [
        (
            b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{"cut',
            "closed before the response was complete",
        ),
        (b"this is not HTTP\r\n\r\n", "unparseable HTTP response"),
    ],
)
def test_a_broken_response_is_a_connection_failure(reply: bytes, reason: str) -> None:
    async def run(pool: Http1Pool) -> None:
        with pytest.raises(ConnectionFailed, match=reason):
            await pool.post(b"{}", 5)
        assert not pool._idle

    run_async(scripted([reply], run))


def test_a_timeout_drops_the_connection_so_a_late_answer_reaches_nobody() -> None:
    async def run(pool: Http1Pool) -> None:
        with pytest.raises(TimeoutError):
            await pool.post(b"{}", 0.3)
        assert not pool._idle
        assert (await pool.post(b"{}", 5))[2] == b'{"late": false}'

    _, conns = run_async(scripted([None, ok(b'{"late": false}')], run))
    assert conns == 2


def test_refused_connection_and_bad_urls() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there

    async def run() -> None:
        with pytest.raises(ConnectionFailed, match="connection refused") as refused:
            await Http1Pool(f"http://127.0.0.1:{port}/v1", {}).post(b"{}", 5)
        assert refused.value.kind == "refused"
        with pytest.raises(ConnectionFailed, match="cannot resolve host no-such-host.invalid") as dns:
            await Http1Pool("http://no-such-host.invalid/v1", {}).post(b"{}", 5)
        assert dns.value.kind == "dns"  # told apart from a refused connection: not worth retrying

    run_async(run())
    for bad in ("ftp://host/v1", "localhost:8000/v1", "http:///v1"):
        with pytest.raises(ValueError):
            Http1Pool(bad, {})


def test_the_engine_uses_httpx_when_a_proxy_applies(monkeypatch, tmp_path) -> None:
    from deploysim.candidates import Candidate
    from deploysim.replay.cache import ReplayCache
    from deploysim.replay.client import ChatClient, _Http1Transport, _HttpxTransport

    for var in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    cand = Candidate(name="c", base_url="http://models.internal:8000/v1", model="m")
    with ReplayCache(tmp_path / "c.sqlite") as cache:
        assert isinstance(ChatClient(cand, cache)._transport, _Http1Transport)
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
        assert isinstance(ChatClient(cand, cache)._transport, _HttpxTransport)
        monkeypatch.setenv("NO_PROXY", "models.internal")
        assert isinstance(ChatClient(cand, cache)._transport, _Http1Transport)
