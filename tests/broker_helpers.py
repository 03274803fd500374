"""Real brokers and providers for the broker tests: `berth broker serve` and `berth provider`
processes on 127.0.0.1 (started and stopped by PID), provider keys, pairing, small HTTP calls.

Every process a helper starts is ended by its PID when the test ends (`Procs.stop_all`), its
provider's wasm worker processes too (found through /proc, never by name).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cli_helpers import BERTH

from backends.broker import keys

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """`check()`'s first truthy answer, polled until `timeout`; fails the test naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def http(
    url: str,
    method: str = "GET",
    body: Any = None,
    data: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP call to the broker (127.0.0.1); the status and the decoded JSON (or text) answer.

    A call that changes state says what it sends, as berth's client does: `application/json`, or
    `application/octet-stream` for raw `data`; `headers` add to (or replace) that."""
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=payload, method=method)
    if method != "GET":
        req.add_header("Content-Type", "application/octet-stream" if data is not None else "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            status, raw, kind = answer.status, answer.read(), answer.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


def children_of(pid: int) -> list[int]:
    """The PIDs of a process's children (Linux /proc), or none once it is gone."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the thread or process ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


@dataclass
class Proc:
    """A process a test started, its output in a file."""

    popen: subprocess.Popen[bytes]
    log: Path
    children: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def output(self) -> str:
        """What it wrote so far (stdout and stderr together)."""
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        """True while it runs."""
        return self.popen.poll() is None

    def note_children(self) -> None:
        """Remember its children now (a provider's workers), to end them if they outlive it."""
        self.children.update(children_of(self.pid))

    def signal(self, sig: int) -> None:
        """Send `sig` to it (only while it runs)."""
        self.note_children()
        if self.alive():
            os.kill(self.pid, sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; its exit code. Leftover children are killed too."""
        self.signal(signal.SIGTERM)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait()
        self._end_children()
        return code

    def kill(self) -> None:
        """SIGKILL and reap it (its children are left as they are: see `stop`)."""
        self.signal(signal.SIGKILL)
        self.popen.wait()

    def _end_children(self) -> None:
        for child in self.children:
            try:
                if Path(f"/proc/{child}/cmdline").read_bytes().find(b"backends.wasm.worker") < 0:
                    continue  # the PID was reused by something that is not ours
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass


class Procs:
    """The processes a test started: brokers and providers, all stopped by PID at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Proc] = []

    def spawn(self, label: str, *args: str) -> Proc:
        """Start `berth ARGS` with its output in ROOT/LABEL-N.log."""
        log = self.root / f"{label}-{len(self.started)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [BERTH, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ),
            )
        proc = Proc(popen, log)
        self.started.append(proc)
        return proc

    def broker(
        self,
        data: Path,
        port: int | None = None,
        *extra: str,
        token: str | None = None,
        admin: str | None = None,
    ) -> Broker:
        """`berth broker serve` on 127.0.0.1 (a free port unless given), ready to answer; `token`
        and `admin` are the client and admin tokens its helpers send (when it has tokens)."""
        port = port or free_port()
        proc = self.spawn(
            "broker", "broker", "serve", "--listen", f"127.0.0.1:{port}", "--data", str(data), *extra
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if not proc.alive():
                pytest.fail(f"berth broker serve exited {proc.popen.returncode}: {proc.output()[-2000:]}")
            try:
                return http(url + "/healthz")[0] == 200
            except OSError:
                return False

        wait_for(up, 30, f"the broker on {url}")
        return Broker(url, port, data, proc, token, admin)

    def provider(self, url: str, key: Path, name: str, workers: int = 1) -> Proc:
        """`berth provider` for the broker at `url` with key file `key`."""
        return self.spawn(
            f"provider-{name}",
            "provider",
            "--broker",
            url,
            "--key",
            str(key),
            "--name",
            name,
            "--workers",
            str(workers),
        )

    def stop_all(self) -> None:
        """End every process started here that still runs (SIGTERM, then SIGKILL)."""
        for proc in reversed(self.started):
            proc.stop(timeout=5.0)


@dataclass
class Broker:
    """A running `berth broker serve`."""

    url: str
    port: int
    data: Path
    proc: Proc | None
    token: str | None = None
    """The client token sent when a call names none."""
    admin: str | None = None
    """The admin token the provider helpers (list, pending, pair) send; else `token`."""

    @classmethod
    def at(cls, url: str, token: str | None = None) -> Broker:
        """The broker at `url` (one a fixture started), for its HTTP helpers."""
        return cls(url, int(url.rsplit(":", 1)[1]), Path(), None, token)

    def get(self, path: str, token: str | None = None) -> Any:
        """GET an API path; fails the test unless it answers 200."""
        status, body = http(self.url + path, token=token or self.token)
        assert status == 200, (path, status, body)
        return body

    def post(self, path: str, body: Any = None, data: bytes | None = None, token: str | None = None) -> Any:
        """POST to an API path; fails the test unless it answers 2xx."""
        status, answer = http(self.url + path, "POST", body, data, token or self.token)
        assert 200 <= status < 300, (path, status, answer)
        return answer

    def upload(self, module: Path, token: str | None = None) -> str:
        """Upload a module; its ref."""
        return str(
            self.post(f"/api/v1/modules?name={module.name}", data=module.read_bytes(), token=token)["ref"]
        )

    def submit(self, tasks: list[dict[str, Any]], token: str | None = None) -> list[str]:
        """Queue tasks; their ids."""
        return list(self.post("/api/v1/tasks", tasks, token=token)["ids"])

    def wait_task(self, task_id: str, timeout: float = 30.0, token: str | None = None) -> dict[str, Any]:
        """A task's view once it finished."""

        def finished() -> dict[str, Any] | None:
            view = self.get(f"/api/v1/tasks/{task_id}?wait=2", token)
            return view if view["state"] in ("done", "failed", "cancelled") else None

        return wait_for(finished, timeout, f"task {task_id}")

    def online(self, name: str) -> bool:
        """True when a paired provider of that name is connected."""
        providers = self.get("/api/v1/providers", self.admin)
        return any(p["name"] == name and p["state"] == "online" for p in providers)

    def pending(self, fingerprint: str) -> bool:
        """True when a provider key waits to be paired."""
        return any(p["fingerprint"] == fingerprint for p in self.get("/api/v1/providers/pending", self.admin))

    def pair(self, fingerprint: str, name: str) -> None:
        """Pair a key once it has asked to join (over the API; the CLI verb is tested on its own)."""
        wait_for(lambda: self.pending(fingerprint), 30, f"{name} ({fingerprint}) to ask to join")
        self.post("/api/v1/providers/pair", {"fingerprint": fingerprint, "name": name}, token=self.admin)


def new_key(path: Path) -> str:
    """Make a provider key file; its fingerprint."""
    return keys.fingerprint(keys.public_bytes(keys.load_or_create(path)))


def start_paired_provider(procs: Procs, broker: Broker, name: str, workers: int = 1) -> Proc:
    """A `berth provider` process, paired and connected."""
    key = procs.root / f"{name}.key"
    fingerprint = new_key(key)
    proc = procs.provider(broker.url, key, name, workers)
    broker.pair(fingerprint, name)
    wait_for(lambda: broker.online(name), 30, f"provider {name} to be admitted")
    return proc


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """Start brokers and providers; every one still running is stopped by PID afterwards."""
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


@pytest.fixture
def broker_with_provider(procs: Procs, tmp_path: Path) -> str:
    """The base URL `http://127.0.0.1:PORT` of a `berth broker serve` process (its own data folder)
    with one paired, connected `berth provider` (named p1, one worker)."""
    broker = procs.broker(tmp_path / "broker")
    start_paired_provider(procs, broker, "p1")
    return broker.url
