"""A micro-benchmark of the log view alone, no engine: for profiling and for before/after comparisons.

    cd /work/main && /tmp/venv/bin/python -m tests.bench.bench_logview [--lines N] [--rate R]

The Engine API's multiplexed log stream (timestamped frames of the line the Containers benchmark
floods with) is built in memory, cut into socket-sized chunks and parsed with berth's own decoder,
then fed to a `LogView` in a headless app (120x40, ring of 100,000) as `DockerBackend.logs` would.
Unpaced (the default), it measures how many lines a second the view can take at most; with
`--rate`, chunks arrive at that many lines a second, as from a busy dockerd, and the view's CPU
use is measured. Either way `t` is pressed every 0.2 s and the time until a frame shows the
toggle is reported (median and p95, and split where its action runs), with the frames drawn and
their cost, and the time the garbage collector took during the flood. The app calls `gc.freeze()`
once it is up, as BerthApp does (`--no-freeze`: it does not; full collections of the app's own
objects then take tens of milliseconds each here, on the event loop).

It says nothing about dockerd or the socket: the real figures come from `bench_containers`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parents[2]
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from backends.docker_logs import FrameDecoder, ResumePoint, _batches  # noqa: E402
from backends.streams import LogLine  # noqa: E402
from tests.bench.bench_containers import (  # noqa: E402
    LINE,
    LOGVIEW_SIZE,
    MAX_LINES,
    FrameClock,
    _flipped,
    _press_and_time,
    median,
    p95,
)

CHUNK = 64 * 1024
"""Bytes per read, about what a busy unix socket hands over at once."""


def stream_bytes(lines: int) -> tuple[bytes, int]:
    """The multiplexed log stream of `lines` timestamped stdout lines, and the size of one frame."""
    frames = []
    header = struct.Struct(">BxxxL")
    for i in range(lines):
        stamp = f"2026-11-23T13:{i // 60_000_000 % 60:02d}:{i // 1_000_000 % 60:02d}.{i % 1_000_000:06d}123Z"
        data = f"{stamp} {LINE}\n".encode()
        frames.append(header.pack(1, len(data)) + data)
    return b"".join(frames), len(frames[0])


async def source(blob: bytes, frame: int, rate: float | None) -> AsyncIterator[list[LogLine]]:
    """Batches as `follow_logs` yields them, one a read.

    Unpaced, every read gets `CHUNK` bytes. Paced, lines "arrive" at `rate` a second and a read
    gets all that arrived since the last one (at most `CHUNK`), as from a socket; with nothing there
    yet it waits a millisecond.
    """
    decoder, resume = FrameDecoder(tty=False), ResumePoint()
    start = time.monotonic()
    pos = 0
    while pos < len(blob):
        if rate:
            arrived = min(len(blob), int((time.monotonic() - start) * rate) * frame)
            if arrived <= pos:
                await asyncio.sleep(0.001)  # a select() wakes up about this often for a busy socket
                continue
            end = min(arrived, pos + CHUNK)
        else:
            end = pos + CHUNK
        raw = decoder.feed(blob[pos:end])
        pos = end
        await asyncio.sleep(0)  # a socket read returns to the loop too
        for batch in _batches(raw, resume, False):
            yield batch


async def run(lines: int, rate: float | None, presses: bool, freeze: bool = True) -> dict[str, Any]:
    """Feed `lines` lines to a LogView; return the figures."""
    from textual.app import App, ComposeResult

    from tui.widgets.log_view import LogView

    class FloodApp(App[None]):
        def compose(self) -> ComposeResult:
            yield LogView(max_lines=MAX_LINES, id="flood")

        def on_ready(self) -> None:
            if freeze:
                gc.freeze()  # as BerthApp does once its first frame is up: measure what berth does

    blob, frame = stream_bytes(lines)
    pauses: list[tuple[int, float]] = []
    began = [0.0]

    def timed_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], time.perf_counter() - began[0]))

    gc.callbacks.append(timed_gc)
    app = FloodApp()
    clock = FrameClock(app)
    latencies: list[float] = []
    async with app.run_test(size=LOGVIEW_SIZE) as pilot:
        view = app.query_one("#flood", LogView)
        view.focus()
        await pilot.pause()
        acted: list[float] = []
        toggle = view.action_toggle_timestamps

        def timed_toggle() -> None:  # notes when the key's action runs
            acted.append(time.monotonic())
            toggle()

        view.action_toggle_timestamps = timed_toggle  # type: ignore[method-assign]
        split: list[tuple[float, float]] = []
        frame_costs: list[float] = []
        refresh = app.screen._compositor_refresh

        def timed_refresh() -> None:  # the cost of each frame: compositor update and its output
            began = time.perf_counter()
            refresh()
            frame_costs.append(time.perf_counter() - began)

        app.screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]
        frames_before = clock.frames
        pauses.clear()  # the app's start-up is not part of the flood
        cpu_before = time.process_time()
        start = time.monotonic()
        view.attach(source(blob, frame, rate))
        while view.buffer.end < lines:
            if presses and view.buffer.end:
                changed = _flipped(view, not view.show_timestamps)
                pressed, shown = await _press_and_time(app, clock, "t", changed)
                if view.buffer.end < lines:
                    latencies.append(shown - pressed)
                    split.append((acted[-1] - pressed, shown - acted[-1]))
                await asyncio.sleep(0.2)
            else:
                await asyncio.sleep(0.005)
        seconds = time.monotonic() - start
        cpu = time.process_time() - cpu_before
        frames = clock.frames - frames_before
        view.detach()
    gc.callbacks.remove(timed_gc)
    full = [pause for generation, pause in pauses if generation == 2]
    return {
        "gc_seconds": sum(pause for _, pause in pauses),
        "gc_full": len(full),
        "gc_full_ms_max": max(full, default=0.0) * 1000,
        "lines_per_second": lines / seconds,
        "cpu_share": cpu / seconds,
        "frames": frames,
        "frame_ms_median": median(frame_costs) * 1000,
        "frame_ms_p95": p95(frame_costs) * 1000,
        "frame_share": sum(frame_costs) / seconds,
        "flushes": view.flush_count,
        "key_ms_median": median(latencies) * 1000,
        "key_ms_p95": p95(latencies) * 1000,
        "key_to_action_ms_median": median([before for before, _ in split]) * 1000,
        "action_to_frame_ms_median": median([after for _, after in split]) * 1000,
        "action_to_frame_ms_p95": p95([after for _, after in split]) * 1000,
        "presses": len(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    """Run once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--lines", type=int, default=400_000, help="lines to feed (400,000)")
    parser.add_argument("--rate", type=float, help="lines a second (default: as fast as the view takes them)")
    parser.add_argument("--no-presses", action="store_true", help="do not press `t` meanwhile")
    parser.add_argument(
        "--no-freeze", action="store_true", help="no gc.freeze() once the app is up (BerthApp does it)"
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.lines, args.rate, not args.no_presses, not args.no_freeze))
    for name, value in figures.items():
        print(f"{name:>18}: {value:,.3f}" if isinstance(value, float) else f"{name:>18}: {value:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
