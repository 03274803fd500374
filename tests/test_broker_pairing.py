"""Who the broker lets in: pairing through the CLI, bad signatures, malformed messages before and
after the handshake (a hand-made aiohttp WebSocket client), and a broker that keeps serving after."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from broker_helpers import Broker, Procs, new_key, wait_for
from cli_helpers import BERTH
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backends.broker import keys
from backends.broker import protocol as p
from backends.broker.core import BrokerSettings


def _berth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BERTH, *args], capture_output=True, text=True, timeout=60)


def _runs_a_task(url: str, module: Path) -> None:
    """The broker still takes an upload and a task and gets it run by its provider."""
    broker = Broker.at(url)
    ref = broker.upload(module)
    (task_id,) = broker.submit([{"module": ref, "args": ["still", "serving"]}])
    view = broker.wait_task(task_id)
    assert (view["state"], view["kind"], view["exit_code"]) == ("done", "exit", 0), view
    assert "arg 2: serving" in view["stdout"]


def test_unpaired_provider_is_refused_with_a_hint_listed_pending_then_admitted_once_paired(
    procs: Procs, tmp_path: Path
) -> None:
    broker = procs.broker(tmp_path / "broker")
    key = tmp_path / "p1.key"
    fingerprint = new_key(key)
    provider = procs.provider(broker.url, key, "p1", workers=2)

    hint = f"berth broker pair {fingerprint} --name NAME"
    wait_for(lambda: hint in provider.output(), 30, "the provider to log its refusal")
    refusal = next(line for line in provider.output().splitlines() if "refused" in line)
    assert f"key {fingerprint} is not paired" in refusal and hint in refusal
    assert not broker.online("p1")

    done = _berth("--json", "broker", "pending", "--broker", broker.url)
    assert done.returncode == 0, done.stderr
    (pending,) = json.loads(done.stdout)
    assert {k: pending[k] for k in ("fingerprint", "name", "state", "workers")} == {
        "fingerprint": fingerprint,
        "name": "p1",
        "state": "pending",
        "workers": 2,
    }
    assert json.loads(_berth("--json", "broker", "providers", "--broker", broker.url).stdout) == []

    done = _berth("broker", "pair", fingerprint, "--name", "worker-one", "--broker", broker.url)
    assert done.returncode == 0, done.stderr
    assert fingerprint in done.stdout
    wait_for(lambda: "admitted by the broker as 'worker-one'" in provider.output(), 30, "admission")

    listed = json.loads(_berth("--json", "broker", "providers", "--broker", broker.url).stdout)
    assert [(r["fingerprint"], r["name"], r["state"], r["workers"]) for r in listed] == [
        (fingerprint, "worker-one", "online", 2)
    ]
    assert json.loads(_berth("--json", "broker", "pending", "--broker", broker.url).stdout) == []


def test_pairing_an_unknown_key_fails_with_its_reason(procs: Procs, tmp_path: Path) -> None:
    broker = procs.broker(tmp_path / "broker")
    done = _berth("broker", "pair", "SHA256:nobody", "--name", "x", "--broker", broker.url)
    assert done.returncode != 0
    assert "No provider with key SHA256:nobody has asked to join" in done.stdout + done.stderr


# A hand-made provider ------------------------------------------------------------------------


class FakeProvider:
    """A WebSocket client speaking the provider protocol by hand, so a test can send anything."""

    def __init__(self, url: str, key: Ed25519PrivateKey | None = None) -> None:
        self.url = url + "/api/v1/provider"
        self.key = key or Ed25519PrivateKey.generate()
        self.public = keys.public_bytes(self.key)
        self.fingerprint = keys.fingerprint(self.public)

    async def hello(
        self, ws: aiohttp.ClientWebSocketResponse, signer: Ed25519PrivateKey | None = None, workers: int = 1
    ) -> Any:
        """Hello, answer the challenge (signed by `signer`, default our own key); the answer."""
        await ws.send_str(p.encode(p.Hello(self.public, "fake", "0", workers, "here")).decode())
        challenge = await receive(ws)
        if not isinstance(challenge, p.Challenge):
            return challenge
        signature = keys.sign(signer or self.key, p.AUTH_CONTEXT + challenge.nonce)
        await ws.send_str(p.encode(p.Auth(signature)).decode())
        return await receive(ws)


async def receive(ws: aiohttp.ClientWebSocketResponse) -> Any:
    """The next text message, decoded; None when the broker closed the connection."""
    message = await ws.receive(timeout=10)
    if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
        return None
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return p.decode(message.data, p.FROM_BROKER)


async def _refusal(url: str, *frames: str | bytes) -> p.Refused:
    """Connect, send `frames` (text, or binary for bytes), and return the broker's refusal."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url + "/api/v1/provider") as ws:
        for frame in frames:
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        answer = await receive(ws)
        if isinstance(answer, p.Challenge):  # the hello was fine: the next frame is the bad one
            answer = await receive(ws)
        assert isinstance(answer, p.Refused), answer
        assert await receive(ws) is None  # and the connection is closed
        return answer


