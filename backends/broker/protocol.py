"""The messages between the broker and its providers, and how they are framed on the WebSocket.

A text frame is JSON `{"command": NAME, "data": {...}}`; `data`'s shape depends on `command` and is
validated on decoding (msgspec), so a handler only ever sees a well-formed message of a known kind.
A binary frame carries a module's bytes: its 71-byte ref (`sha256:` + 64 hex digits) then the
module, which the provider checks against the ref before using it.

Conversation: provider `hello` -> broker `challenge` -> provider `auth` (Ed25519 signature of
`AUTH_CONTEXT + nonce`) -> broker `welcome` or `refused`. Then the broker sends `run` (tasks, in
batches), `cancel`, `drain`, `bye`; the provider sends `heartbeat`, `need` (a module it lacks),
`output` (live output of tasks that asked for it), `done` (results, in batches) and `log`.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import msgspec

from backends.errors import Invalid
from backends.wasm.blobs import REF_PREFIX, ref_of

AUTH_CONTEXT = b"berth-broker-auth-v1\0"
"""What a provider signs before the broker's nonce, so the signature means nothing elsewhere."""
REF_LENGTH = len(REF_PREFIX) + 64
MAX_WORKERS = 65_536
"""Most workers a provider may offer: a bound that keeps a peer's number within SQLite's integers."""
Workers = Annotated[int, msgspec.Meta(ge=0, le=MAX_WORKERS)]
ModuleRef = Annotated[str, msgspec.Meta(pattern=f"^{REF_PREFIX}[0-9a-f]{{64}}$")]
"""A module's content address; checked on decoding, as the store turns it into a file name."""
MIN_FRAME = 1024 * 1024
"""The largest text frame every broker takes from an admitted provider (a broker that takes more
says so in `Welcome.max_frame`): a provider batches and cuts its results to fit."""


class ProtocolError(Invalid):
    """A frame that is not a valid message: not JSON, an unknown command, data of the wrong shape."""


