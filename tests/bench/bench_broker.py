"""Benchmark for the wasm offloading broker (issue 7): round trip, throughput, idle providers.

    cd /work/main && /tmp/venv/bin/python -m tests.bench.bench_broker [--json PATH] [--part all]

In one run, each part against a fresh `berth broker serve` on 127.0.0.1 (its own data folder):

1. Round trip: one `berth provider` with one worker; a client with one keep-alive aiohttp session
   sends one trivial task (`POST /api/v1/tasks`) and waits for its result
   (`GET /api/v1/tasks/{id}?wait=5`), one after another: p50 and p99 over N tasks after a
   warm-up, as the client sees them (target p50 <= 2 ms).
2. Throughput: 8 `berth provider` processes with one worker each; one `POST` of a batch of
   20,000 trivial tasks, its results followed on `GET /api/v1/batches/{batch}/results` until the
   last one: tasks/s from the POST to the last result (target >= 5,000/s), and the CPU seconds of
   the broker, the providers and their workers over the batch. For comparison, the same tasks on
   berth's local pool (`TaskPool`, two worker processes) and in this process (`run_task`).
3. Idle providers: 1,000 provider connections (each its own Ed25519 key, paired beforehand in
   the broker's store) opened by a light client in a few child processes, held 30 s while they
   send their heartbeats: whether all were admitted, the heartbeat lateness the broker reports
   (`GET /api/v1/providers` `last_heartbeat`, seconds since the last one), and the broker's RSS
   and CPU over the hold (target: 1,000 held).

No engine, no network beyond 127.0.0.1. Everything it writes goes to a temporary folder removed
at the end; every process it starts is stopped by its PID. Figures go to stdout as tables (and to
``--json PATH``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from backends.broker import keys
from backends.broker import protocol as p
from backends.broker.store import BrokerStore
from tests.bench.bench_containers import (
    REPO_DIR,
    BenchError,
    clean_env,
    code_version,
    cpu_seconds,
    fmt,
    load_average,
    machine_busy_percent,
    machine_info,
    median,
    print_table,
    progress,
    rss_mb,
    run_and_report,
    stop_child,
    verdict,
)
from tests.bench.bench_wasm import TRIVIAL, in_process, p99, through_pool

RTT_TARGET_MS = 2.0
THROUGHPUT_TARGET = 5000.0
IDLE_TARGET = 1000
FDS_WANTED = 8192
"""File descriptors the bench (and the broker it starts) may open: 1,000 sockets need more than 1,024."""


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every living process below `pid` (the providers' worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(raw[raw.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Broker:
    """A `berth broker serve` child on a free port, with its data (and log) under `root`."""

    def __init__(self, berth: str, root: Path, pair: Sequence[tuple[bytes, str]] = ()) -> None:
        self.root = root
        self.data = root / "broker"
        root.mkdir(parents=True, exist_ok=True)
        self.env = clean_env(root / "home")
        if pair:  # written before the broker opens its database: no pairing round trips per key
            store = BrokerStore(self.data)
            with store.db:
                for public, name in pair:
                    store.pair(keys.fingerprint(public), name, public)
            store.close()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (root / "broker.log").open("wb")
        listen = ["--listen", f"127.0.0.1:{port}", "--data", str(self.data)]
        self.proc = subprocess.Popen(
            [berth, "broker", "serve", *listen], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.providers: list[subprocess.Popen[bytes]] = []

    async def ready(self, session: aiohttp.ClientSession, timeout: float = 30.0) -> None:
        """Wait until it answers /healthz."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"the broker exited ({self.proc.returncode}); see {self.log.name}")
            try:
                async with session.get(self.url + "/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise BenchError("the broker did not answer /healthz within 30 s")

    def start_providers(self, berth: str, count: int) -> list[str]:
        """Start `count` `berth provider` processes (one worker each, their own key and module
        store) after pairing their keys in the store; returns their fingerprints."""
        fingerprints = []
        for i in range(count):
            folder = self.root / f"provider-{i}"
            key_file = folder / "key"
            folder.mkdir(parents=True)
            public = keys.public_bytes(keys.load_or_create(key_file))
            fingerprints.append(keys.fingerprint(public))
            env = dict(self.env, XDG_DATA_HOME=str(folder / "data"))
            log = (folder / "provider.log").open("wb")
            args = ["--broker", self.url, "--name", f"p{i}", "--workers", "1", "--key", str(key_file)]
            self.providers.append(
                subprocess.Popen([berth, "provider", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        return fingerprints

    def stop(self) -> None:
        """Stop the providers (they drain), then the broker; all by PID."""
        for proc in self.providers:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.providers:
            stop_child(proc)
        stop_child(self.proc)
        self.log.close()


async def call(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    """One API call; its JSON answer (BenchError on an error status)."""
    async with session.request(method, url, **kwargs) as answer:
        body = await answer.read()
        if answer.status >= 400:
            raise BenchError(f"{method} {url}: HTTP {answer.status}: {body[:300]!r}")
        return json.loads(body) if body else None


async def wait_online(session: aiohttp.ClientSession, url: str, count: int, timeout: float) -> float:
    """Wait until `count` providers are online; the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        status = await call(session, "GET", url + "/api/v1/status")
        if status["providers"] >= count:
            return time.monotonic() - began
        await asyncio.sleep(0.1)
    raise BenchError(f"only {status['providers']} of {count} providers came online in {timeout:g} s")


async def connect_providers(broker: Broker, berth: str, session: aiohttp.ClientSession, count: int) -> None:
    """Start `count` providers the way an admin would: they ask, are paired, and come back."""
    fingerprints = broker.start_providers(berth, count)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = {
            r["fingerprint"] for r in await call(session, "GET", broker.url + "/api/v1/providers/pending")
        }
        if pending >= set(fingerprints):
            break
        await asyncio.sleep(0.1)
    for i, fingerprint in enumerate(fingerprints):
        body = {"fingerprint": fingerprint, "name": f"p{i}"}
        await call(session, "POST", broker.url + "/api/v1/providers/pair", json=body)
    await wait_online(session, broker.url, count, 60)


def split_cpu(broker: Broker) -> dict[str, float]:
    """CPU seconds so far of the broker, the provider processes and their workers."""
    providers = [pr.pid for pr in broker.providers]
    workers = [w for pid in providers for w in descendants(pid)]
    return {
        "broker": cpu_seconds(broker.proc.pid),
        "providers": sum(cpu_seconds(pid) for pid in providers),
        "workers": sum(cpu_seconds(pid) for pid in workers),
    }


# --- 1. round trip ------------------------------------------------------------------------------


async def round_trip(berth: str, root: Path, module: bytes, tasks: int, warmup: int) -> dict[str, Any]:
    """Sequential trivial tasks through the broker and one provider: the client's times (ms)."""
    broker = Broker(berth, root)
    try:
        async with aiohttp.ClientSession() as session:
            await broker.ready(session)
            await connect_providers(broker, berth, session, 1)
            ref = (await call(session, "POST", broker.url + "/api/v1/modules", data=module))["ref"]
            body = json.dumps({"module": ref}).encode()
            headers = {"Content-Type": "application/json"}
            totals, submits = [], []
            early = 0
            cpu_before: dict[str, float] = {}
            for i in range(warmup + tasks):
                if i == warmup:
                    cpu_before = split_cpu(broker)
                began = time.perf_counter()
                async with session.post(broker.url + "/api/v1/tasks", data=body, headers=headers) as answer:
                    submitted = json.loads(await answer.read())
                submitted_at = time.perf_counter()
                task_id = submitted["ids"][0]
                view: dict[str, Any] = {"state": "queued"}
                asked = 0
                while view["state"] in ("queued", "running") and asked < 10:
                    # Asked again when answered early (not finished, long before `wait` ran out).
                    async with session.get(f"{broker.url}/api/v1/tasks/{task_id}?wait=5") as answer:
                        view = json.loads(await answer.read())
                    asked += 1
                early += asked - 1
                ended = time.perf_counter()
                if view["state"] != "done" or view["exit_code"] != 0:
                    raise BenchError(f"a round-trip task did not succeed: {view}")
                if i >= warmup:
                    totals.append((ended - began) * 1000)
                    submits.append((submitted_at - began) * 1000)
            cpu_after = split_cpu(broker)
    finally:
        broker.stop()
    cpu_ms = {k: (cpu_after[k] - cpu_before[k]) * 1000 / tasks for k in cpu_after}
    return {
        "tasks": tasks,
        "p50_ms": median(totals),
        "p99_ms": p99(totals),
        "max_ms": max(totals),
        "submit_p50_ms": median(submits),
        "early_answers": early,
        "cpu_ms_per_task": cpu_ms,
    }


# --- 2. throughput ------------------------------------------------------------------------------


async def run_batch(
    session: aiohttp.ClientSession, url: str, ref: str, count: int
) -> tuple[float, float, int]:
    """Submit `count` trivial tasks in one POST and follow their results to the last one:
    (seconds in all, seconds for the POST, results that were not exit 0)."""
    batch = "bench-" + secrets.token_hex(8)
    body = json.dumps([{"module": ref}] * count).encode()
    began = time.perf_counter()
    await call(
        session,
        "POST",
        f"{url}/api/v1/tasks?batch={batch}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    posted = time.perf_counter() - began
    seen, bad = set(), 0
    async with session.get(f"{url}/api/v1/batches/{batch}/results") as answer:
        async for line in answer.content:
            result = json.loads(line) if line.strip() else {}
            if result and result["id"] not in seen:
                seen.add(result["id"])
                bad += not (result["kind"] == "exit" and result["exit_code"] == 0)
    elapsed = time.perf_counter() - began
    if len(seen) != count:
        raise BenchError(f"the batch stream ended after {len(seen)} of {count} results")
    return elapsed, posted, bad


async def throughput(berth: str, root: Path, module: bytes, tasks: int, providers: int) -> dict[str, Any]:
    """Tasks/s for one batch on `providers` one-worker providers, and where the CPU went."""
    broker = Broker(berth, root)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=120)) as session:
            await broker.ready(session)
            await connect_providers(broker, berth, session, providers)
            ref = (await call(session, "POST", broker.url + "/api/v1/modules", data=module))["ref"]
            progress(f"throughput: warm-up batch on {providers} providers")
            await run_batch(session, broker.url, ref, providers * 100)
            progress(f"throughput: {tasks:,} tasks on {providers} providers")
            cpu_before = split_cpu(broker)
            busy_before = _jiffies()
            elapsed, posted, bad = await run_batch(session, broker.url, ref, tasks)
            cpu_after = split_cpu(broker)
            busy = _busy_since(busy_before)
            rss = rss_mb(broker.proc.pid)
    finally:
        broker.stop()
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    return {
        "tasks": tasks,
        "providers": providers,
        "seconds": elapsed,
        "post_seconds": posted,
        "tasks_per_s": tasks / elapsed,
        "not_exit_0": bad,
        "cpu_seconds": cpu,
        "cpu_ms_per_task": {k: v * 1000 / tasks for k, v in cpu.items()},
        "machine_busy_percent": busy,
        "broker_rss_mb": rss,
    }


def _jiffies() -> tuple[int, int]:
    from tests.bench.bench_containers import machine_cpu_jiffies

    return machine_cpu_jiffies()


def _busy_since(before: tuple[int, int]) -> float:
    busy, total = _jiffies()
    return (busy - before[0]) / max(1, total - before[1]) * 100


def baselines(root: Path, module: bytes, tasks: int) -> dict[str, float]:
    """The same trivial tasks without the broker: local pool (2 workers) and in-process."""
    progress(f"baseline: {tasks:,} tasks on the local pool (2 workers)")
    pool = asyncio.run(through_pool(module, tasks, 2, root / "pool"))
    progress(f"baseline: {tasks:,} tasks in-process")
    times = in_process(module, tasks, False, root / "in-process")
    return {"pool_2_workers_per_s": pool, "in_process_per_s": tasks / (sum(times) / 1000)}


# --- 3. idle providers --------------------------------------------------------------------------


async def _hold_providers(url: str, private: list[bytes]) -> dict[str, Any]:
    """(In a child process.) One provider connection per key: handshake, then heartbeats as a
    provider sends them, until the parent closes our stdin."""
    admitted = 0
    refused: list[str] = []
    late: list[float] = []
    connected = asyncio.Event()
    started = 0
    gate = asyncio.Semaphore(32)  # handshakes at once: a burst of 1,000 would time some out

    async def one(raw: bytes) -> None:
        nonlocal admitted, started
        key = Ed25519PrivateKey.from_private_bytes(raw)
        hello = p.Hello(keys.public_bytes(key), "idle", "bench", 1, "bench")
        try:
            async with gate:
                ws = await session.ws_connect(url + "/api/v1/provider", heartbeat=None, autoping=True)
                await ws.send_frame(p.encode(hello), aiohttp.WSMsgType.TEXT)
                challenge = p.decode((await ws.receive(timeout=30)).data, p.FROM_BROKER)
                if not isinstance(challenge, p.Challenge):
                    refused.append(str(challenge))
                    return
                auth = p.Auth(keys.sign(key, p.AUTH_CONTEXT + challenge.nonce))
                await ws.send_frame(p.encode(auth), aiohttp.WSMsgType.TEXT)
                welcome = p.decode((await ws.receive(timeout=30)).data, p.FROM_BROKER)
                if not isinstance(welcome, p.Welcome):
                    refused.append(str(welcome))
                    return
        except (aiohttp.ClientError, OSError, TimeoutError, p.ProtocolError) as exc:
            refused.append(repr(exc))
            return
        admitted += 1
        started += 1
        if started + len(refused) == len(private):
            connected.set()
        beat = p.encode(p.Heartbeat(0, 1, False))
        reader = asyncio.get_running_loop().create_task(_drain(ws))
        try:
            due = time.monotonic()
            while not reader.done():
                late.append(max(0.0, time.monotonic() - due))
                await ws.send_frame(beat, aiohttp.WSMsgType.TEXT)
                due += welcome.heartbeat
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        except (aiohttp.ClientError, ConnectionError, RuntimeError):
            pass
        finally:
            reader.cancel()
            await ws.close()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        runs = [asyncio.get_running_loop().create_task(one(raw)) for raw in private]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), 120)
        print(json.dumps({"event": "connected", "admitted": admitted}), flush=True)
        # The parent tells us when its window is over by closing our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
    late.sort()
    return {
        "event": "done",
        "admitted": admitted,
        "refused": refused[:5],
        "refused_count": len(refused),
        "send_late_max_s": late[-1] if late else 0.0,
    }


async def _drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _message in ws:
        pass


def idle_child_main(args: argparse.Namespace) -> int:
    """The `--idle-child` process: hold the connections of the keys in `--keys`."""
    private = [bytes.fromhex(line) for line in Path(args.keys).read_text().split()]
    print(json.dumps(asyncio.run(_hold_providers(args.url, private))), flush=True)
    return 0


async def idle_providers(root: Path, berth: str, count: int, procs: int, hold: float) -> dict[str, Any]:
    """`count` provider connections held `hold` s: admitted?, heartbeat lateness, broker cost."""
    generated = [Ed25519PrivateKey.generate() for _ in range(count)]
    pairs = [(keys.public_bytes(k), f"idle-{i}") for i, k in enumerate(generated)]
    broker = Broker(berth, root, pair=pairs)
    children: list[subprocess.Popen[str]] = []
    try:
        async with aiohttp.ClientSession() as session:
            await broker.ready(session)
            rss_before = rss_mb(broker.proc.pid)
            began = time.monotonic()
            for i in range(procs):
                share = generated[i::procs]
                key_file = root / f"idle-keys-{i}"
                key_file.write_text("\n".join(k.private_bytes_raw().hex() for k in share))
                command = [sys.executable, "-m", "tests.bench.bench_broker", "--idle-child"]
                command += ["--keys", str(key_file), "--url", broker.url]
                pipe = subprocess.PIPE
                children.append(subprocess.Popen(command, stdin=pipe, stdout=pipe, text=True, cwd=REPO_DIR))
            admitted = 0
            for child in children:
                assert child.stdout is not None
                line = await asyncio.to_thread(child.stdout.readline)
                admitted += json.loads(line)["admitted"] if line else 0
            connect_seconds = time.monotonic() - began
            progress(f"idle: {admitted} admitted in {connect_seconds:.1f} s; holding {hold:g} s")
            await asyncio.sleep(2.5)  # one heartbeat period, so every connection has sent one
            cpu_before, window_began = cpu_seconds(broker.proc.pid), time.monotonic()
            samples: list[float] = []
            online: list[int] = []
            while time.monotonic() - window_began < hold:
                listed = await call(session, "GET", broker.url + "/api/v1/providers")
                up = [r for r in listed if r["state"] == "online"]
                online.append(len(up))
                samples.extend(r["last_heartbeat"] for r in up)
                await asyncio.sleep(min(5.0, max(0.0, hold - (time.monotonic() - window_began))))
            window = time.monotonic() - window_began
            cpu = cpu_seconds(broker.proc.pid) - cpu_before
            status = await call(session, "GET", broker.url + "/api/v1/status")
            rss = rss_mb(broker.proc.pid)
            reports = []
            for child in children:
                assert child.stdin is not None and child.stdout is not None
                child.stdin.close()
                line = await asyncio.to_thread(child.stdout.readline)
                reports.append(json.loads(line) if line else {})
    finally:
        for child in children:
            stop_child(child)
        broker.stop()
    samples.sort()
    return {
        "count": count,
        "processes": procs,
        "admitted": admitted,
        "connect_seconds": connect_seconds,
        "online_min": min(online) if online else 0,
        "online_at_end": status["providers"],
        "refused": sum(r.get("refused_count", 0) for r in reports),
        "refused_examples": [x for r in reports for x in r.get("refused", [])][:3],
        "heartbeat_age_median_s": median(samples),
        "heartbeat_age_max_s": samples[-1] if samples else None,
        "heartbeat_samples": len(samples),
        "client_send_late_max_s": max((r.get("send_late_max_s", 0.0) for r in reports), default=0.0),
        "broker_cpu_percent": cpu / window * 100,
        "broker_rss_mb": rss,
        "broker_rss_before_mb": rss_before,
        "window_seconds": window,
    }


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (the ``--idle-child`` ones are internal)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--part", choices=["all", "rtt", "throughput", "idle"], default="all")
    parser.add_argument("--rtt-tasks", type=int, default=2000, help="sequential tasks timed (2,000)")
    parser.add_argument("--warmup", type=int, default=200, help="sequential tasks before timing (200)")
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks in the throughput batch (20,000)")
    parser.add_argument("--providers", type=int, default=8, help="providers for throughput (8)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pool/in-process baseline")
    parser.add_argument("--idle", type=int, default=1000, help="idle provider connections (1,000)")
    parser.add_argument("--idle-procs", type=int, default=4, help="processes holding them (4)")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to hold them (30)")
    parser.add_argument("--idle-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def preflight() -> dict[str, str]:
    """The berth console script of this venv; raise the open-files limit for 1,000 sockets."""
    berth = Path(sys.executable).parent / "berth"
    found = str(berth) if berth.exists() else shutil.which("berth")
    if found is None:
        raise BenchError("the berth console script is not installed: pip install -e . in this venv")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FDS_WANTED:  # the broker and the idle clients inherit it
        wanted = FDS_WANTED if hard == resource.RLIM_INFINITY else min(FDS_WANTED, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return {"berth": found}


def run_bench(args: argparse.Namespace, tools: dict[str, str], home: Path) -> dict[str, Any]:
    """Take the measurements asked for; return the figures."""
    berth = tools["berth"]
    module = bytes(wasmtime.wat2wasm(TRIVIAL))
    report: dict[str, Any] = {
        "machine": {
            **machine_info(),
            "code": code_version(),
            "load_average_start": load_average(),
            "busy_percent_before": machine_busy_percent(),
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        },
        "params": vars(args),
    }
    if args.part in ("all", "rtt"):
        progress(f"round trip: {args.warmup} + {args.rtt_tasks} sequential tasks")
        report["rtt"] = asyncio.run(round_trip(berth, home / "rtt", module, args.rtt_tasks, args.warmup))
    if args.part in ("all", "throughput"):
        report["throughput"] = asyncio.run(
            throughput(berth, home / "throughput", module, args.tasks, args.providers)
        )
        if not args.no_baseline:
            report["baseline"] = baselines(home / "baseline", module, args.tasks)
    if args.part in ("all", "idle") and args.idle > 0:
        progress(f"idle: {args.idle} provider connections from {args.idle_procs} processes")
        idle = idle_providers(home / "idle", berth, args.idle, args.idle_procs, args.hold)
        report["idle"] = asyncio.run(idle)
    report["machine"]["load_average_end"] = load_average()
    report["machine"]["code_end"] = code_version()
    return report


def report_text(report: dict[str, Any]) -> str:
    """The figures as text tables."""
    import io

    out = io.StringIO()
    m = report["machine"]
    print("berth bench: wasm offloading broker (issue 7)", file=out)
    print(f"code: {m['code']}", file=out)
    if m["code_end"] != m["code"]:
        print(f"WARNING: the code changed during the run; at the end: {m['code_end']}", file=out)
    print(
        f"machine: {m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}; "
        f"load average at start {m['load_average_start']}, at end {m['load_average_end']}; "
        f"all CPUs {fmt(m['busy_percent_before'], 0)} % busy just before the start",
        file=out,
    )
    rtt = report.get("rtt")
    if rtt:
        cpu = rtt["cpu_ms_per_task"]
        print_table(
            "1. Round trip, one task at a time (POST, then GET ?wait=5; one provider, one worker)",
            [
                ("p50", fmt(rtt["p50_ms"], 3, " ms"), f"target <= {RTT_TARGET_MS:g} ms: "
                 + verdict(rtt["p50_ms"] <= RTT_TARGET_MS)),
                ("p99", fmt(rtt["p99_ms"], 3, " ms"), f"{rtt['tasks']:,} tasks after warm-up"),
                ("max", fmt(rtt["max_ms"], 3, " ms"), f"{rtt['early_answers']} waits answered early"),
                ("of which the POST, p50", fmt(rtt["submit_p50_ms"], 3, " ms"), "commit before the id"),
                ("CPU per task: broker / provider / worker",
                 f"{cpu['broker']:.3f} / {cpu['providers']:.3f} / {cpu['workers']:.3f} ms", ""),
            ],
            out,
        )  # fmt: skip
    tp = report.get("throughput")
    if tp:
        cpu = tp["cpu_ms_per_task"]
        rows = [
            (f"{tp['tasks']:,} tasks on {tp['providers']} providers", fmt(tp["tasks_per_s"], 0, "/s"),
             f"target >= {THROUGHPUT_TARGET:,.0f}/s: " + verdict(tp["tasks_per_s"] >= THROUGHPUT_TARGET)),
            ("seconds in all / of which the POST", f"{tp['seconds']:.2f} / {tp['post_seconds']:.2f} s", ""),
            ("CPU per task: broker / providers / workers",
             f"{cpu['broker']:.3f} / {cpu['providers']:.3f} / {cpu['workers']:.3f} ms",
             f"machine {tp['machine_busy_percent']:.0f} % busy"),
            ("results not exit 0", str(tp["not_exit_0"]), ""),
        ]  # fmt: skip
        base = report.get("baseline")
        if base:
            rows += [
                ("same tasks, local pool (2 worker processes)", fmt(base["pool_2_workers_per_s"], 0, "/s"),
                 f"broker / pool: {tp['tasks_per_s'] / base['pool_2_workers_per_s']:.2f}x"),
                ("same tasks, in-process run_task", fmt(base["in_process_per_s"], 0, "/s"), "one core"),
            ]  # fmt: skip
        print_table("2. Throughput, one batch (POST, then the results stream)", rows, out)
    idle = report.get("idle")
    if idle:
        held = idle["online_min"] >= idle["count"]
        print_table(
            f"3. {idle['count']:,} idle providers held {idle['window_seconds']:.0f} s "
            f"({idle['processes']} client processes)",
            [
                ("admitted / online (lowest seen) / at end",
                 f"{idle['admitted']:,} / {idle['online_min']:,} / {idle['online_at_end']:,}",
                 f"target {IDLE_TARGET:,} held: " + verdict(held and idle["count"] >= IDLE_TARGET)),
                ("time to admit them all", fmt(idle["connect_seconds"], 1, " s"), ""),
                ("heartbeat age (broker's view), median / max",
                 f"{fmt(idle['heartbeat_age_median_s'], 2)} / {fmt(idle['heartbeat_age_max_s'], 2)} s",
                 f"every 2 s; {idle['heartbeat_samples']:,} samples"),
                ("client heartbeat send, latest", fmt(idle["client_send_late_max_s"], 3, " s"), ""),
                ("broker CPU over the hold", fmt(idle["broker_cpu_percent"], 1, " %"), "of one core"),
                ("broker RSS before / holding", f"{idle['broker_rss_before_mb']:.0f} / "
                 f"{idle['broker_rss_mb']:.0f} MiB", ""),
            ],
            out,
        )  # fmt: skip
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench (or, internally, an idle-provider child); print the figures; 0 on success."""
    args = parse_args(argv)
    if args.idle_child:
        return idle_child_main(args)
    return run_and_report("bench_broker", args, preflight, run_bench, report_text, "bbb-")


if __name__ == "__main__":
    sys.exit(main())
