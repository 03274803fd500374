"""Wasimoff's v1 client API on berth's broker, so Wasimoff's own client (curl/httpie scripts,
`client.sh`) works unchanged against `berth broker serve`.

Routes, all under `/api/broker/v1` as in the Wasimoff prototype's broker:

- `GET healthz`: `OK`.
- `GET config`: `{"transport": URL}`, where its providers would connect (berth's provider socket).
- `POST upload?name=NAME`: the raw body is the file; answers `Upload OK, N bytes` (text).
- `POST run`: a JSON run configuration `{"bin", "envs", "exec": [{"args", "envs", "stdin",
  "loadfs", "datafile"}], "trace"}`; blocks until every task finished and answers a list in input
  order of `{"result": {"status", "stdout", "stderr", "datafile"?, "trace"?}}` or `{"error": ...}`.

Wasimoff's quirks are kept where a client could notice them: `args` is argv after argv[0] (the
provider puts `bin` first), the task's `envs` come before the global ones, a failed request is a
plain-text answer (`http.Error`), and a task that cannot be placed is an `{"error"}` entry in a 200
answer rather than a failed request.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from backends.broker.bounds import OutOfBounds
from backends.broker.core import QueueFull, TooLarge
from backends.broker.tasks import TaskRequest, TaskView
from backends.errors import Conflict, Invalid

if TYPE_CHECKING:
    from backends.broker.core import Broker

PREFIX = "/api/broker/v1"
REF_PREFIX = "sha256:"
WASM_MAGIC = b"\0asm"
NO_PROVIDER = "no suitable provider found which satisfies all requirements"
"""Wasimoff's per-task error when no provider has the binary (or a `loadfs` file)."""
DATA_FILES_BUDGET = 4
"""Non-module uploads (for `loadfs`) may use this many times the broker's upload limit, in memory."""


@dataclass
class _DataFiles:
    """Uploaded files that are no wasm module, kept (in memory) for tasks' `loadfs`.

    Wasimoff stores any file under its name; berth's broker keeps only modules, so data files live
    here (not kept across a restart of the broker) until the broker has a file store of its own.
    """

    budget: int
    files: dict[str, bytes] = field(default_factory=dict)

    def put(self, name: str, data: bytes) -> None:
        """Keep `data` under `name` (replacing an older one); TooLarge past the budget, which
        counts names and a little for each file too (many empty files are no way around it)."""
        used = sum(_footprint(k, v) for k, v in self.files.items() if k != name)
        if used + _footprint(name, data) > self.budget:
            raise TooLarge(
                f"The data files would take {used + _footprint(name, data):,} bytes; this broker keeps "
                f"at most {self.budget:,} for loadfs.",
                "Upload fewer or smaller data files.",
            )
        self.files[name] = data


def _footprint(name: str, data: bytes) -> int:
    return len(name) + len(data) + 256


_DATA_FILES = web.AppKey("wasimoff_data_files", _DataFiles)


def add_wasimoff_routes(
    app: web.Application, broker: Broker, *, provider_path: str = "/api/v1/provider"
) -> None:
    """Serve Wasimoff's v1 client API on `app`, translated to `broker`.

    `provider_path` is berth's provider WebSocket path, which `config` names as the transport.
    """
    app[_DATA_FILES] = _DataFiles(DATA_FILES_BUDGET * broker.max_upload)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    async def config(request: web.Request) -> web.Response:
        scheme = "wss" if request.secure else "ws"
        # Wasimoff's browser providers read this to connect; CORS open as in Wasimoff's broker.
        return _json({"transport": f"{scheme}://{request.host}{provider_path}"}, cors=True)

    async def upload(request: web.Request) -> web.Response:
        return await _upload(request, broker)

    async def run(request: web.Request) -> web.Response:
        return await _run(request, broker)

    app.router.add_get(f"{PREFIX}/healthz", healthz)
    app.router.add_get(f"{PREFIX}/config", config)
    app.router.add_post(f"{PREFIX}/upload", upload)
    app.router.add_post(f"{PREFIX}/run", run)