async def test_a_bad_signature_is_refused_by_name_and_the_broker_keeps_serving(
    broker_with_provider: str, wasm_programs: dict[str, Path]
) -> None:
    url = broker_with_provider
    fake = FakeProvider(url)
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.url) as ws:
        answer = await fake.hello(ws, signer=Ed25519PrivateKey.generate())
        assert answer == p.Refused(
            f"Bad signature: the provider does not hold the private key of {fake.fingerprint}.",
            fake.fingerprint,
        )
        assert await receive(ws) is None
    log = Broker.at(url).get(f"/api/v1/providers/log?fingerprint={quote(fake.fingerprint)}")
    assert any("refused: bad signature" in line for line in log)
    assert not Broker.at(url).pending(fake.fingerprint)
    await asyncio.to_thread(_runs_a_task, url, wasm_programs["echo"])


async def test_malformed_handshakes_each_get_their_own_refusal(
    broker_with_provider: str, wasm_programs: dict[str, Path]
) -> None:
    url = broker_with_provider
    hello = p.encode(p.Hello(FakeProvider(url).public)).decode()
    cases: list[tuple[tuple[str | bytes, ...], str]] = [
        (("not json",), "malformed message: JSON is malformed"),
        (('{"command": "launch", "data": {}}',), "unknown command 'launch'"),
        (
            ('{"command": "hello", "data": {"key": 42}}',),
            "malformed 'hello' message: Expected `bytes`, got `int`",
        ),
        (('{"command": "hello", "data": {"key": "AAAA", "workers": "many"}}',), "malformed 'hello' message"),
        ((p.encode(p.Heartbeat()).decode(),), "the first message must be 'hello'"),
        ((p.encode(p.Hello(b"short")).decode(),), "'hello' key must be a 32-byte Ed25519 public key, not 5"),
        ((b"\x00binary",), "expected a text message during the handshake"),
        ((hello, '{"command": "auth", "data": {"signature": 7}}'), "malformed 'auth' message"),
        ((hello, p.encode(p.Log("hi")).decode()), "expected 'auth' after the challenge"),
    ]
    for frames, reason in cases:
        refused = await _refusal(url, *frames)
        assert refused.reason.startswith(reason), (frames, refused)
    await asyncio.to_thread(_runs_a_task, url, wasm_programs["echo"])


async def test_malformed_messages_after_the_handshake_are_logged_one_by_one_then_cut_off(
    broker_with_provider: str, wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    url = broker_with_provider
    broker = Broker.at(url)
    fake = FakeProvider(url)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(fake.url) as ws:
            assert isinstance(await fake.hello(ws), p.Refused)  # not paired yet: now it is pending
        broker.pair(fake.fingerprint, "fake")
        async with session.ws_connect(fake.url) as ws:
            welcome = await fake.hello(ws)
            # The welcome says how large a frame the broker takes (its default settings' limit).
            frame = BrokerSettings(tmp_path).frame_limit
            assert welcome == p.Welcome(fake.fingerprint, "fake", 2.0, frame)
            bad = {
                "not json": "malformed message",
                '{"command": "teleport"}': "unknown command 'teleport'",
                '{"command": "heartbeat", "data": {"busy": "x"}}': "malformed 'heartbeat' message",
                '{"command": "done", "data": {"outcomes": {}}}': "malformed 'done' message",
                '{"command": "need", "data": {"module": "../../etc/passwd"}}': "malformed 'need' message",
                p.encode(p.Hello(fake.public)).decode(): "unexpected 'hello' after the handshake",
            }
            for frame in bad:
                await ws.send_str(frame)
            await ws.send_bytes(b"binary")
            await ws.send_str(p.encode(p.Log("still here")).decode())

            def logged() -> list[str] | None:
                lines = broker.get(f"/api/v1/providers/log?fingerprint={quote(fake.fingerprint)}")
                return lines if any(line.endswith("still here") for line in lines) else None

            lines: list[str] = await asyncio.to_thread(wait_for, logged, 10, "the fake provider's log line")
            for reason in bad.values():
                assert any(f"ignored a bad message: {reason}" in line for line in lines), (reason, lines)
            assert any("ignored a binary frame" in line for line in lines)
            assert broker.online("fake")

            for _ in range(20):
                await ws.send_str("{")
            bye = await receive(ws)
            assert isinstance(bye, p.Bye) and bye.reason.startswith("too many bad messages"), bye
            assert await receive(ws) is None
    assert not broker.online("fake")
    await asyncio.to_thread(_runs_a_task, url, wasm_programs["echo"])


async def test_out_of_range_numbers_are_refused_not_crashing_the_handshake(
    broker_with_provider: str, wasm_programs: dict[str, Path]
) -> None:
    """A hello whose `workers` no SQLite integer holds is a malformed message, not a crash."""
    fake = FakeProvider(broker_with_provider)
    async with aiohttp.ClientSession() as session, session.ws_connect(fake.url) as ws:
        refused = await fake.hello(ws, workers=2**70)
        assert isinstance(refused, p.Refused) and refused.reason.startswith("malformed 'hello' message"), (
            refused
        )
    await asyncio.to_thread(_runs_a_task, broker_with_provider, wasm_programs["echo"])
