"""Wasimoff's v1 client API on berth's broker (backends/broker/wasimoff.py).

The translation (validation, argv/env/stdin, result shapes, status codes) is tested against a
small fake broker; the acceptance test drives the real `berth broker serve` and a paired provider
with the real `curl`, as Wasimoff's client script does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from backends.broker import wasimoff
from backends.broker.core import QueueFull, TooLarge
from backends.broker.tasks import TaskRequest, TaskView
from backends.broker.wasimoff import add_wasimoff_routes
from backends.errors import Invalid

V1 = "/api/broker/v1"
WASM = b"\0asm\x01\0\0\0"  # the smallest valid module (the fake only looks at the magic)


class FakeBroker:
    """The broker interface the Wasimoff routes use, with tasks that 'run' instantly.

    A task's default outcome is what tests/wasm/echo.c prints (argv from argv[0], then env), so
    a test sees exactly what the provider would have been asked to run.
    """

    def __init__(self) -> None:
        self.max_upload = 1000
        self.providers = 1
        self.names: dict[str, str] = {}
        self.refs: set[str] = set()
        self.submitted: list[tuple[list[TaskRequest], str]] = []
        self.outcome: Callable[[TaskRequest], dict[str, Any]] = self.echo
        self.submit_error: Exception | None = None
        self._requests: dict[str, TaskRequest] = {}

    async def add_module(self, data: bytes, name: str = "") -> str:
        if len(data) > self.max_upload:
            raise TooLarge("too large")
        if not data.startswith(b"\0asm"):
            raise Invalid("That is not a WebAssembly module.")
        ref = "sha256:" + hashlib.sha256(data).hexdigest()
        self.refs.add(ref)
        if name:
            self.names[name] = ref
        return ref

    def module_named(self, name: str) -> str | None:
        return self.names.get(name)

    async def submit(self, requests: list[TaskRequest], client: str) -> list[str]:
        if self.submit_error is not None:
            raise self.submit_error
        for request in requests:
            if request.module not in self.refs:
                raise Invalid(f"No module {request.module!r} on this broker.")
        self.submitted.append((requests, client))
        ids = []
        for request in requests:
            ids.append(f"t-{len(self._requests)}")
            self._requests[ids[-1]] = request
        return ids

    async def wait_all(self, ids: list[str]) -> list[TaskView]:
        views = []
        for task_id in ids:
            request = self._requests[task_id]
            fields: dict[str, Any] = {"state": "done", "kind": "exit", "exit_code": 0}
            fields.update(self.outcome(request))
            view = fields.pop("view", None)  # a test may hand back a whole view of its own
            views.append(view or msgspec.structs.replace(_view(task_id, request), **fields))
        return views

    def online_providers(self) -> int:
        return self.providers

    @staticmethod
    def echo(request: TaskRequest) -> dict[str, Any]:
        lines = [f"arg {i}: {a}" for i, a in enumerate([request.name or "module.wasm", *request.args])]
        lines += [f"env {k}={v}" for k, v in request.env.items()]
        return {"stdout": ("\n".join(lines) + "\n").encode(), "stderr": request.stdin}


def _view(task_id: str, request: TaskRequest) -> TaskView:
    now = time.time()
    return TaskView(
        id=task_id,
        state="queued",
        module=request.module,
        name=request.name,
        client="test",
        created=now - 0.003,
        started=now - 0.002,
        finished=now - 0.001,
    )


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], FakeBroker]]:
    """A test server (127.0.0.1) with only the Wasimoff routes, over a fake broker."""
    broker = FakeBroker()
    app = web.Application()
    add_wasimoff_routes(app, broker)  # type: ignore[arg-type]  # the fake has the used interface
    async with TestClient(TestServer(app)) as client:
        yield client, broker


async def _run(client: TestClient[web.Request, web.Application], config: Any) -> tuple[int, Any]:
    resp = await client.post(
        f"{V1}/run", data=json.dumps(config), headers={"Content-Type": "application/json"}
    )
    text = await resp.text()
    if resp.content_type == "application/json":
        return resp.status, json.loads(text)
    return resp.status, text


async def _upload(client: TestClient[web.Request, web.Application], name: str, data: bytes = WASM) -> None:
    resp = await client.post(f"{V1}/upload", params={"name": name}, data=data)
    assert resp.status == 200, await resp.text()


# healthz, config -----------------------------------------------------------------------------


async def test_healthz_says_ok(api: Any) -> None:
    client, _ = api
    resp = await client.get(f"{V1}/healthz")
    assert resp.status == 200
    assert await resp.text() == "OK\n"


async def test_config_names_the_provider_socket_with_open_cors(api: Any) -> None:
    client, _ = api
    resp = await client.get(f"{V1}/config")
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    body = await resp.json()
    assert body["transport"] == f"ws://{client.host}:{client.port}/api/v1/provider"


# upload --------------------------------------------------------------------------------------


async def test_upload_stores_the_module_under_its_name(api: Any) -> None:
    client, broker = api
    resp = await client.post(f"{V1}/upload?name=hello.wasm", data=WASM)
    assert resp.status == 200
    assert await resp.text() == f"Upload OK, {len(WASM)} bytes"
    assert broker.module_named("hello.wasm") in broker.refs


async def test_upload_needs_a_name(api: Any) -> None:
    client, broker = api
    resp = await client.post(f"{V1}/upload", data=WASM)
    assert resp.status == 400
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await resp.text() == "need a name in query parameter\n"
    assert not broker.refs


async def test_upload_without_providers_keeps_the_file_and_answers_503(api: Any) -> None:
    client, broker = api
    broker.providers = 0
    resp = await client.post(f"{V1}/upload?name=later.wasm", data=WASM)
    assert resp.status == 503
    assert await resp.text() == "provider list is empty\n"
    assert broker.module_named("later.wasm") is not None  # as Wasimoff: persisted all the same


async def test_upload_over_the_limit_is_413_before_the_broker_sees_it(api: Any) -> None:
    client, broker = api
    resp = await client.post(f"{V1}/upload?name=big.wasm", data=WASM + b"\0" * broker.max_upload)
    assert resp.status == 413
    assert "at most 1,000" in await resp.text()
    assert not broker.refs


async def test_upload_too_large_from_the_broker_is_413(api: Any) -> None:
    client, broker = api

    async def refuse(data: bytes, name: str = "") -> str:
        raise TooLarge("The module is too large.")

    broker.add_module = refuse
    resp = await client.post(f"{V1}/upload?name=x.wasm", data=WASM)
    assert resp.status == 413
    assert await resp.text() == "The module is too large.\n"


# run: refusals -------------------------------------------------------------------------------


async def test_run_refuses_a_request_that_is_not_json(api: Any) -> None:
    client, _ = api
    resp = await client.post(f"{V1}/run", data=b'{"bin": "x"}', skip_auto_headers=["Content-Type"])
    assert resp.status == 400
    assert await resp.text() == "failed to parse content-type: mime: no media type\n"
    resp = await client.post(f"{V1}/run", data=b'{"bin": "x"}', headers={"Content-Type": "text/plain"})
    assert resp.status == 400
    assert await resp.text() == "no config parsers besides JSON are implemented yet\n"


@pytest.mark.parametrize(
    ("config", "problems"),
    [
        (
            {},
            [("Binary", "Binary", "required"), ("Exec", "Exec", "required")],
        ),
        ({"bin": "a.wasm", "exec": []}, [("Exec", "Exec", "min")]),
        ({"bin": "dir/", "exec": [{"args": []}]}, [("Binary", "Binary", "filepath")]),
        (
            {"bin": "a.wasm", "envs": ["OK=1", "NOEQUALS", ""], "exec": [{"args": []}]},
            [("Environ[1]", "Environ[1]", "contains"), ("Environ[2]", "Environ[2]", "required")],
        ),
        (
            {"bin": "a.wasm", "exec": [{"args": ["x"]}, {"stdin": "only"}]},
            [("Exec[1].Args", "Args", "required_without"), ("Exec[1].Envs", "Envs", "required_without")],
        ),
        (
            {"bin": "a.wasm", "exec": [{"envs": ["A=1", "B"]}]},
            [("Exec[0].Envs[1]", "Envs[1]", "contains")],
        ),
    ],
)
async def test_run_validates_like_wasimoff(api: Any, config: dict[str, Any], problems: list[Any]) -> None:
    client, broker = api
    status, text = await _run(client, config)
    assert status == 400
    expected = "\n".join(
        f"Key: 'RunConfiguration.{key}' Error:Field validation for '{name}' failed on the '{tag}' tag"
        for key, name, tag in problems
    )
    assert text == f"failed to validate run configuration: {expected}\n"
    assert not broker.submitted


async def test_run_with_empty_args_is_valid(api: Any) -> None:
    # go-playground's `required` on a slice only asks for it to be present (non-nil), not filled.
    client, _ = api
    await _upload(client, "a.wasm")
    status, body = await _run(client, {"bin": "a.wasm", "exec": [{"args": []}, {"envs": []}]})
    assert status == 200
    assert [r["result"]["status"] for r in body] == [0, 0]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'{"bin": 5, "exec": [{}]}', b'{"bin": "a", "exec": [{"args": [1]}]}'],
)
async def test_run_refuses_json_of_the_wrong_shape(api: Any, body: bytes) -> None:
    client, _ = api
    resp = await client.post(f"{V1}/run", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await resp.text()).startswith("failed to decode run configuration: ")


async def test_run_trace_needs_a_single_task(api: Any) -> None:
    client, _ = api
    status, text = await _run(client, {"bin": "a.wasm", "trace": True, "exec": [{"args": []}, {"args": []}]})
    assert (status, text) == (400, "trace is only supported for a single task\n")


async def test_run_without_providers_is_503(api: Any) -> None:
    client, broker = api
    await _upload(client, "a.wasm")
    broker.providers = 0
    status, text = await _run(client, {"bin": "a.wasm", "exec": [{"args": []}]})
    assert (status, text) == (503, "provider store is empty\n")
    assert not broker.submitted


async def test_run_with_a_full_queue_is_429(api: Any) -> None:
    client, broker = api
    await _upload(client, "a.wasm")
    broker.submit_error = QueueFull("The queue is full.", "Retry later.")
    status, text = await _run(client, {"bin": "a.wasm", "exec": [{"args": []}]})
    assert (status, text) == (429, "The queue is full. Retry later.\n")


async def test_run_of_an_unknown_binary_errs_per_task_in_a_200(api: Any) -> None:
    # Wasimoff's scheduler finds no provider holding the file and says so for every task.
    client, broker = api
    status, body = await _run(client, {"bin": "nope.wasm", "exec": [{"args": []}, {"args": []}]})
    assert status == 200
    assert len(body) == 2
    assert all(r["error"].startswith(wasimoff.NO_PROVIDER) and "nope.wasm" in r["error"] for r in body)
    assert not broker.submitted


async def test_run_of_an_unknown_ref_errs_per_task(api: Any) -> None:
    client, _ = api
    status, body = await _run(client, {"bin": "sha256:" + "0" * 64, "exec": [{"args": []}]})
    assert status == 200
    assert body == [{"error": f"No module {'sha256:' + '0' * 64!r} on this broker."}]


# run: translation and results ----------------------------------------------------------------


async def test_run_two_tasks_translates_argv_env_stdin_and_keeps_order(api: Any) -> None:
    client, broker = api
    await _upload(client, "echo.wasm")
    config = {
        "bin": "echo.wasm",
        "envs": ["GLOBAL=g", "SHARED=global"],
        "exec": [
            {"args": ["first", "two words"], "envs": ["SHARED=task", "EMPTY="], "stdin": "hello\n"},
            {"args": ["second"]},
        ],
    }
    status, body = await _run(client, config)
    assert status == 200
    (requests, who), *_ = broker.submitted
    assert who.startswith("wasimoff ")
    ref = broker.module_named("echo.wasm")
    assert [r.module for r in requests] == [ref, ref]
    assert [r.name for r in requests] == ["echo.wasm", "echo.wasm"]  # argv[0], as Wasimoff's provider
    assert [r.args for r in requests] == [["first", "two words"], ["second"]]
    # the task's envs win over the global ones (Wasimoff lists them first; getenv takes the first)
    assert requests[0].env == {"GLOBAL": "g", "SHARED": "task", "EMPTY": ""}
    assert requests[1].env == {"GLOBAL": "g", "SHARED": "global"}
    assert [r.stdin for r in requests] == [b"hello\n", b""]
    assert body[0] == {
        "result": {
            "status": 0,
            "stdout": "arg 0: echo.wasm\narg 1: first\narg 2: two words\n"
            "env GLOBAL=g\nenv SHARED=task\nenv EMPTY=\n",
            "stderr": "hello\n",
        }
    }
    assert body[1]["result"]["stdout"].startswith("arg 0: echo.wasm\narg 1: second\n")


async def test_run_answers_json_as_go_writes_it(api: Any) -> None:
    client, _ = api
    await _upload(client, "a.wasm")
    resp = await client.post(
        f"{V1}/run",
        data='{"bin":"a.wasm","exec":[{"args":[]}]}',
        headers={"Content-Type": "application/json"},
    )
    assert resp.headers["Content-Type"] == "application/json"
    text = await resp.text()
    assert text.endswith("]\n") and "\n" not in text[:-1] and ": " not in text.split('"stdout"')[0]


async def test_run_accepts_a_ref_as_bin(api: Any) -> None:
    client, broker = api
    ref = await broker.add_module(WASM)
    status, body = await _run(client, {"bin": ref, "exec": [{"args": ["x"]}]})
    assert status == 200
    assert body[0]["result"]["status"] == 0
    assert broker.submitted[0][0][0].module == ref


async def test_run_maps_how_tasks_ended(api: Any) -> None:
    client, broker = api
    await _upload(client, "a.wasm")
    endings: dict[str, dict[str, Any]] = {
        "exit3": {"exit_code": 3, "stdout": b"out", "stderr": b"bad \xff byte"},
        "trap": {"kind": "trap", "exit_code": None, "message": "wasm trap: unreachable"},
        "fuel": {"kind": "out_of_fuel", "exit_code": None, "message": ""},
        "failed": {"state": "failed", "kind": None, "exit_code": None, "message": "No provider finished it."},
        "cancelled": {"state": "cancelled", "kind": None, "exit_code": None, "message": ""},
    }
    broker.outcome = lambda request: endings[request.args[0]]
    status, body = await _run(client, {"bin": "a.wasm", "exec": [{"args": [k]} for k in endings]})
    assert status == 200
    assert body == [
        {"result": {"status": 3, "stdout": "out", "stderr": "bad \ufffd byte"}},  # not an error
        {"error": "trap: wasm trap: unreachable"},
        {"error": "out_of_fuel"},
        {"error": "No provider finished it."},
        {"error": "the task was cancelled"},
    ]


async def test_run_trace_lists_timestamped_events(api: Any) -> None:
    client, _ = api
    await _upload(client, "a.wasm")
    status, body = await _run(client, {"bin": "a.wasm", "trace": True, "exec": [{"args": []}]})
    assert status == 200
    trace = body[0]["result"]["trace"]
    labels = [e["label"] for e in trace]
    assert labels[0] == "broker: request received" and labels[-1] == "broker: task rpc completed"
    assert "provider: task started" in labels
    assert all(isinstance(e["time"], int) and e["time"] > 1_600_000_000_000_000 for e in trace)


async def test_loadfs_and_datafile_translate_to_task_files(api: Any) -> None:
    client, broker = api
    await _upload(client, "ffmpeg.wasm")
    await _upload(client, "movie.mp4", b"MOVIE BYTES")  # any file, as Wasimoff takes any

    def ffmpeg(request: TaskRequest) -> dict[str, Any]:
        view = _view("t", request)
        out: bytes | None = (
            request.files.get("movie.mp4", b"")[:5] if request.datafile == "clip.mp4" else None
        )
        return {"view": msgspec.structs.replace(view, state="done", kind="exit", exit_code=0, datafile=out)}

    broker.outcome = ffmpeg
    config = {
        "bin": "ffmpeg.wasm",
        "exec": [
            {"args": ["-i", "/movie.mp4", "/clip.mp4"], "loadfs": ["movie.mp4"], "datafile": "clip.mp4"},
            {"args": [], "datafile": "missing.jpg"},
        ],
    }
    status, body = await _run(client, config)
    assert status == 200, body
    requests = broker.submitted[0][0]
    assert requests[0].files == {"movie.mp4": b"MOVIE BYTES"}
    assert requests[0].datafile == "clip.mp4"
    assert body[0]["result"]["datafile"] == base64.b64encode(b"MOVIE").decode()
    assert body[1] == {"error": 'requested datafile "missing.jpg" not found!'}

    status, body = await _run(client, {"bin": "ffmpeg.wasm", "exec": [{"args": [], "loadfs": ["gone.bin"]}]})
    assert status == 200
    assert body[0]["error"].startswith(wasimoff.NO_PROVIDER) and "gone.bin" in body[0]["error"]


# Acceptance: the real broker, a paired provider, real curl -----------------------------------


def _curl(*args: str) -> tuple[int, str]:
    """Run curl (to 127.0.0.1 only); the HTTP status and the body."""
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def test_wasimoff_client_upload_and_run_two_tasks_with_curl(
    broker_with_provider: str, wasm_programs: dict[str, Path]
) -> None:
    """The issue's acceptance: a curl upload, then a /run with two exec entries."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    base = broker_with_provider
    url = f"{base}{V1}"

    echo = wasm_programs["echo"]
    code, body = _curl(
        "-X", "POST", "-H", "content-type: application/wasm",
        "--data-binary", f"@{echo}", f"{url}/upload?name=echo.wasm",
    )  # fmt: skip
    assert (code, body) == (200, f"Upload OK, {echo.stat().st_size} bytes")

    config = {
        "bin": "echo.wasm",
        "envs": ["GLOBAL=yes"],
        "exec": [{"args": ["one", "two"], "envs": ["TASK=first"]}, {"args": ["three"]}],
    }
    code, body = _curl(
        "-X", "POST", "-H", "content-type: application/json", "--data", json.dumps(config), f"{url}/run"
    )  # fmt: skip
    assert code == 200, body
    first, second = json.loads(body)
    assert first["result"]["status"] == 0, first
    assert first["result"]["stdout"].splitlines()[:3] == ["arg 0: echo.wasm", "arg 1: one", "arg 2: two"]
    assert {"env GLOBAL=yes", "env TASK=first"} <= set(first["result"]["stdout"].splitlines())
    assert second["result"]["stdout"].splitlines()[:2] == ["arg 0: echo.wasm", "arg 1: three"]
    assert "env TASK=first" not in second["result"]["stdout"]

    # Wasimoff's client.sh sends every upload as application/wasm; curl's default type (a form, as a
    # web page could send) is refused by the broker.
    cat = wasm_programs["cat"]
    code, body = _curl("-X", "POST", "--data-binary", f"@{cat}", f"{url}/upload?name=cat.wasm")
    assert code == 415 and "needs a Content-Type header such as application/wasm" in body, body
    wasm = ("-H", "content-type: application/wasm")
    assert _curl("-X", "POST", *wasm, "--data-binary", f"@{cat}", f"{url}/upload?name=cat.wasm")[0] == 200
    config = {"bin": "cat.wasm", "exec": [{"args": [], "stdin": "through stdin\n"}]}
    code, body = _curl(
        "-X", "POST", "-H", "content-type: application/json", "--data", json.dumps(config), f"{url}/run"
    )  # fmt: skip
    assert (code, json.loads(body)) == (
        200,
        [{"result": {"status": 0, "stdout": "through stdin\n", "stderr": ""}}],
    )

    # loadfs puts an uploaded file in the task's folder (its `/`); datafile sends one back.
    writefile = wasm_programs["writefile"]
    assert _curl(*wasm, "--data-binary", f"@{writefile}", f"{url}/upload?name=writefile.wasm")[0] == 200
    assert _curl(*wasm, "--data-binary", "given", f"{url}/upload?name=input.txt")[0] == 200
    config = {
        "bin": "writefile.wasm",
        "exec": [
            {"args": ["/input.txt", "overwritten"], "loadfs": ["input.txt"], "datafile": "input.txt"},
            {"args": ["/new.txt", "made inside"], "datafile": "new.txt"},
            {"args": ["/other.txt", "x"], "datafile": "missing.txt"},
        ],
    }
    code, body = _curl(
        "-X", "POST", "-H", "content-type: application/json", "--data", json.dumps(config), f"{url}/run"
    )  # fmt: skip
    assert code == 200, body
    loaded, made, missing = json.loads(body)
    assert loaded["result"]["status"] == 0 and loaded["result"]["stdout"] == "written\n"
    assert base64.b64decode(loaded["result"]["datafile"]) == b"overwritten"
    assert base64.b64decode(made["result"]["datafile"]) == b"made inside"
    assert missing == {"error": 'requested datafile "missing.txt" not found!'}


