"""The broker's message decoder, fuzzed: whatever a peer sends, `protocol.decode` answers a
message or raises ProtocolError, nothing else; and every message type survives encode -> decode."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.broker import protocol as p

TABLES = [p.FROM_PROVIDER, p.FROM_BROKER]
COMMANDS = sorted({*p.FROM_PROVIDER, *p.FROM_BROKER})
INT64 = st.integers(-(2**63), 2**63 - 1)
WORKERS = st.integers(0, p.MAX_WORKERS)
REFS = st.binary(max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest())
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ANY_CHAR = st.characters(codec=None, exclude_categories=())
"""Every code point, lone surrogates too (which no UTF-8 codec takes; st.text leaves them out)."""
any_text = st.text(ANY_CHAR, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def _decodes_or_protocol_error(frame: bytes | str, table: dict[str, type[msgspec.Struct]]) -> None:
    try:
        message = p.decode(frame, table)
    except p.ProtocolError as exc:
        assert exc.message  # says what is wrong
    else:
        assert type(message) in table.values()


@FUZZ
@given(frame=st.binary(max_size=300), table=st.sampled_from(TABLES))
def test_arbitrary_bytes_decode_or_raise_protocol_error(frame: bytes, table: dict[str, Any]) -> None:
    _decodes_or_protocol_error(frame, table)


@FUZZ
@given(frame=st.text(ANY_CHAR, max_size=300), table=st.sampled_from(TABLES))
def test_arbitrary_text_decodes_or_raises_protocol_error(frame: str, table: dict[str, Any]) -> None:
    """Text includes lone surrogates, which no UTF-8 codec takes."""
    _decodes_or_protocol_error(frame, table)


@FUZZ
@given(
    command=st.sampled_from(COMMANDS) | any_text,
    data=json_values | st.dictionaries(st.sampled_from(["key", "workers", "busy", "id", "jobs", "outcomes",
                                                         "attempt", "module", "signature", "nonce", "line",
                                                         "reason", "stream", "data", "name"]),
                                       json_values, max_size=5),
    extra=st.dictionaries(any_text, json_values, max_size=2),
    table=st.sampled_from(TABLES),
)  # fmt: skip
def test_arbitrary_envelopes_decode_or_raise_protocol_error(
    command: str, data: Any, extra: dict[str, Any], table: dict[str, Any]
) -> None:
    envelope = {"command": command, "data": data, **extra}
    frame = json.dumps(envelope, ensure_ascii=False).encode("utf-8", "surrogatepass")
    _decodes_or_protocol_error(frame, table)
    _decodes_or_protocol_error(frame.decode("utf-8", "surrogatepass"), table)


# Round trips ---------------------------------------------------------------------------------

texts = st.text(max_size=30)
limits = st.builds(
    p.Limits,
    fuel=st.none() | st.integers(0, 2**63 - 1),
    memory=st.none() | st.integers(0, 2**63 - 1),
    timeout=st.none() | st.floats(0, 1e9),
    max_output=st.none() | st.integers(0, 2**63 - 1),
)
jobs = st.builds(
    p.Job,
    id=texts,
    attempt=INT64,
    module=texts,
    args=st.lists(texts, max_size=3),
    env=st.dictionaries(texts, texts, max_size=3),
    stdin=st.binary(max_size=40),
    limits=limits,
    stream=st.booleans(),
    name=texts,
)
outcomes = st.builds(
    p.Outcome,
    id=texts,
    attempt=st.integers(0, p.INT64),
    kind=texts,
    exit_code=st.none() | st.integers(-(2**31), 2**32 - 1),
    message=texts,
    duration_ms=st.floats(0, allow_nan=False, allow_infinity=False),
    fuel_used=st.none() | st.integers(0, p.INT64),
    stdout=st.binary(max_size=40),
    stderr=st.binary(max_size=40),
)
MESSAGES: dict[type[msgspec.Struct], st.SearchStrategy[Any]] = {
    p.Hello: st.builds(
        p.Hello, key=st.binary(max_size=40), name=texts, version=texts, workers=WORKERS, host=texts
    ),
    p.Auth: st.builds(p.Auth, signature=st.binary(max_size=80)),
    p.Heartbeat: st.builds(p.Heartbeat, busy=INT64, workers=WORKERS, draining=st.booleans()),
    p.Need: st.builds(p.Need, module=REFS),
    p.Output: st.builds(p.Output, id=texts, attempt=INT64, stream=texts, data=st.binary(max_size=40)),
    p.Done: st.builds(p.Done, outcomes=st.lists(outcomes, max_size=3)),
    p.Log: st.builds(p.Log, line=texts),
    p.Challenge: st.builds(p.Challenge, nonce=st.binary(max_size=40), broker=texts),
    p.Welcome: st.builds(p.Welcome, fingerprint=texts, name=texts, heartbeat=st.floats(0, 1e6)),
    p.Refused: st.builds(p.Refused, reason=texts, fingerprint=texts, hint=texts),
    p.Run: st.builds(p.Run, jobs=st.lists(jobs, max_size=3)),
    p.Cancel: st.builds(p.Cancel, id=texts),
    p.Drain: st.builds(p.Drain),
    p.Bye: st.builds(p.Bye, reason=texts),
}


def test_every_message_type_has_a_strategy() -> None:
    assert set(MESSAGES) == {*p.FROM_PROVIDER.values(), *p.FROM_BROKER.values()}


@pytest.mark.parametrize("cls", list(MESSAGES), ids=lambda c: c.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_then_decode_gives_the_same_message(cls: type[msgspec.Struct], data: st.DataObject) -> None:
    message = data.draw(MESSAGES[cls])
    table = p.FROM_PROVIDER if cls in p.FROM_PROVIDER.values() else p.FROM_BROKER
    frame = p.encode(message)
    assert json.loads(frame)["command"] in table
    assert p.decode(frame, table) == message
    assert p.decode(frame.decode(), table) == message  # a text frame as aiohttp hands it over


def test_a_message_of_the_other_direction_is_an_unknown_command() -> None:
    with pytest.raises(p.ProtocolError, match="unknown command 'run'"):
        p.decode(p.encode(p.Run([])), p.FROM_PROVIDER)
    with pytest.raises(p.ProtocolError, match="unknown command 'hello'"):
        p.decode(p.encode(p.Hello(b"k")), p.FROM_BROKER)


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (b"not json", "malformed message"),
        (b'{"data": {}}', "malformed message"),
        (b'{"command": 3}', "malformed message"),
        (b'{"command": "nope"}', "unknown command 'nope'"),
        (b'{"command": "heartbeat", "data": {"busy": "two"}}', "malformed 'heartbeat' message"),
        (b'{"command": "hello", "data": {"key": "%%%"}}', "malformed 'hello' message"),
        (b'{"command": "done", "data": {"outcomes": {"id": "t"}}}', "malformed 'done' message"),
        (b'{"command": "log", "data": {"line": "x", "extra": 1}}', "malformed 'log' message"),
        (b'{"command": "hello", "data": {"key": "", "workers": 65537}}', "malformed 'hello' message"),
        (b'{"command": "heartbeat", "data": {"workers": 1e30}}', "malformed 'heartbeat' message"),
        (b'{"command": "need", "data": {"module": "../../etc/passwd"}}', "malformed 'need' message"),
    ],
)
def test_each_kind_of_bad_frame_gets_its_own_message(frame: bytes, error: str) -> None:
    with pytest.raises(p.ProtocolError, match=error):
        p.decode(frame, p.FROM_PROVIDER)


def test_a_result_out_of_bounds_fails_its_own_task_and_the_others_in_its_batch_are_kept() -> None:
    good = {"id": "t-good", "attempt": 1, "kind": "exit", "exit_code": 0, "fuel_used": 12}
    bad = [
        {"id": "t-fuel", "attempt": 1, "kind": "exit", "fuel_used": -(2**70)},
        {"id": "t-exit", "attempt": 2, "kind": "exit", "exit_code": 2**40},
        {"id": "t-time", "attempt": 1, "kind": "exit", "duration_ms": -1},
        {"id": "t-kind", "attempt": 1, "kind": "k" * 65},
    ]
    frame = json.dumps({"command": "done", "data": {"outcomes": [*bad, good, {"attempt": "no id"}]}})
    done = p.decode(frame, p.FROM_PROVIDER)
    assert [(o.id, o.kind) for o in done.outcomes] == [
        ("t-fuel", "error"), ("t-exit", "error"), ("t-time", "error"), ("t-kind", "error"), ("t-good", "exit")
    ]  # fmt: skip
    assert done.outcomes[0].message.startswith("the provider sent a result the broker cannot use: ")
    assert "fuel_used" in done.outcomes[0].message and "exit_code" in done.outcomes[1].message
    assert done.outcomes[-1] == p.Outcome("t-good", 1, "exit", exit_code=0, fuel_used=12)


def test_module_frames_are_checked_against_their_ref() -> None:
    data = b"\0asm\x01\0\0\0"
    ref = "sha256:" + hashlib.sha256(data).hexdigest()
    assert p.split_module_frame(p.module_frame(ref, data)) == (ref, data)
    with pytest.raises(p.ProtocolError, match="does not match its ref"):
        p.split_module_frame(p.module_frame(ref, data + b"x"))
    with pytest.raises(p.ProtocolError, match="does not match its ref"):
        p.split_module_frame(b"short")


def test_sandbox_names_stay_inside_the_task_folder() -> None:
    from backends.broker.protocol import sandbox_name

    assert sandbox_name("/movie.mp4") == "movie.mp4"
    assert sandbox_name("in/./data.csv") == "in/data.csv"
    for bad in ("", "/", "../etc/passwd", "a/../../b", "nul\0byte"):
        assert sandbox_name(bad) is None, bad
