"""The broker's whole client API fuzzed on a real `berth broker serve` with a real provider:
tasks (berth's and Wasimoff's), uploads, lists, single tasks, cancels and batch results, with
arbitrary JSON and arbitrary values in every field. Whatever is sent: never a 500, every task
stored under bounded limits (so it has a deadline once it runs), every running one showing its
deadline, and /healthz answering in under 100 ms throughout. About a minute."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from broker_helpers import Broker, Procs, http, start_paired_provider, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backends.broker.tasks import TaskRequest

EXAMPLES = 1500
HEALTHZ_BUDGET = 0.1
"""Seconds /healthz may take, at worst, while the fuzzing goes on."""
MAX_TIMEOUT = 600.0

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
"""Every code point, lone surrogates and NUL too."""
numbers = st.integers() | st.floats() | st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30, 1e300, -1, 0])
json_values = st.recursive(
    st.none() | st.booleans() | numbers | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
base64s = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
names = any_text | st.sampled_from(["a", "a/b", "/a", "../x", "a/../../b", "", ".", "x" * 300, "a/" * 40])


def _field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the field's own kind (so most tasks get in, and run), now and then
    anything at all."""
    return st.integers(0, 7).flatmap(lambda i: json_values if i == 0 else valid)


def _tasks(refs: list[str]) -> st.SearchStrategy[Any]:
    sizes = st.integers(1, 10**9) | numbers
    limits = st.fixed_dictionaries(
        {},
        optional={
            "fuel": _field(sizes),
            "memory": _field(st.integers(2**20, 2**28) | numbers),
            "timeout": _field(st.floats(0.001, 30) | numbers),
            "max_output": _field(sizes),
        },
    )
    task = st.fixed_dictionaries(
        {"module": _field(st.sampled_from(refs))},
        optional={
            "args": _field(st.lists(any_text, max_size=4)),
            "env": _field(st.dictionaries(any_text, any_text, max_size=3)),
            "stdin": _field(base64s),
            "limits": _field(limits),
            "name": _field(any_text),
            "stream": _field(st.booleans()),
            "files": _field(st.dictionaries(names, base64s, max_size=3)),
            "datafile": _field(names),
        },
    )
    unknown = st.dictionaries(any_text, json_values, min_size=1, max_size=2)
    odd = st.tuples(task, unknown).map(lambda t: {**t[1], **t[0]})  # a field no task has
    one = st.integers(0, 9).flatmap(lambda i: odd if i == 0 else task)
    return st.integers(0, 9).flatmap(
        lambda i: json_values if i == 0 else st.lists(one, min_size=1, max_size=4) if i < 4 else one
    )


def _runs() -> st.SearchStrategy[Any]:
    envs = st.lists(st.tuples(any_text, any_text).map("=".join), max_size=3)
    entry = st.fixed_dictionaries(
        {"args": _field(st.lists(any_text, max_size=3))},
        optional={
            "envs": _field(envs),
            "stdin": _field(any_text),
            "loadfs": _field(st.lists(st.sampled_from(["data.bin", "echo.wasm"]) | names, max_size=2)),
            "datafile": _field(names),
        },
    )
    run = st.fixed_dictionaries(
        {
            "bin": _field(st.sampled_from(["echo.wasm", "hello.wasm"]) | any_text),
            "exec": _field(st.lists(entry, min_size=1, max_size=4)),
        },
        optional={"envs": _field(envs), "trace": _field(st.booleans())},
    )
    return st.integers(0, 9).flatmap(lambda i: json_values if i == 0 else run)


def _query(keys: list[str]) -> st.SearchStrategy[str]:
    values = any_text | numbers.map(str) | st.sampled_from(["", "1", "5", "1000", "1001", "nan", "inf", "-1"])
    pairs = st.dictionaries(st.sampled_from(keys) | any_text, values, max_size=3)
    return pairs.map(lambda d: urllib.parse.urlencode({k: v for k, v in d.items()}, errors="surrogatepass"))


