"""What a stranger gets from a real `berth broker serve` before anyone paired it: a small hello
(a 64 MiB frame is cut off after a few KiB), a bounded pending list with new keys rate-limited per
address, bounded names with no escape codes reaching `berth broker pending`, and an HTTP server
that closes slow clients (headers, bodies, idle keep-alive) while /healthz keeps answering fast."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from broker_helpers import Broker, Procs, http, start_paired_provider, wait_for
from cli_helpers import BERTH
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_broker_pairing import receive

from backends.broker import keys
from backends.broker import protocol as p


async def _ask(url: str, name: str = "stranger", host: str = "here", local: str = "127.0.0.1") -> object:
    """A new key says hello from the address `local` and answers the challenge; the broker's answer."""
    key = Ed25519PrivateKey.generate()
    connector = aiohttp.TCPConnector(local_addr=(local, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.ws_connect(url + "/api/v1/provider") as ws,
    ):
        await ws.send_str(p.encode(p.Hello(keys.public_bytes(key), name, "1", 1, host)).decode())
        challenge = await receive(ws)
        if not isinstance(challenge, p.Challenge):
            return challenge
        await ws.send_str(p.encode(p.Auth(keys.sign(key, p.AUTH_CONTEXT + challenge.nonce))).decode())
        return await receive(ws)


def _rss(pid: int) -> int:
    """A process's resident memory in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _upgrade(port: int) -> socket.socket:
    """A raw socket through the provider WebSocket's opening handshake."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    nonce = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /api/v1/provider HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_a_64_mib_frame_before_the_hello_is_cut_off_after_a_few_kib(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    start_paired_provider(procs, broker, "p1")
    assert broker.proc is not None
    before = _rss(broker.proc.pid)
    sock = _upgrade(broker.port)
    size = 64 * 1024 * 1024  # under the socket's message limit (which admitted providers need)
    sock.sendall(struct.pack("!BBQ", 0x81, 0x80 | 127, size) + b"\0\0\0\0")  # text, masked with zeros
    chunk, sent, started = b"x" * (1024 * 1024), 0, time.monotonic()
    with pytest.raises(OSError):  # reset by the broker long before the frame is all sent
        while sent < size:
            sock.sendall(chunk)
            sent += len(chunk)
    cut_after = time.monotonic() - started
    sock.close()
    # What got out before the reset is what the kernel's buffers held, not what the broker read.
    assert sent < 16 * 1024 * 1024, sent
    assert cut_after < 2.0, cut_after
    assert _rss(broker.proc.pid) - before < 16 * 1024 * 1024
    # The broker serves on, its provider too.
    ref = broker.upload(wasm_programs["trivial"])
    (task,) = broker.submit([{"module": ref}])
    assert broker.wait_task(task)["state"] == "done"


async def test_the_pending_list_is_bounded_and_new_keys_are_rate_limited_per_address(
    procs: Procs, tmp_path: Path
) -> None:
    broker = procs.broker(tmp_path / "broker")
    answers = [await _ask(broker.url, f"flood-{i}") for i in range(30)]
    noted = [a for a in answers if isinstance(a, p.Refused) and "is not paired" in a.reason]
    limited = [a for a in answers if isinstance(a, p.Refused) and a.reason.startswith("Too many new")]
    assert (len(noted), len(limited)) == (10, 20), answers
    assert limited[0].reason == "Too many new provider keys from 127.0.0.1: this one is not noted."
    pending = await asyncio.to_thread(broker.get, "/api/v1/providers/pending")
    assert sorted(r["name"] for r in pending) == sorted(f"flood-{i}" for i in range(10))

    # Ten more addresses, ten keys each: the list keeps the 100 heard from last.
    for n in range(2, 12):
        for i in range(10):
            answer = await _ask(broker.url, f"from-{n}-{i}", local=f"127.0.0.{n}")
            assert isinstance(answer, p.Refused) and "is not paired" in answer.reason, answer
    pending = await asyncio.to_thread(broker.get, "/api/v1/providers/pending")
    names = {r["name"] for r in pending}
    assert len(pending) == 100
    assert {f"from-11-{i}" for i in range(10)} <= names
    assert not any(name.startswith("flood-") for name in names)  # the oldest went first
    # A known key is no new one: a provider that keeps asking is never rate-limited.
    assert broker.get("/healthz") == "ok\n"


async def test_a_hello_with_a_long_name_or_host_is_refused_and_nothing_is_noted(
    procs: Procs, tmp_path: Path
) -> None:
    broker = procs.broker(tmp_path / "broker")
    for name, host, field in (("n" * 65, "here", "name"), ("ok", "h" * 254, "host")):
        refused = await _ask(broker.url, name, host)
        assert isinstance(refused, p.Refused), refused
        assert refused.reason.startswith("malformed 'hello' message: Expected `str` of length <="), refused
        assert f"$.{field}" in refused.reason
    assert await asyncio.to_thread(broker.get, "/api/v1/providers/pending") == []


async def test_escape_codes_in_a_name_never_reach_the_admins_terminal(procs: Procs, tmp_path: Path) -> None:
    broker = procs.broker(tmp_path / "broker")
    evil = "ev\x1b[2J\x1b[31mil\x1b]0;owned\x07\x00\u202e"
    answer = await _ask(broker.url, evil, "host\x1b[1A\r\nx")
    assert isinstance(answer, p.Refused) and "is not paired" in answer.reason, answer
    for args in (["broker", "pending"], ["--json", "broker", "pending"]):
        done = subprocess.run(
            [BERTH, *args, "--broker", broker.url], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        for control in ("\x1b", "\x07", "\x00", "\r", "\u202e"):
            assert control not in done.stdout, (args, done.stdout)
    (row,) = json.loads(done.stdout)
    assert (row["name"], row["host"]) == ("ev[2J[31mil]0;owned", "host[1Ax")


def test_slow_clients_are_closed_while_healthz_keeps_answering_fast(procs: Procs, tmp_path: Path) -> None:
    timeouts = ("--header-timeout", "2", "--body-timeout", "2", "--idle-timeout", "3")
    broker = procs.broker(tmp_path / "broker", None, *timeouts)
    address = ("127.0.0.1", broker.port)

    def connect(first: bytes) -> socket.socket:
        sock = socket.create_connection(address, timeout=5)
        sock.sendall(first)
        return sock

    started = time.monotonic()
    # Slowloris: 500 requests whose headers never end; 20 whose bodies stop; 5 idle keep-alives.
    slow = [connect(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") for _ in range(500)]
    post = (
        b"POST /api/v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 900\r\n\r\n["
    )
    slow += [connect(post) for _ in range(20)]
    idle = [connect(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") for _ in range(5)]
    for sock in idle:
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    # A body that arrives slowly but steadily is no slow client: each pause is under the limit.
    steady = connect(b"POST /api/v1/modules HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/wasm\r\n"
                     b"Content-Length: 8\r\n\r\n")  # fmt: skip

    worst, sent = 0.0, 0
    while time.monotonic() - started < 4.5:
        took = time.monotonic()
        assert http(broker.url + "/healthz") == (200, "ok\n")
        worst = max(worst, time.monotonic() - took)
        if sent < 8 and time.monotonic() - started > 0.5 * (sent + 1):
            steady.sendall(b"\0asm\x01\0\0\0"[sent : sent + 1])
            sent += 1
        time.sleep(0.05)
    assert worst < 0.1, f"/healthz took {worst * 1000:.0f} ms"
    answer = steady.recv(4096)
    assert answer.startswith(b"HTTP/1.1 201"), answer  # 8 bytes over 4 s, never 2 s apart

    def closed(sock: socket.socket) -> bool:
        sock.setblocking(False)
        try:
            return sock.recv(4096) == b""
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True

    # All of them were closed: the headers and bodies after 2 s, the idle ones after 3 s.
    wait_for(lambda: all(closed(s) for s in slow + idle), 2, "every slow connection to be closed")
    for sock in [*slow, *idle, steady]:
        sock.close()
    assert Broker.at(broker.url).get("/api/v1/status")["queued"] == 0
