"""The log widget driven with Textual's Pilot in a tiny host app: what it shows, keys, sources, limits."""

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from rich.segment import Segment
from rich.style import Style
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.geometry import Region
from textual.pilot import Pilot
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Input
from textual.worker import WorkerState

from backends.errors import Unreachable
from backends.streams import LogLine
from tui.screens.picker import PickerScreen
from tui.widgets import log_view
from tui.widgets.log_buffer import MARKER
from tui.widgets.log_view import LogStatus, LogView

SIZE = (100, 30)
STAMP = "2024-05-01T12:34:56.123456789Z"


class Host(App[None]):
    """Composes just a LogView, focused, and records what it posts."""

    def __init__(self, **options: object) -> None:
        super().__init__()
        self.options = options
        self.ranges: list[LogView.RangeRequested] = []

    def compose(self) -> ComposeResult:
        yield LogView(**self.options)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one(LogView).focus()

    def on_log_view_range_requested(self, event: LogView.RangeRequested) -> None:
        self.ranges.append(event)


def numbered(start: int, count: int, stream: str = "stdout", stamp: str | None = None) -> list[LogLine]:
    return [LogLine(f"line {i}", stream, stamp) for i in range(start, start + count)]


def shown(view: LogView) -> list[str]:
    """The visible rows without the two-cell gutter, trailing blank rows dropped."""
    rows = [row[2:] for row in view.visible_text()]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def toasts(app: App[None]) -> list[str]:
    # Textual keeps notifications in a private list; its own tests read it the same way.
    return [f"{n.title} {n.message}" for n in app._notifications]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.pause()


async def test_lines_are_shown_in_order_with_streams_marked() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append([LogLine("first"), LogLine("oops", "stderr"), LogLine("reconnected", "system")])
        view.append(numbered(0, 3))
        await settle(pilot)
        rows = view.visible_text()
        assert [row[2:] for row in rows[:6]] == ["first", "oops", "reconnected", "line 0", "line 1", "line 2"]
        assert rows[1].startswith("▌")  # stderr has its mark in the gutter
        assert rows[2].startswith("·")  # and berth's own lines theirs
        assert rows[0].startswith("  ")
        strip = view.lines_widget.render_line(1)
        stderr_style = view.lines_widget.get_component_rich_style("log-view--stderr")
        mark = next(iter(strip))
        assert mark.text == "▌ " and mark.style is not None and mark.style.color == stderr_style.color
        assert view.line_count == 6 and view.line(1) == LogLine("oops", "stderr")
        assert "6 / 100,000 lines" in view.status_text()


async def test_follow_pauses_on_scroll_up_and_end_resumes() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        lines = view.lines_widget
        view.append(numbered(0, 1000))
        await settle(pilot)
        assert view.follow and lines.scroll_y == lines.max_scroll_y
        assert shown(view)[-1] == "line 999"
        assert "following" in view.status_text()

        await pilot.press("pageup")
        await settle(pilot)
        assert not view.follow
        before = shown(view)
        assert before[-1] != "line 999"
        view.append(numbered(1000, 1234))
        await settle(pilot)
        assert shown(view) == before  # paused: what you are reading stays put
        assert "paused · 1,234 new lines — End to follow" in view.status_text()

        await pilot.press("end")
        await settle(pilot)
        assert view.follow and view.unseen == 0
        assert shown(view)[-1] == "line 2233"
        view.append(numbered(2234, 10))
        await settle(pilot)
        assert shown(view)[-1] == "line 2243"  # following again

        await pilot.press("up")
        assert not view.follow
        await pilot.press("G")
        await settle(pilot)
        assert view.follow and lines.scroll_y == lines.max_scroll_y


async def test_paused_view_stays_on_its_lines_while_old_ones_fall_off() -> None:
    app = Host(max_lines=500)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append(numbered(0, 500))
        await settle(pilot)
        await pilot.press("pageup", "pageup")
        await settle(pilot)
        before = shown(view)
        view.append(numbered(500, 100))  # 100 lines fall off the front
        await settle(pilot)
        assert view.line_count == 500 and view.line(0).text == "line 100"
        assert shown(view) == before