class Limits(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What one task may use: fuel, memory bytes, wall seconds, output bytes (None: no limit)."""

    fuel: int | None = None
    memory: int | None = None
    timeout: float | None = None
    max_output: int | None = None


class Job(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """One task as a provider runs it; `attempt` tells a retry's result from a stale one."""

    id: str
    attempt: int
    module: str
    args: list[str] = []
    env: dict[str, str] = {}
    stdin: bytes = b""
    limits: Limits = Limits()
    stream: bool = False
    name: str = ""
    """The program's argv[0] (default: the module's ref)."""
    files: dict[str, bytes] = {}
    """Files put in a fresh writable folder the module sees as `/` (name -> bytes)."""
    datafile: str = ""
    """A file of that folder to send back with the result."""


INT64 = 2**63 - 1
"""The largest integer the broker's store (msgpack, SQLite) and wasmtime's fuel counter hold."""


class Outcome(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=True):
    """How one attempt of a task ended on a provider (`kind` as in backends.wasm.spec).

    Its numbers are bounded on decoding (a WASI exit status is 32 bits, fuel is a 64-bit count), so
    whatever a provider sends, a result the broker accepts is one its store can keep."""

    id: str
    attempt: Annotated[int, msgspec.Meta(ge=0, le=INT64)]
    kind: Annotated[str, msgspec.Meta(max_length=64)]
    exit_code: Annotated[int, msgspec.Meta(ge=-(2**31), le=2**32 - 1)] | None = None
    message: str = ""
    duration_ms: Annotated[float, msgspec.Meta(ge=0)] = 0.0
    fuel_used: Annotated[int, msgspec.Meta(ge=0, le=INT64)] | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    datafile: bytes | None = None
    """The job's `datafile` after the run (None: the module did not leave one)."""


# Provider -> broker --------------------------------------------------------------------------


MAX_HELLO = 4096
"""Bytes a `hello` or `auth` frame may take: what a provider sends before it is admitted."""
MAX_NAME = 64
"""Longest provider name (as long as a Linux host name may be)."""


class Hello(msgspec.Struct, forbid_unknown_fields=True):
    """The provider's first message: its Ed25519 public key (32 raw bytes) and what it offers.

    Bounded, as anyone may send one: the host is a DNS name (at most 253 characters)."""

    key: Annotated[bytes, msgspec.Meta(max_length=64)]
    name: Annotated[str, msgspec.Meta(max_length=MAX_NAME)] = ""
    version: Annotated[str, msgspec.Meta(max_length=64)] = ""
    workers: Workers = 1
    host: Annotated[str, msgspec.Meta(max_length=253)] = ""


class Auth(msgspec.Struct, forbid_unknown_fields=True):
    """The provider's signature over `AUTH_CONTEXT + nonce`."""

    signature: bytes


class Heartbeat(msgspec.Struct, forbid_unknown_fields=True):
    """Sent every few seconds: how many tasks run now, of how many workers, and whether draining."""

    busy: int = 0
    workers: Workers = 1
    draining: bool = False


class Need(msgspec.Struct, forbid_unknown_fields=True):
    """The provider lacks a module a task needs: the broker answers with a binary module frame."""

    module: ModuleRef


class Output(msgspec.Struct, forbid_unknown_fields=True):
    """Live output of a task that asked for it (`stream` "stdout" or "stderr")."""

    id: str
    attempt: int
    stream: str
    data: bytes


class Done(msgspec.Struct, forbid_unknown_fields=True):
    """Results of finished tasks, in a batch."""

    outcomes: list[Outcome]


class Log(msgspec.Struct, forbid_unknown_fields=True):
    """A line for the provider's log as the broker shows it."""

    line: str


# Broker -> provider --------------------------------------------------------------------------


class Challenge(msgspec.Struct, forbid_unknown_fields=True):
    """A fresh nonce to sign, and the broker's name."""

    nonce: bytes
    broker: str = ""


class Welcome(msgspec.Struct, forbid_unknown_fields=True):
    """The provider is admitted under `name`; it should send a heartbeat every `heartbeat` s."""

    fingerprint: str
    name: str
    heartbeat: float = 2.0
    max_frame: Annotated[int, msgspec.Meta(ge=MIN_FRAME)] = MIN_FRAME
    """The largest frame the broker takes from this provider (its WebSocket's message limit)."""


class Refused(msgspec.Struct, forbid_unknown_fields=True):
    """The provider is not admitted: why, and what the admin can do about it."""

    reason: str
    fingerprint: str = ""
    hint: str = ""


class Run(msgspec.Struct, forbid_unknown_fields=True):
    """Tasks to run, in a batch."""

    jobs: list[Job]


class Cancel(msgspec.Struct, forbid_unknown_fields=True):
    """Stop a task (its result comes back as kind "cancelled")."""

    id: str


class Drain(msgspec.Struct, forbid_unknown_fields=True):
    """Finish the running tasks, take no new ones."""


class Bye(msgspec.Struct, forbid_unknown_fields=True):
    """The broker is closing this connection, and why."""

    reason: str = ""


FROM_PROVIDER: dict[str, type[msgspec.Struct]] = {
    "hello": Hello,
    "auth": Auth,
    "heartbeat": Heartbeat,
    "need": Need,
    "output": Output,
    "done": Done,
    "log": Log,
}
FROM_BROKER: dict[str, type[msgspec.Struct]] = {
    "challenge": Challenge,
    "welcome": Welcome,
    "refused": Refused,
    "run": Run,
    "cancel": Cancel,
    "drain": Drain,
    "bye": Bye,
}
_COMMAND = {cls: name for table in (FROM_PROVIDER, FROM_BROKER) for name, cls in table.items()}


class _Envelope(msgspec.Struct, forbid_unknown_fields=True):
    command: str
    data: msgspec.Raw = msgspec.Raw(b"{}")


_envelope = msgspec.json.Decoder(_Envelope)
_decoders = {cls: msgspec.json.Decoder(cls) for cls in _COMMAND}
_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    """The text frame for a message."""
    return b'{"command":"%s","data":%s}' % (_COMMAND[type(message)].encode(), _encoder.encode(message))


def decode(frame: bytes | str, table: dict[str, type[msgspec.Struct]]) -> Any:
    """The message in a text frame, if its command is one `table` (one direction's) knows.

    Raises ProtocolError naming what is wrong; never anything else, whatever the frame holds.
    """
    try:
        envelope = _envelope.decode(frame)
    except (msgspec.DecodeError, UnicodeError) as exc:
        # UnicodeError, not only UnicodeDecodeError: a str frame holding a lone surrogate makes
        # msgspec's UTF-8 encoding of it fail with UnicodeEncodeError.
        raise ProtocolError(f"malformed message: {exc}") from None
    cls = table.get(envelope.command)
    if cls is None:
        raise ProtocolError(f"unknown command {envelope.command[:40]!r}")
    try:
        if cls is Done:
            return _decode_done(envelope.data)
        return _decoders[cls].decode(envelope.data)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed {envelope.command!r} message: {exc}") from None


class _RawDone(msgspec.Struct):
    outcomes: list[msgspec.Raw]


class _OutcomeKey(msgspec.Struct):
    id: str
    attempt: int


_raw_done = msgspec.json.Decoder(_RawDone)
_outcome = msgspec.json.Decoder(Outcome)
_outcome_key = msgspec.json.Decoder(_OutcomeKey)


def _decode_done(data: msgspec.Raw) -> Done:
    """A `done` message, each result decoded on its own: one the broker cannot use becomes an
    "error" result of its task (or, without a readable id, is left out), never the whole batch's
    loss. DecodeError only when the batch itself is malformed."""
    outcomes = []
    for raw in _raw_done.decode(data).outcomes:
        try:
            outcomes.append(_outcome.decode(raw))
        except msgspec.DecodeError as exc:
            with contextlib.suppress(msgspec.DecodeError):
                key = _outcome_key.decode(raw)
                why = f"the provider sent a result the broker cannot use: {str(exc)[:200]}"
                outcomes.append(Outcome(key.id, key.attempt, "error", message=why))
    return Done(outcomes)


def result_size(max_output: int) -> int:
    """The largest `done` frame one result makes: stdout, stderr and the data file of up to
    `max_output` bytes each, in base64 (4/3), plus the envelope and the result's other fields."""
    return 4 * max_output + 64 * 1024


def module_frame(ref: str, data: bytes) -> bytes:
    """The binary frame that carries a module."""
    return ref.encode() + data


def split_module_frame(frame: bytes) -> tuple[str, bytes]:
    """The ref and bytes in a binary module frame; ProtocolError when they don't match."""
    ref = frame[:REF_LENGTH].decode("ascii", "replace")
    data = frame[REF_LENGTH:]
    if not ref.startswith(REF_PREFIX) or ref_of(data) != ref:
        raise ProtocolError(f"module frame does not match its ref {ref[:REF_LENGTH]!r}")
    return ref, data


def sandbox_name(name: str) -> str | None:
    """`name` as a path inside a task's folder (`/in/data.csv` -> `in/data.csv`), or None when it
    would leave the folder or names none."""
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if not parts or ".." in parts or any("\0" in part for part in parts):
        return None
    return "/".join(parts)