# Upload --------------------------------------------------------------------------------------


async def _upload(request: web.Request, broker: Broker) -> web.Response:
    """Store the body under `?name=`: a wasm module in the broker, anything else for `loadfs`."""
    name = request.query.get("name", "")
    if not name:
        return _text_error("need a name in query parameter", 400)
    # `?persist=no` is ignored: berth's providers fetch modules from the broker when a task needs
    # one, so every upload must be kept.
    try:
        data = await _read_body(request, broker.max_upload)
        if data.startswith(WASM_MAGIC):
            await broker.add_module(data, name)
        else:
            request.app[_DATA_FILES].put(name, data)
    except TooLarge as exc:
        return _text_error(str(exc), 413)
    except Invalid as exc:
        return _text_error(str(exc), 400)
    # Wasimoff keeps the file and only then says that nobody got it (a 503 after storing).
    if broker.online_providers() == 0:
        return _text_error("provider list is empty", 503)
    return web.Response(text=f"Upload OK, {len(data)} bytes")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The request body, TooLarge as soon as it passes `limit` bytes (not after reading it all)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(request.content_length, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> TooLarge:
    return TooLarge(
        f"The upload is {size:,} bytes or more; this broker takes at most {limit:,}.",
        "Send a smaller file, or raise the broker's upload limit.",
    )


# Run -----------------------------------------------------------------------------------------


@dataclass
class _Exec:
    """One entry of `exec`: a parametrized run of the common binary."""

    args: list[str] | None
    envs: list[str] | None
    stdin: str
    loadfs: list[str]
    datafile: str


@dataclass
class _RunConfig:
    """A decoded run configuration; None marks a field that was absent or null (Go's nil)."""

    bin: str
    envs: list[str] | None
    exec: list[_Exec] | None
    trace: bool


class _BadRequest(Exception):
    """A run configuration Wasimoff would refuse: the plain-text 400 answer."""


async def _run(request: web.Request, broker: Broker) -> web.Response:
    """Decode, validate and translate a run configuration, run its tasks, answer their results."""
    received = _now_us()
    # Wasimoff refuses anything but JSON before reading it, with Go's mime parser's wording.
    media_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not media_type:
        return _text_error("failed to parse content-type: mime: no media type", 400)
    if media_type != "application/json":
        return _text_error("no config parsers besides JSON are implemented yet", 400)
    try:
        body = await _read_body(request, broker.max_upload)
        run = _decode(body)
    except TooLarge as exc:
        return _text_error(str(exc), 413)
    except _BadRequest as exc:
        return _text_error(str(exc), 400)
    problems = _validate(run)
    if problems:
        return _text_error("failed to validate run configuration: " + "\n".join(problems), 400)
    assert run.exec is not None  # validated: present and non-empty
    if run.trace and len(run.exec) != 1:
        return _text_error("trace is only supported for a single task", 400)
    if broker.online_providers() == 0:
        return _text_error("provider store is empty", 503)

    decoded = _now_us()
    module = broker.module_named(run.bin)
    if module is None and run.bin.startswith(REF_PREFIX):
        module = run.bin  # a ref from berth's own API; submit refuses an unknown one
    if module is None:
        return _json([{"error": f"{NO_PROVIDER} (no file {run.bin!r} was uploaded)"}] * len(run.exec))
    files = request.app[_DATA_FILES].files
    missing = sorted({n for e in run.exec for n in e.loadfs if n not in files})
    if missing:
        return _json([{"error": f"{NO_PROVIDER} (no file {missing[0]!r} was uploaded)"}] * len(run.exec))

    requests = [_task_request(module, run, e, files) for e in run.exec]
    try:
        ids = await broker.submit(requests, f"wasimoff {request.remote or '?'}")
    except QueueFull as exc:
        # Wasimoff's queue would block instead; berth answers full queues with 429 everywhere.
        return _text_error(str(exc), 429)
    except TooLarge as exc:
        return _text_error(str(exc), 413)
    except OutOfBounds as exc:
        message = f"{_wasimoff_field(exc.field)}: {exc.detail}"
        return _text_error(f"failed to validate run configuration: {message} {exc.hint}".strip(), 400)
    except (Invalid, Conflict) as exc:
        # What Wasimoff would have met as a scheduling error: one per task, in a 200 answer.
        return _json([{"error": str(exc)}] * len(requests))
    views: list[TaskView] = await broker.wait_all(ids)
    results = [_result(view, e) for view, e in zip(views, run.exec, strict=True)]
    if run.trace:
        result = results[0].get("result")
        if result is not None:
            result["trace"] = _trace(received, decoded, views[0])
    return _json(results)


def _decode(body: bytes) -> _RunConfig:
    """The run configuration in `body`; _BadRequest for JSON that is not one.

    Go's decoder ignores unknown keys and treats null like an absent key; both are kept here.
    """
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise _BadRequest(f"failed to decode run configuration: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("failed to decode run configuration: expected a JSON object")
    execs = _list(data, "exec", dict)
    return _RunConfig(
        bin=_str(data, "bin"),
        envs=_list(data, "envs", str),
        exec=None if execs is None else [_decode_exec(e, i) for i, e in enumerate(execs)],
        trace=_bool(data, "trace"),
    )


def _decode_exec(data: dict[str, Any], index: int) -> _Exec:
    where = f"exec[{index}]."
    return _Exec(
        args=_list(data, "args", str, where),
        envs=_list(data, "envs", str, where),
        stdin=_str(data, "stdin", where),
        loadfs=_list(data, "loadfs", str, where) or [],
        datafile=_str(data, "datafile", where),
    )


def _str(data: dict[str, Any], key: str, where: str = "") -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _BadRequest(f"failed to decode run configuration: {where}{key} must be a string")
    return _text(value)


def _bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _BadRequest(f"failed to decode run configuration: {key} must be true or false")
    return value


def _list(data: dict[str, Any], key: str, kind: type, where: str = "") -> list[Any] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        what = "strings" if kind is str else "objects"
        raise _BadRequest(f"failed to decode run configuration: {where}{key} must be a list of {what}")
    return [_text(v) for v in value] if kind is str else value


def _text(value: str) -> str:
    """A JSON string as Go decodes it: a lone UTF-16 surrogate (no text) becomes U+FFFD."""
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _validate(run: _RunConfig) -> list[str]:
    """Wasimoff's validation rules, each failure worded as go-playground/validator words it.

    bin: required, a file path; envs: each non-empty and containing "="; exec: present and
    non-empty; each exec entry needs args or envs (present, even if empty); its envs as above.
    """
    problems = []

    def fail(key: str, name: str, tag: str) -> None:
        problems.append(
            f"Key: 'RunConfiguration.{key}' Error:Field validation for '{name}' failed on the '{tag}' tag"
        )

    def envs(values: list[str] | None, key: str) -> None:
        for i, env in enumerate(values or []):
            if not env:
                fail(f"{key}[{i}]", f"{key.split('.')[-1]}[{i}]", "required")
            elif "=" not in env:
                fail(f"{key}[{i}]", f"{key.split('.')[-1]}[{i}]", "contains")

    if not run.bin:
        fail("Binary", "Binary", "required")
    elif not run.bin.strip() or run.bin.endswith("/") or "\0" in run.bin:
        fail("Binary", "Binary", "filepath")
    envs(run.envs, "Environ")
    if run.exec is None:
        fail("Exec", "Exec", "required")
    elif not run.exec:
        fail("Exec", "Exec", "min")
    for i, entry in enumerate(run.exec or []):
        if entry.args is None and entry.envs is None:
            fail(f"Exec[{i}].Args", "Args", "required_without")
            fail(f"Exec[{i}].Envs", "Envs", "required_without")
        envs(entry.envs, f"Exec[{i}].Envs")
    return problems


def _task_request(module: str, run: _RunConfig, entry: _Exec, files: dict[str, bytes]) -> TaskRequest:
    """The berth task for one exec entry.

    argv[0] is `bin` (the task's name), as Wasimoff's provider runs `[bin, ...args]`. Wasimoff
    passes the task's envs before the global ones and libc's getenv takes the first, so the
    task's win: they are applied last here.
    """
    env: dict[str, str] = {}
    for item in [*(run.envs or []), *(entry.envs or [])]:
        key, _, value = item.partition("=")
        env[key] = value
    return TaskRequest(
        module=module,
        args=list(entry.args or []),
        env=env,
        stdin=entry.stdin.encode(),
        name=run.bin,
        files={name: files[name] for name in entry.loadfs},
        datafile=entry.datafile,
    )


def _wasimoff_field(field: str) -> str:
    """A berth task field (`tasks[3].env['A']`, or `args[0]` of a lone task) as the run
    configuration names it (`exec[3].envs['A']`)."""
    if not field.startswith("tasks["):  # a lone task's field
        field = f"tasks[0].{field}"
    index, _, rest = field.removeprefix("tasks[").partition("].")
    head, sep, tail = rest.partition("[")
    names = {"env": "envs", "files": "loadfs", "name": "bin"}
    if head == "name":
        return "bin"
    return f"exec[{index}].{names.get(head, head)}{sep}{tail}"


def _result(view: TaskView, entry: _Exec) -> dict[str, Any]:
    """One task's entry in the answer: its exit status and output, or why it has none."""
    if view.state == "cancelled" or view.kind == "cancelled":
        return {"error": view.message or "the task was cancelled"}
    if view.kind in (None, "failed"):  # berth never ran it to an end (no provider finished it)
        return {"error": view.message or f"the task {view.state}"}
    if view.kind != "exit" or view.exit_code is None:
        # Wasimoff's provider turns a trap into an RPC error; its text is the whole answer.
        return {"error": f"{view.kind}: {view.message}" if view.message else str(view.kind)}
    result: dict[str, Any] = {
        "status": view.exit_code,
        "stdout": view.stdout.decode("utf-8", "replace"),
        "stderr": view.stderr.decode("utf-8", "replace"),
    }
    if entry.datafile:
        data = view.datafile
        if data is None:
            return {"error": f'requested datafile "{entry.datafile}" not found!'}
        if data:  # Go's omitempty drops an empty []byte too
            result["datafile"] = base64.b64encode(data).decode("ascii")
    return {"result": result}


def _trace(received: int, decoded: int, view: TaskView) -> list[dict[str, Any]]:
    """Wasimoff's timestamp trace (unix microseconds), from what berth's broker recorded."""
    events = [
        (received, "broker: request received"),
        (decoded, "broker: configuration decoded"),
        (_us(view.created), "broker: task queued"),
        (_us(view.started), "provider: task started"),
        (_us(view.finished), "provider: task completed"),
        (_now_us(), "broker: task rpc completed"),
    ]
    return [{"time": t, "label": label} for t, label in events if t is not None]


def _us(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1_000_000)


def _now_us() -> int:
    return int(time.time() * 1_000_000)


# Answers -------------------------------------------------------------------------------------


def _json(value: Any, cors: bool = False) -> web.Response:
    """JSON as Go's json.Encoder writes it: compact, one line, a newline at the end."""
    headers = {"Content-Type": "application/json"}
    if cors:
        headers["Access-Control-Allow-Origin"] = "*"
    return web.Response(body=json.dumps(value, separators=(",", ":")).encode() + b"\n", headers=headers)


def _text_error(message: str, status: int) -> web.Response:
    """A failed request as Go's http.Error answers it: the message as plain text, newline-ended."""
    return web.Response(
        status=status,
        body=(message + "\n").encode(),
        headers={"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"},
    )