async def test_search_and_n_N_step_through_matches() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append([LogLine(f"line {i} {'NEEDLE' if i % 10 == 3 else 'hay'}") for i in range(1000)])
        await settle(pilot)
        # Following, the search lands on the newest match at or above the bottom of the screen.
        assert view.search("needle") == 993
        assert not view.follow
        assert "match 100/100" in view.status_text()
        assert view.next_match() == 3  # wraps around to the first
        await pilot.pause()
        assert any("wrapped" in toast for toast in toasts(app))
        assert view.next_match() == 13
        assert view.next_match() == 23
        assert view.previous_match() == 13
        assert "match 2/100" in view.status_text()
        await settle(pilot)
        assert any(row.endswith("line 13 NEEDLE") and row.startswith("▸") for row in view.visible_text())

        # The same with the keys: `/`, a query, enter, then n and N.
        await pilot.press("end", "slash")
        await pilot.press(*"~line 5\\d3 ")
        await pilot.press("enter")
        await settle(pilot)
        assert view.current_match == 593  # following, so the newest "line 5?3"
        await pilot.press("N")
        assert view.current_match == 583
        await pilot.press("n", "n")
        assert view.current_match == 503  # past the last, round to the first
        await settle(pilot)
        assert "line 503 NEEDLE" in "\n".join(view.visible_text())
        assert app.focused is view.lines_widget  # the prompt closed and gave the keys back


async def test_invalid_regex_and_missing_search_are_told_not_raised() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append(numbered(0, 10))
        assert view.next_match() is None
        await pilot.press("f")
        assert not view.filtering
        assert view.search("~(unclosed") is None
        assert view.matches.pattern is None
        assert view.search("absent") is None
        await pilot.press("n")
        await settle(pilot)
        notes = toasts(app)
        assert any("press / to search" in note for note in notes)
        assert any("Search first (/); then f shows only the matching lines" in note for note in notes)
        assert any("'(unclosed' is not a valid regular expression" in note for note in notes)
        assert sum("No line matches 'absent'" in note for note in notes) == 2
        assert shown(view) == [f"line {i}" for i in range(10)]
        assert app.is_running


async def test_filter_shows_matches_with_context_and_separators() -> None:
    app = Host(context_lines=2)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append([LogLine(f"line {i}{' ERROR' if i in (10, 12, 50) else ''}") for i in range(100)])
        view.search("error")
        await pilot.press("f")
        await settle(pilot)
        assert view.filtering and "filter ±2" in view.status_text()
        rows = shown(view)
        assert rows[:7] == [
            "line 8",
            "line 9",
            "line 10 ERROR",
            "line 11",
            "line 12 ERROR",
            "line 13",
            "line 14",
        ]
        assert rows[7].strip().startswith("┈")
        assert rows[8:] == ["line 48", "line 49", "line 50 ERROR", "line 51", "line 52"]

        # New lines keep the filter: a match brings its context before and after it.
        view.append([LogLine(f"line {i}{' ERROR' if i == 120 else ''}") for i in range(100, 130)])
        await settle(pilot)
        rows = shown(view)
        assert rows[-6].strip().startswith("┈")
        assert rows[-5:] == ["line 118", "line 119", "line 120 ERROR", "line 121", "line 122"]

        view.context_lines = 0
        await settle(pilot)
        assert [row for row in shown(view) if not row.strip().startswith("┈")] == [
            "line 10 ERROR",
            "line 12 ERROR",
            "line 50 ERROR",
            "line 120 ERROR",
        ]

        await pilot.press("f")
        await settle(pilot)
        assert not view.filtering
        assert view.lines_widget.virtual_size.height == 130
        # The line that was at the top stays at the top, now with its neighbours back.
        assert shown(view)[:3] == ["line 10 ERROR", "line 11", "line 12 ERROR"]