def _encoded(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


class Healthz:
    """Asks /healthz every 20 ms from a process of its own (so this one's work never delays the
    asking) while the fuzzing runs; the slowest answer and any that was not "ok"."""

    def __init__(self, url: str) -> None:
        self.url = url + "/healthz"
        self.worst = 0.0
        self.failures: list[str] = []
        self._poller: subprocess.Popen[str] | None = None

    def __enter__(self) -> Healthz:
        self._poller = subprocess.Popen(
            [sys.executable, "-c", _POLLER, self.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        _first_in_line(self._poller.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._poller is not None
        out, _ = self._poller.communicate("stop\n", timeout=30)
        report = json.loads(out)
        self.worst, self.failures = report["worst"], report["failures"]


_POLLER = """
import json, select, sys, time, urllib.request
worst, failures = 0.0, []
while not select.select([sys.stdin], [], [], 0.02)[0]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(sys.argv[1], timeout=10) as answer:
            body = answer.read()
            ok = answer.status == 200 and body == b"ok\\n"
    except OSError as exc:
        ok, body = False, str(exc).encode()
    took = time.monotonic() - started
    worst = max(worst, took)
    if not ok:
        failures.append(body[:200].decode(errors="replace"))
print(json.dumps({"worst": worst, "failures": failures}))
"""


def _first_in_line(pid: int) -> None:
    """Give a process this test started a higher CPU priority (as root), so on a busy machine
    what /healthz's time measures is the broker's own event loop, not the other processes'."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, pid, -10)


@pytest.fixture
def fuzzed(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> Iterator[tuple[Broker, list[str]]]:
    broker = procs.broker(tmp_path / "broker", None, "--max-timeout", f"{MAX_TIMEOUT:g}s")
    start_paired_provider(procs, broker, "p1", workers=2)
    refs = [broker.upload(wasm_programs[name]) for name in ("echo", "hello", "trivial")]
    upload = broker.url + "/api/broker/v1/upload?name="
    for name, data in (("echo.wasm", wasm_programs["echo"].read_bytes()), ("data.bin", b"some data")):
        assert http(upload + name, "POST", data=data)[0] == 200
    yield broker, refs


def test_whatever_a_client_sends_the_broker_answers_without_a_500_and_keeps_every_task_bounded(
    fuzzed: tuple[Broker, list[str]],
) -> None:
    broker, refs = fuzzed
    ids: list[str] = []
    batches: list[str] = []

    def call(method: str, path: str, body: bytes | None = None, kind: str = "application/json") -> Any:
        status, answer = http(broker.url + path, method, data=body, headers={"Content-Type": kind})
        assert status < 500, (method, path, body[:300] if body else None, status, answer)
        if status == 202 and isinstance(answer, dict):
            ids.extend(answer.get("ids", []))
            batches.append(answer.get("batch", ""))
        return answer

    actions = st.one_of(
        st.tuples(st.just("submit"), _tasks(refs), st.none() | any_text),
        st.tuples(st.just("raw"), st.binary(max_size=200), st.none()),
        st.tuples(st.just("run"), _runs(), st.none()),
        st.tuples(st.just("upload"), st.binary(max_size=100), any_text),
        st.tuples(st.just("wasimoff_upload"), st.binary(max_size=100), any_text),
        st.tuples(st.just("list"), _query(["state", "limit", "cursor"]), st.none()),
        st.tuples(st.just("get"), _query(["wait"]), any_text | st.none()),
        st.tuples(st.just("cancel"), st.none(), any_text | st.none()),
        st.tuples(st.just("batch"), _query(["after"]), any_text | st.none()),
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(action=actions)
    def one(action: tuple[str, Any, Any]) -> None:
        kind, value, extra = action
        if kind == "submit":
            query = "" if extra is None else "?" + _encode_query("batch", extra)
            call("POST", "/api/v1/tasks" + query, _encoded(value))
        elif kind == "raw":
            call("POST", "/api/v1/tasks", value)
        elif kind == "run":
            call("POST", "/api/broker/v1/run", _encoded(value))
        elif kind == "upload":
            call("POST", "/api/v1/modules?" + _name(extra), value, "application/wasm")
        elif kind == "wasimoff_upload":
            call("POST", "/api/broker/v1/upload?" + _name(extra), value, "application/octet-stream")
        elif kind == "list":
            call("GET", "/api/v1/tasks?" + value)
        elif kind == "get":
            call("GET", f"/api/v1/tasks/{_task_id(extra, ids)}?{value}")
        elif kind == "cancel":
            call("DELETE", f"/api/v1/tasks/{_task_id(extra, ids)}")
        else:
            call("GET", f"/api/v1/batches/{_task_id(extra, batches)}/results?{value}")

    assert broker.proc is not None
    _first_in_line(broker.proc.pid)
    with Healthz(broker.url) as health:
        one()
    assert health.failures == [], health.failures[:5]
    assert health.worst < HEALTHZ_BUDGET, f"/healthz took {health.worst * 1000:.0f} ms at worst"

    _every_task_bounded(broker)
    wait_for(lambda: _settled(broker), 120, "every task the fuzzing made to finish")
    (task_id,) = broker.submit([{"module": refs[0], "args": ["after"]}])
    view = broker.wait_task(task_id)
    assert (view["kind"], view["exit_code"]) == ("exit", 0) and "arg 1: after" in view["stdout"], view
    assert "Traceback" not in (broker.proc.output() if broker.proc else ""), "the broker logged an error"


def _name(text: str) -> str:
    return _encode_query("name", text)


def _encode_query(key: str, value: str) -> str:
    """`key=value` for a URL, whatever `value` holds (lone surrogates are sent as their bytes)."""
    return urllib.parse.urlencode({key: value}, errors="surrogatepass")


def _task_id(text: str | None, known: list[str]) -> str:
    """One of the ids seen so far (or any text, quoted for a path)."""
    if text is None and known:
        return known[len(known) // 2]
    return urllib.parse.quote(text or "x", safe="", errors="surrogatepass")


def _every_task_bounded(broker: Broker) -> None:
    """Every stored task has a memory, wall-time and output limit within the bounds (so it runs
    with a deadline), and every running one shows its deadline."""
    decode = msgspec.msgpack.Decoder(TaskRequest).decode
    with sqlite3.connect(f"file:{broker.data / 'broker.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT id, request FROM tasks").fetchall()
    assert rows, "the fuzzing queued no task at all"
    for task_id, blob in rows:
        limits = decode(blob).limits
        assert limits.timeout is not None and 0 < limits.timeout <= MAX_TIMEOUT, (task_id, limits)
        assert limits.memory is not None and limits.max_output is not None, (task_id, limits)
    cursor = ""
    while True:
        page = broker.get("/api/v1/tasks?limit=1000" + cursor)
        for task in page["tasks"]:
            assert task["state"] != "running" or task["deadline"] is not None, task
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"


def _settled(broker: Broker) -> bool:
    status = broker.get("/api/v1/status")
    return status["queued"] == status["running"] == status.get("in_flight", 0) == status["held_bytes"] == 0