# The real broker core, no provider -------------------------------------------------------------


async def test_real_broker_keeps_uploads_and_refuses_runs_without_providers(
    tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    """The routes over berth's real Broker: uploads are validated and kept even with nobody to run
    them (Wasimoff's 503 after storing), and a run is refused until a provider connects."""
    from backends.broker.core import Broker, BrokerSettings

    broker = Broker(BrokerSettings(data=tmp_path / "broker", max_upload=1024 * 1024))
    await broker.start()
    app = web.Application()
    add_wasimoff_routes(app, broker)
    try:
        async with TestClient(TestServer(app)) as client:
            echo = wasm_programs["echo"].read_bytes()
            resp = await client.post(f"{V1}/upload?name=echo.wasm", data=echo)
            assert (resp.status, await resp.text()) == (503, "provider list is empty\n")
            assert broker.module_named("echo.wasm") == "sha256:" + hashlib.sha256(echo).hexdigest()

            invalid = wasm_programs["invalid"].read_bytes()
            resp = await client.post(f"{V1}/upload?name=invalid.wasm", data=invalid)
            assert resp.status == 400
            assert "not a valid WebAssembly module" in await resp.text()
            assert broker.module_named("invalid.wasm") is None

            status, text = await _run(client, {"bin": "echo.wasm", "exec": [{"args": []}, {"args": []}]})
            assert (status, text) == (503, "provider store is empty\n")
    finally:
        await broker.close()
