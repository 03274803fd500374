"""berth's HTTP/1.1 client for engine sockets (backends/http1.py through EngineHttp).

Against the test dockerd (through a relay on a unix socket that counts connections: keep-alive
and the pool's limit), and against a broken or hostile server started here on a unix socket: every
bad answer is one Unreachable that says what was wrong, soon, never a hang.
"""

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine

from backends.engine_http import EngineHttp
from backends.errors import Conflict, NotFound, Unreachable
from backends.http1 import MAX_HEADERS, MAX_LINE

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """A request's head (a test server ignores request bodies: its requests send none)."""
    return await reader.readuntil(b"\r\n\r\n")


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[[Answer], Awaitable[str]]]:
    """`await serve(answer)`: a unix socket whose every connection `answer` handles; its path."""
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> str:
        path = str(tmp_path / f"engine-{len(servers)}.sock")

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await answer(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client gave up on the answer, as it should
            finally:
                writer.close()

        servers.append(await asyncio.start_unix_server(handle, path))
        return path

    yield start
    for server in servers:
        server.close()


async def unreachable(path: str, timeout: float = 60.0) -> tuple[str, float]:
    """The message of the Unreachable a GET on `path` ends in, and how long that took."""
    http = EngineHttp(path, "Docker on test", call_timeout=timeout)
    started = time.monotonic()
    try:
        with pytest.raises(Unreachable) as caught:
            await http.get_json("/version", "asking its version")
    finally:
        await http.close()
    return caught.value.message, time.monotonic() - started


# --- a broken or hostile engine ------------------------------------------------------------------


async def test_an_endless_header_line_is_refused_at_64_kib(serve: Callable[[Answer], Awaitable[str]]) -> None:
    sent = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        while True:  # until the client hangs up
            writer.write(b"a" * 65536)
            sent += 65536
            await writer.drain()

    message, took = await unreachable(await serve(answer))
    assert message.startswith("Docker on test does not answer at ")
    assert "(a header line is longer than 65,536 bytes)" in message
    assert sent < 64 * MAX_LINE and took < 10  # it stopped reading soon after the limit


async def test_more_than_100_header_lines_are_refused(serve: Callable[[Answer], Awaitable[str]]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 5000 + b"\r\n{}")
        await writer.drain()
        await reader.read()

    message, _ = await unreachable(await serve(answer))
    assert f"more than {MAX_HEADERS} header lines" in message


async def test_an_endless_chunk_size_line_is_refused(serve: Callable[[Answer], Awaitable[str]]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n")
        while True:
            writer.write(b"0" * 65536)  # a size of more and more zeros, never a line end
            await writer.drain()

    message, took = await unreachable(await serve(answer))
    assert "a chunk size line is longer than 4,096 bytes" in message and took < 10


async def test_a_slow_answer_times_out(serve: Callable[[Answer], Awaitable[str]]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(30)  # the rest never comes in time

    message, took = await unreachable(await serve(answer), timeout=1.0)
    assert "(no answer in time)" in message and 0.9 < took < 5


async def test_garbage_is_a_malformed_status_line(serve: Callable[[Answer], Awaitable[str]]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        await reader.read()

    message, _ = await unreachable(await serve(answer))
    assert "a malformed status line b'SSH-2.0-OpenSSH_9.2'" in message


async def test_an_answer_cut_short_is_unreachable(serve: Callable[[Answer], Awaitable[str]]) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    message, _ = await unreachable(await serve(answer))
    assert "the answer ended 90 bytes before its Content-Length" in message


async def test_a_reset_connection_is_unreachable(tmp_path: Path) -> None:
    path = tmp_path / "reset.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        listening.listen()
        listening.setblocking(False)

        async def reset() -> None:
            accepted, _ = await asyncio.get_running_loop().sock_accept(listening)
            await asyncio.sleep(0.2)
            accepted.close()  # the request unread in its queue: the client sees the connection reset

        message, _ = (await asyncio.gather(unreachable(str(path)), reset()))[0]
    assert "(Connection reset by peer)" in message


async def test_no_listener_and_no_socket_say_so_in_the_systems_words(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sock"
    assert "(No such file or directory)" in (await unreachable(str(missing)))[0]
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as bound:
        bound.bind(str(stale))  # bound, never listening: what a dead engine leaves behind
        assert "(Connection refused)" in (await unreachable(str(stale)))[0]


async def test_chunked_answers_in_single_bytes_and_a_stale_keep_alive_connection(
    serve: Callable[[Answer], Awaitable[str]],
) -> None:
    """A chunked body with an extension and a trailer, arriving a byte at a time, decodes; the
    server then closes the kept-alive connection, and the next call goes through on a new one."""
    body = json.dumps({"Version": "99.1", "Pad": "x" * 300}).encode()
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    wire += b"10;name=value\r\n" + body[:16] + b"\r\n" + b"%x\r\n" % len(body[16:]) + body[16:] + b"\r\n"
    wire += b"0\r\nX-Trailer: yes\r\n\r\n"
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        for at in range(len(wire)):
            writer.write(wire[at : at + 1])
            await writer.drain()
        # and hang up, though the answer promised to keep the connection

    http = EngineHttp(await serve(answer), "Docker on test")
    try:
        assert await http.get_json("/version", "asking its version") == json.loads(body)
        await asyncio.sleep(0.1)
        assert (await http.get_json("/version", "asking its version"))["Version"] == "99.1"
    finally:
        await http.close()
    assert connections == 2


async def test_a_call_on_a_connection_closed_unanswered_goes_again_on_a_new_one(
    serve: Callable[[Answer], Awaitable[str]],
) -> None:
    """The engine drops a kept-alive connection just as the next request goes out on it (its idle
    timeout): a GET is sent once more, on a new connection; a POST is not (it may have been done)."""
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await read_head(reader)  # the next request on this connection: closed, unanswered

    http = EngineHttp(await serve(answer), "Docker on test")
    try:
        assert await http.get_json("/version", "asking") == {}
        assert await http.get_json("/version", "asking") == {}
        assert connections == 2
        with pytest.raises(Unreachable, match="the connection closed before an answer"):
            await http.post("/containers/x/start", "starting")
        assert connections == 2
    finally:
        await http.close()


# --- the real engine ----------------------------------------------------------------------------


@pytest.fixture
async def relay(dockerd: DockerEngine, tmp_path: Path) -> AsyncIterator[tuple[str, list[int]]]:
    """A unix socket that passes every connection on to the test dockerd; the path, and the count
    of connections open through it over time (its first entry: how many were ever opened)."""
    path = str(tmp_path / "relay.sock")
    counts = [0, 0, 0]  # opened, open now, most open at once

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(1 << 16):
                sink.write(data)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts[0] += 1
        counts[1] += 1
        counts[2] = max(counts[2], counts[1])
        engine_reader, engine_writer = await asyncio.open_unix_connection(str(dockerd.socket))
        await asyncio.gather(pipe(reader, engine_writer), pipe(engine_reader, writer))
        counts[1] -= 1

    server = await asyncio.start_unix_server(handle, path)
    yield path, counts
    server.close()


@pytest.mark.engines
async def test_calls_share_kept_alive_connections_and_at_most_32(relay: tuple[str, list[int]]) -> None:
    path, counts = relay
    http = EngineHttp(path, "Docker on test", prefix="/v1.41")
    try:
        for _ in range(20):
            assert "ApiVersion" in await http.get_json("/version", "asking its version")
        assert counts[0] == 1  # one connection carried all twenty
        answers = await asyncio.gather(*(http.get_json("/info", "asking") for _ in range(80)))
        assert all("Containers" in answer for answer in answers)
        assert counts[2] <= 32
    finally:
        await http.close()


@pytest.mark.engines
async def test_create_start_logs_and_errors_on_the_engine(
    dockerd: DockerEngine, docker_busybox: str, spawn: Spawn
) -> None:
    """A JSON body, an empty 204 answer, a streamed multiplexed log, and the engine's refusals
    (409, 404) as berth's errors, all on one keep-alive connection pool."""
    http = EngineHttp(str(dockerd.socket), "Docker on test", prefix="/v1.41")
    name = f"t-http-{time.monotonic_ns()}"
    spawn("sleep 600", name=name)  # the name taken: a create with it conflicts
    try:
        with pytest.raises(Conflict, match=f"Docker on test: creating failed: .*{name}"):
            await http.post("/containers/create", "creating", {"name": name}, {"Image": docker_busybox})
        made = await http.post(
            "/containers/create",
            "creating",
            {"name": name + "-2"},
            {"Image": docker_busybox, "Cmd": ["sh", "-c", "seq 1 20000"], "NetworkDisabled": True},
        )
        assert await http.post(f"/containers/{made['Id']}/start", "starting") is None
        await http.post(f"/containers/{made['Id']}/wait", "waiting")
        logs, params = f"/containers/{made['Id']}/logs", {"stdout": 1, "stderr": 1}
        raw = bytearray()
        async with http.request("GET", logs, "reading", params=params, stream=True) as r:
            async for piece in r.content.iter_any():
                raw += piece
        text, at = [], 0
        while at < len(raw):  # stdcopy frames: 8-byte head (stream, 0, 0, 0, size), then the size
            size = int.from_bytes(raw[at + 4 : at + 8], "big")
            text.append(bytes(raw[at + 8 : at + 8 + size]))
            at += 8 + size
        assert b"".join(text).split() == [str(n).encode() for n in range(1, 20001)]
        await http.delete(f"/containers/{made['Id']}", "removing", {"force": 1})
        with pytest.raises(NotFound, match="Docker on test: inspecting failed: No such container"):
            await http.get_json(f"/containers/{made['Id']}/json", "inspecting")
    finally:
        await http.close()