async def test_timestamps_and_wrap_change_the_rendering() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        long = "x" * 250
        view.append([LogLine("short", "stdout", STAMP), LogLine(long, "stdout", STAMP), LogLine("after")])
        await settle(pilot)
        lines = view.lines_widget
        assert shown(view)[0] == "short"
        assert lines.virtual_size.height == 3
        assert lines.virtual_size.width == 2 + 250

        await pilot.press("t")
        await settle(pilot)
        assert shown(view)[0] == "2024-05-01 12:34:56.123Z short"  # dimmed engine time before the text
        assert shown(view)[2] == "after"  # a line without a timestamp shows none
        stamp_style = list(lines.render_line(0))[1].style
        assert stamp_style is not None
        assert stamp_style.color == lines.get_component_rich_style("log-view--timestamp").color

        await pilot.press("w")
        await settle(pilot)
        width = lines.scrollable_content_region.width
        room = width - 2 - 25  # gutter, then the timestamp and its space
        rows_for_long = -(-250 // room)
        assert lines.virtual_size.height == 1 + rows_for_long + 1
        rows = shown(view)
        assert rows[1] == "2024-05-01 12:34:56.123Z " + "x" * room
        assert rows[2] == " " * 25 + "x" * room  # continuation rows indented under the text
        assert rows[rows_for_long + 1] == "after"
        assert "wrap timestamps" in view.status_text()

        await pilot.press("t")
        await settle(pilot)
        assert lines.virtual_size.height == 1 + -(-250 // (width - 2)) + 1

        await pilot.press("w")
        await settle(pilot)
        assert lines.virtual_size.height == 3
        assert shown(view)[1] == "x" * (width - 2)  # one row, cropped: scroll sideways for the rest


async def test_incremental_layout_matches_a_fresh_one_as_the_ring_turns() -> None:
    # Wrapped heights and filtered rows are kept up as lines come and go; they must equal what a
    # layout from scratch gives, or rows would point at the wrong lines.
    app = Host(max_lines=60, context_lines=1)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        lines = view.lines_widget
        await pilot.press("w")
        view.search("boom")
        for start in range(0, 400, 7):
            view.append(
                [
                    LogLine(
                        f"{i} " + ("boom " if i % 13 == 0 else "") + "y" * (i * 37 % 230), "stdout", STAMP
                    )
                    for i in range(start, start + 7)
                ]
            )
            if start == 140:
                await pilot.press("f")
            if start == 280:
                await pilot.press("t")
        await settle(pilot)
        assert view.filtering and view.wrap and view.show_timestamps
        incremental = (list(lines._ends), lines._origin, list(view.filtered.rows), lines.virtual_size)
        view._rebuild_filter()
        lines.relayout()
        fresh_ends = [end - lines._origin for end in lines._ends]
        assert [end - incremental[1] for end in incremental[0]] == fresh_ends
        assert incremental[2] == list(view.filtered.rows)
        assert incremental[3] == lines.virtual_size
        assert view.line_count == 60
        await pilot.press("end")
        await settle(pilot)
        last = view.buffer.text(view.filtered.rows[-1])
        bottom = shown(view)[-1].strip()
        assert bottom and last.endswith(bottom)  # the last wrapped row of the newest filtered line


async def test_colours_kept_or_stripped() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append([LogLine("status \x1b[31mFAILED\x1b[0m now")])
        await settle(pilot)
        lines = view.lines_widget
        assert shown(view)[0] == "status FAILED now"
        coloured = [seg for seg in lines.render_line(0) if seg.text == "FAILED"]
        assert coloured and coloured[0].style is not None and coloured[0].style.color is not None
        assert coloured[0].style.color.number == 1  # ANSI red, parsed by Text.from_ansi

        await pilot.press("c")
        await settle(pilot)
        assert shown(view)[0] == "status FAILED now"
        base = lines.rich_style.color
        assert all(
            seg.style is None or seg.style.color == base for seg in lines.render_line(0) if seg.text.strip()
        )
        assert "colours" not in view.status_text()


async def test_save_writes_the_buffer_or_the_filtered_view(tmp_path: Path) -> None:
    app = Host(source_name="web 1/nginx")
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append([LogLine(f"line {i}{' hit' if i == 5 else ''}", "stdout", STAMP) for i in range(20)])
        saved = view.save(tmp_path / "all.log")
        assert saved == tmp_path / "all.log"
        assert saved.read_text().splitlines() == [f"line {i}{' hit' if i == 5 else ''}" for i in range(20)]
        await pilot.pause()
        assert any("Saved 20 lines to" in note for note in toasts(app))

        view.search("hit")
        await pilot.press("f", "t")
        filtered = view.save(tmp_path / "filtered.log")
        assert filtered is not None
        assert filtered.read_text().splitlines() == [
            f"{STAMP} line {i}{' hit' if i == 5 else ''}" for i in range(3, 8)
        ]
        await pilot.pause()
        assert any("Saved 5 lines to" in note for note in toasts(app))

        # Errors are one sentence each, and nothing is overwritten.
        assert view.save(tmp_path / "missing" / "x.log") is None
        assert view.save(tmp_path / "all.log") is None
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        denied = view.save(locked / "x.log")
        await pilot.pause()
        notes = toasts(app)
        assert any(f"the folder {tmp_path / 'missing'} does not exist" in note for note in notes)
        assert any(f"{tmp_path / 'all.log'} already exists" in note for note in notes)
        if os.geteuid() != 0:  # root writes anywhere
            assert denied is None and any("permission denied" in note for note in notes)

        # ctrl+s asks with a sensible default; the answer is where it goes.
        await pilot.press("ctrl+s")
        await settle(pilot)
        prompt = app.focused
        assert isinstance(prompt, Input) and prompt.parent is not None and prompt.parent.display
        assert prompt.value.startswith("~/berth-web-1-nginx-") and prompt.value.endswith(".log")
        prompt.value = str(tmp_path / "keyed.log")
        await pilot.press("enter")
        await settle(pilot)
        assert (tmp_path / "keyed.log").read_text().splitlines()[0] == f"{STAMP} line 3"
        assert app.focused is view.lines_widget


async def test_marker_adds_a_distinct_system_line() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append(numbered(0, 3))
        await pilot.press("m")
        view.append(numbered(3, 1))
        await settle(pilot)
        marker = view.line(3)
        assert marker.stream == "system" and "marker" in marker.text and marker.timestamp
        assert view.buffer.code(view.buffer.first + 3) == MARKER
        rows = view.visible_text()
        assert rows[3].startswith("━") and "marker" in rows[3]
        assert rows[4].endswith("line 3")


async def test_escape_closes_the_search_prompt() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append(numbered(0, 5))
        await pilot.press("slash", "l", "escape")
        await settle(pilot)
        assert app.focused is view.lines_widget
        assert view.matches.pattern is None


async def test_range_key_asks_the_owner_for_another_range() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, PickerScreen)
        await pilot.press("down", "down", "enter")  # tail 100, tail 1000, since 5m
        await settle(pilot)
        assert [(e.since, e.tail, e.label) for e in app.ranges] == [("5m", None, "since 5m")]
        assert app.ranges[0].control is view
        assert "since 5m" in view.status_text()
        # The owner restarts its source: clear() empties the view but keeps the search.
        view.append(numbered(0, 10))
        assert view.search("3") == 3
        view.clear()
        assert view.line_count == 0 and view.follow and shown(view) == []
        view.append(numbered(100, 40))
        hits = [view.buffer.text(seq) for seq in view.matches.seqs]
        assert hits == ["line 103", "line 113", "line 123", *(f"line {i}" for i in range(130, 140))]


async def test_bindings_have_ids_and_descriptions() -> None:
    ids = {binding.id for binding in LogView.BINDINGS}  # type: ignore[union-attr]
    assert ids == {
        "log.search",
        "log.next",
        "log.previous",
        "log.filter",
        "log.timestamps",
        "log.wrap",
        "log.colours",
        "log.save",
        "log.marker",
        "log.range",
        "log.follow",
        "log.copy",
    }
    for binding in LogView.BINDINGS:
        assert isinstance(binding, Binding)
        assert binding.description and binding.tooltip
        assert callable(getattr(LogView, f"action_{binding.action}", None)), binding.action
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        app.set_keymap({"log.wrap": "W"})
        await pilot.press("W")
        assert app.query_one(LogView).wrap


async def test_appending_100k_lines_in_batches_is_fast() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        batches = [
            numbered(start, 1000, "stderr" if start % 3000 == 0 else "stdout", STAMP)
            for start in range(0, 100_000, 1000)
        ]
        lines = view.lines_widget
        drawn: list[int] = []
        build = lines._strips

        def counting_build(
            seq: int, scroll_x: int, width: int, base: Style, fold: int = 0
        ) -> tuple[Strip, ...]:
            drawn.append(seq)
            return build(seq, scroll_x, width, base, fold)

        lines._strips = counting_build  # type: ignore[method-assign]
        started = time.perf_counter()
        for batch in batches:
            view.append(batch)
        await settle(pilot)
        elapsed = time.perf_counter() - started
        # Only lines that were on screen were ever styled and rendered.
        assert 0 < len(set(drawn)) <= lines.size.height
        assert min(drawn) >= 100_000 - lines.size.height
        assert view.line_count == 100_000
        assert shown(view)[-1] == "line 99999"
        assert elapsed < 0.6, f"100k lines took {elapsed:.2f} s"
        print(f"appended 100k lines in {elapsed * 1000:.0f} ms")


async def test_a_million_lines_stay_within_the_ring_and_bounded_memory() -> None:
    app = Host(max_lines=100_000)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append(numbered(0, 1000))
        await settle(pilot)
        gc.collect()
        before = rss_bytes()
        for start in range(1000, 1_000_000, 1000):
            view.append([LogLine(f"l{i}") for i in range(start, start + 1000)])
            if start % 100_000 == 0:
                await pilot.pause()  # let it draw now and then, as it would live
        await settle(pilot)
        growth = rss_bytes() - before
        assert view.line_count == view.buffer.max_lines == 100_000
        assert view.line(0).text == "l900000" and view.line(-1).text == "l999999"
        assert shown(view)[-1] == "l999999"
        assert growth < 60 * 1024 * 1024, f"RSS grew {growth / 2**20:.1f} MiB"
        print(f"RSS growth for 1M lines: {growth / 2**20:.1f} MiB")


async def batches_then(
    error: Exception | None, count: int, size: int, closed: list[bool]
) -> AsyncIterator[Sequence[LogLine]]:
    try:
        for b in range(count):
            yield numbered(b * size, size)
            await asyncio.sleep(0)
        if error is not None:
            raise error
    finally:
        closed.append(True)


async def wait_for(pilot: Pilot[None], condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await pilot.pause(0.01)


async def test_attach_consumes_batches_and_shows_the_error() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        closed: list[bool] = []
        worker = view.attach(
            batches_then(Unreachable("Docker on local stopped answering.", "It will retry."), 5, 100, closed)
        )
        await wait_for(
            pilot, lambda: worker.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)
        )
        assert worker.state == WorkerState.SUCCESS  # the error is shown, not raised
        await settle(pilot)
        assert view.line_count == 501
        assert [view.line(i).text for i in (0, 499)] == ["line 0", "line 499"]
        last = view.line(-1)
        assert last.stream == "system"
        assert last.text == "Docker on local stopped answering. It will retry."
        assert shown(view)[-1] == "Docker on local stopped answering. It will retry."
        assert closed == [True]


async def test_attach_says_when_the_stream_ends_and_bounds_the_flush_rate() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        closed: list[bool] = []
        refreshes = 0
        original_refresh = view.lines_widget.refresh

        def counting_refresh(*args: object, **kwargs: object) -> object:
            nonlocal refreshes
            refreshes += 1
            return original_refresh(*args, **kwargs)  # type: ignore[arg-type]

        view.lines_widget.refresh = counting_refresh  # type: ignore[method-assign,assignment]
        started = time.monotonic()
        worker = view.attach(batches_then(None, 200, 50, closed))
        await wait_for(pilot, lambda: worker.state == WorkerState.SUCCESS)
        elapsed = time.monotonic() - started
        assert view.line_count == 200 * 50 + 1
        assert view.line(-1).text == "stream ended" and view.line(-1).stream == "system"
        # 200 batches, but flushes (and the refreshes they cause) come at most ~30 times a second.
        assert 1 <= view.flush_count <= elapsed * 30 + 2
        assert view.flush_count < 40
        assert refreshes < 60
        print(f"200 batches in {elapsed * 1000:.0f} ms: {view.flush_count} flushes, {refreshes} refreshes")
        assert closed == [True]


async def test_detach_stops_the_source() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        closed: list[bool] = []

        async def endless() -> AsyncIterator[Sequence[LogLine]]:
            n = 0
            try:
                while True:
                    yield numbered(n, 1)
                    n += 1
                    await asyncio.sleep(0.005)
            finally:
                closed.append(True)

        worker = view.attach(endless())
        await wait_for(pilot, lambda: view.line_count + len(view._pending) >= 5)
        view.detach()
        await wait_for(pilot, lambda: worker.state == WorkerState.CANCELLED)
        await settle(pilot)
        held = view.line_count
        await pilot.pause(0.1)
        assert view.line_count == held >= 5
        assert closed == [True]
        assert view.line(-1).stream == "stdout"  # no "stream ended": it was stopped, not ended

        # Attaching again replaces the source (one per view).
        first = view.attach(endless())
        second = view.attach(batches_then(None, 1, 3, []))
        await wait_for(pilot, lambda: second.state == WorkerState.SUCCESS)
        assert first.is_cancelled
        assert view.line(-1).text == "stream ended" and view.line(-2).text == "line 2"


async def test_plain_lines_are_drawn_exactly_as_the_styled_way_draws_them() -> None:
    # Plain stdout/stderr lines skip Rich's Text; every row must still come out segment for segment
    # (text and style) as the Text way renders it, in each mode the view has.
    lines = [
        LogLine("plain"),
        LogLine("oops", "stderr", STAMP),
        LogLine("", "stdout", STAMP),
        LogLine("", "stderr"),
        LogLine("tab\there, wide 日本語 and ✓ marks", "stdout", STAMP),
        LogLine("bell \x07 and a progress\rbar", "stderr"),
        LogLine("x" * 150, "stdout", "not-a-stamp"),
        LogLine("y" * 97),  # exactly the width with its gutter
        LogLine("reconnected", "system", STAMP),
        LogLine("\x1b[31mred\x1b[0m text"),
    ]
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        body = view.lines_widget
        view.append(lines)
        await settle(pilot)

        def rows() -> list[list[tuple[str, Style | None]]]:
            body._cache.clear()
            strips = [body.render_line(y) for y in range(body.scrollable_content_region.height)]
            return [[(segment.text, segment.style) for segment in strip] for strip in strips]

        built = body._segments
        plain: list[int] = []

        def counted(seq: int, *args: object) -> object:
            made = built(seq, *args)  # type: ignore[arg-type]
            if made is not None:
                plain.append(seq)
            return made

        def both_ways() -> tuple[list[list[tuple[str, Style | None]]], list[list[tuple[str, Style | None]]]]:
            plain.clear()
            body._segments = counted  # type: ignore[method-assign,assignment]
            fast = rows()
            assert len(plain) >= 5, "the plain lines should take the quick way"
            body._segments = lambda *args: None  # type: ignore[method-assign]
            try:
                return fast, rows()
            finally:
                del body._segments

        for toggle in (None, "t", "c", "w", "t", "c"):
            if toggle:
                await pilot.press(toggle)
                await settle(pilot)
            fast, styled = both_ways()
            assert fast == styled, f"after {toggle!r}"
        await pilot.press("w")  # no wrap: scrolled sideways, rows are cut the same way too
        body.scroll_to(x=7, animate=False, immediate=True)
        await settle(pilot)
        assert body.scroll_offset.x == 7
        fast, styled = both_ways()
        assert fast == styled
        assert any("日本語" in "".join(text for text, _ in row) for row in fast)


async def test_rows_go_to_the_screen_as_textuals_own_styling_would_make_them() -> None:
    # With a plain box the view hands its rows to the compositor itself, skipping Textual's per-row
    # styling; what comes out must be what that styling makes, row for row and segment for segment.
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        body = view.lines_widget
        view.append([*numbered(0, 50, "stderr", STAMP), LogLine("x" * 150), LogLine("\x1b[32mgreen\x1b[0m")])
        await settle(pilot)

        def both_ways(crop: Region) -> tuple[list[list[Segment]], list[list[Segment]]]:
            ours = [list(strip) for strip in body.render_lines(crop)]
            body.refresh()  # Textual's cache of styled rows is dropped: they are styled anew
            body._pass = body._pass_values()
            try:
                textuals = [list(strip) for strip in ScrollView.render_lines(body, crop)]
            finally:
                body._pass = None
            return ours, textuals

        full = Region(0, 0, *body.size)
        for toggle in (None, "t", "w", "w"):
            if toggle:
                await pilot.press(toggle)
                await settle(pilot)
            assert body._plain_box()
            for crop in (full, Region(3, 2, 40, 5)):
                ours, textuals = both_ways(crop)
                assert ours == textuals, f"after {toggle!r}, {crop}"
        body.scroll_to(x=9, animate=False, immediate=True)
        view.set_follow(False)
        body.scroll_to(y=30, animate=False, immediate=True)
        await settle(pilot)
        ours, textuals = both_ways(full)
        assert ours == textuals
        assert any("x" * 20 in "".join(segment.text for segment in row) for row in ours)

        # Not plain (padding here): Textual styles the rows, and the text is where padding puts it.
        body.styles.padding = (0, 0, 0, 3)
        await settle(pilot)
        assert not body._plain_box()
        first = body.render_lines(Region(0, 0, *body.size))[0].text
        assert first.startswith("   " + body.render_line(0).text[:20])


async def test_the_status_row_is_drawn_again_only_when_it_changes() -> None:
    app = Host(max_lines=100)
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        status = view.query_one(LogStatus)
        drawn: list[str] = []
        render = status.render

        def counted() -> str:
            drawn.append(render())
            return drawn[-1]

        status.render = counted  # type: ignore[method-assign]
        view.append(numbered(0, 100))
        await settle(pilot)
        assert drawn and "100 / 100 lines" in drawn[-1]
        drawn.clear()
        for start in range(100, 1000, 100):  # a full ring: the count no longer changes
            view.append(numbered(start, 100))
            await settle(pilot)
        assert shown(view)[-1] == "line 999"
        assert drawn == []
        await pilot.press("t")
        await settle(pilot)
        assert len(drawn) == 1 and "timestamps" in drawn[0]


async def test_lines_narrower_than_the_view_scroll_sideways_only_once_they_are_wider() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        lines = view.lines_widget
        view.append(numbered(0, 5, "stdout", STAMP))
        await settle(pilot)
        width = lines.scrollable_content_region.width
        assert lines.virtual_size.width == width and lines.max_scroll_x == 0
        await pilot.press("t")  # 2 + 25 + 6 cells: still narrower than the view
        await settle(pilot)
        assert lines.virtual_size.width == width and lines.max_scroll_x == 0
        assert shown(view)[0] == "2024-05-01 12:34:56.123Z line 0"

        await pilot.resize_terminal(24, 10)  # now the timestamped lines are wider than the view
        await settle(pilot)
        assert lines.virtual_size.width == 2 + 25 + len("line 0")
        assert lines.max_scroll_x == lines.virtual_size.width - lines.scrollable_content_region.width > 0
        await pilot.resize_terminal(*SIZE)
        await settle(pilot)
        assert lines.virtual_size.width == lines.scrollable_content_region.width


async def test_a_flood_is_flushed_less_often_than_a_trickle(monkeypatch: pytest.MonkeyPatch) -> None:
    # Once a flush brings a screenful, every frame shows only new lines: the next flush waits the
    # longer flood interval. A clock of our own says when "now" is.
    now = [1000.0]
    monkeypatch.setattr(log_view, "monotonic", lambda: now[0])
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        between = (log_view.FLUSH_INTERVAL + log_view.FLOOD_FLUSH_INTERVAL) / 2

        def arrive(count: int) -> None:
            view._pending.add(numbered(view.buffer.end + len(view._pending), count))
            view._schedule_flush()

        arrive(3)  # a trickle: flushed at once, and again as soon as the short interval is over
        assert view.flush_count == 1
        now[0] += between
        arrive(3)
        assert view.flush_count == 2

        arrive(SIZE[1] * 2)  # a screenful and more: waits, as any flush within the short interval
        now[0] += log_view.FLUSH_INTERVAL
        view.flush()
        assert view.flush_count == 3
        now[0] += between  # past the short interval, within the flood one: it waits
        arrive(SIZE[1] * 2)
        assert view.flush_count == 3
        await pilot.pause(log_view.FLOOD_FLUSH_INTERVAL * 2)  # the timer set for it runs
        await settle(pilot)
        assert view.flush_count == 4
        assert shown(view)[-1] == f"line {view.buffer.end - 1}"


async def test_y_copies_the_match_line_else_the_screen_with_osc_52() -> None:
    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        view = app.query_one(LogView)
        view.append(numbered(0, 5))
        await settle(pilot)
        await pilot.press("y")
        assert app.clipboard.splitlines() == [f"  line {i}" for i in range(5)]
        await pilot.press("slash", *"line 3", "enter")
        await settle(pilot)
        await pilot.press("y")
        assert app.clipboard == "line 3"
        assert any("Copied 1 line" in t for t in toasts(app))
