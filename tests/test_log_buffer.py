"""The log widget's pure logic (ring buffer, matches, filtered view) checked against plain models."""

import re
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text

from backends.streams import LogLine
from tui.widgets.log_buffer import (
    MARKER,
    SEPARATOR,
    STDERR,
    FilteredView,
    LineBatch,
    LogBuffer,
    Matches,
    QueryError,
    ansi_ready,
    compile_query,
    plain_text,
    short_stamp,
)


def lines(start: int, count: int, stream: str = "stdout") -> list[LogLine]:
    return [LogLine(f"line {i}", stream) for i in range(start, start + count)]


def test_ring_keeps_the_newest_lines_in_order() -> None:
    buffer = LogBuffer(max_lines=5)
    assert buffer.extend(lines(0, 3)) == 0
    assert [line.text for line in (buffer[i] for i in range(len(buffer)))] == ["line 0", "line 1", "line 2"]
    assert buffer.extend(lines(3, 4)) == 2  # two fell off the front
    assert len(buffer) == 5
    assert (buffer.first, buffer.end) == (2, 7)
    assert [buffer[i].text for i in range(5)] == [f"line {i}" for i in range(2, 7)]
    assert buffer[-1].text == "line 6"
    with pytest.raises(IndexError):
        buffer[5]
    # A batch bigger than the ring keeps only its tail.
    assert buffer.extend(lines(7, 12)) == 12
    assert [buffer[i].text for i in range(5)] == [f"line {i}" for i in range(14, 19)]
    assert buffer.texts(15, 17) == ["line 15", "line 16"]
    assert buffer.texts(0, 100) == [f"line {i}" for i in range(14, 19)]  # clipped to what is held


def test_streams_stamps_and_markers_round_trip() -> None:
    buffer = LogBuffer(max_lines=3)
    buffer.extend([LogLine("out"), LogLine("err", "stderr", "2024-05-01T12:00:00Z"), LogLine("odd", "weird")])
    buffer.append_marker("mark", "2024-05-01T12:00:01Z")
    assert [buffer[i] for i in range(3)] == [
        LogLine("err", "stderr", "2024-05-01T12:00:00Z"),
        LogLine("odd", "stdout"),  # an unknown stream is shown as stdout
        LogLine("mark", "system", "2024-05-01T12:00:01Z"),
    ]
    assert buffer.code(buffer.first) == STDERR
    assert buffer.code(buffer.end - 1) == MARKER


def test_clear_keeps_counting_seqs() -> None:
    buffer = LogBuffer(max_lines=4)
    buffer.extend(lines(0, 6))
    buffer.clear()
    assert len(buffer) == 0
    assert buffer.first == buffer.end == 6
    buffer.extend(lines(100, 5))
    assert [buffer[i].text for i in range(4)] == [f"line {i}" for i in range(101, 105)]
    assert buffer.text(buffer.first) == "line 101"


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 12),
    batches=st.lists(st.integers(0, 30), max_size=15),
    clear_at=st.integers(-1, 15),
)
def test_ring_matches_a_bounded_deque(capacity: int, batches: list[int], clear_at: int) -> None:
    buffer = LogBuffer(max_lines=capacity)
    model: deque[str] = deque(maxlen=capacity)
    counter = 0
    for step, size in enumerate(batches):
        if step == clear_at:
            buffer.clear()
            model.clear()
        batch = lines(counter, size)
        counter += size
        before = len(model)
        dropped = buffer.extend(batch)
        model.extend(line.text for line in batch)
        assert dropped == before + size - len(model)
        assert [buffer[i].text for i in range(len(buffer))] == list(model)
        assert buffer.texts(buffer.first, buffer.end) == list(model)


def test_queries_are_case_insensitive_text_or_tilde_regex() -> None:
    assert compile_query("Err.or").search("an ERR.OR here")
    assert not compile_query("Err.or").search("an ERROR here")  # plain text: the dot is a dot
    assert compile_query("~err.r").search("an ERROR here")
    with pytest.raises(QueryError, match="not a valid regular expression"):
        compile_query("~(unclosed")


def test_plain_text_is_what_rich_shows_from_ansi() -> None:
    samples = [
        "plain",
        "\x1b[31mred\x1b[0m and \x1b[1;32mbold green\x1b[0m",
        "tab\there",
        "progress 10%\rprogress 100%\r",
        "bell\x07 and nul\x00 and a lone esc \x1b",
        "osc \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end",
        "a\nb",
    ]
    for sample in samples:
        shown = Text.from_ansi(ansi_ready(sample))
        shown.expand_tabs()
        plain = plain_text(sample)
        assert "\n" not in plain and "\x1b" not in plain
        if "\x1b" not in shown.plain:  # the widget falls back to plain_text otherwise
            assert shown.plain == plain, sample
    assert plain_text("progress 10%\rprogress 100%\r") == "progress 100%"
    assert plain_text("a\tb") == "a       b"


def test_short_stamp() -> None:
    assert short_stamp("2024-05-01T12:34:56.123456789Z") == "2024-05-01 12:34:56.123Z"
    assert short_stamp("2024-05-01T12:34:56+02:00") == "2024-05-01 12:34:56+02:00"
    assert short_stamp("yesterday") == "yesterday"


def test_matches_follow_the_buffer() -> None:
    buffer = LogBuffer(max_lines=10)
    buffer.extend([LogLine(f"{'hit' if i % 3 == 0 else 'miss'} {i}") for i in range(10)])
    matches = Matches()
    matches.set("hit", compile_query("hit"), buffer)
    assert list(matches.seqs) == [0, 3, 6, 9]
    assert (matches.after(3), matches.before(3), matches.at_or_before(5)) == (6, 0, 3)
    assert matches.position(6) == 3 and matches.position(5) == 0
    matches.current = 0
    start = buffer.end
    buffer.extend([LogLine(f"{'hit' if i % 3 == 0 else 'miss'} {i}") for i in range(10, 16)])
    matches.trim(buffer.first)
    assert matches.scan(buffer, start, buffer.end) == [12, 15]
    assert list(matches.seqs) == [6, 9, 12, 15]
    assert matches.current is None  # its line fell off


def reference_rows(matching: list[bool], first: int, context: int) -> list[int]:
    """The filtered rows computed the obvious way, from scratch."""
    keep = [
        seq
        for seq in range(first, len(matching))
        if any(matching[j] for j in range(max(first, seq - context), min(len(matching), seq + context + 1)))
    ]
    rows: list[int] = []
    for seq in keep:
        if rows and seq != rows[-1] + 1:
            rows.append(SEPARATOR)
        rows.append(seq)
    return rows


@settings(max_examples=200, deadline=None)
@given(
    matching=st.lists(st.booleans(), max_size=80),
    cut_points=st.lists(st.integers(0, 80), max_size=6),
    context=st.integers(0, 3),
)
def test_filtered_view_grows_like_a_rebuild(
    matching: list[bool], cut_points: list[int], context: int
) -> None:
    # Lines arrive in batches; the incremental view must equal the view built from all of them.
    view = FilteredView(context)
    view.rebuild([], 0, 0)
    done = 0
    for cut in [*sorted(cut_points), len(matching)]:
        cut = max(done, min(cut, len(matching)))
        view.extend([seq for seq in range(done, cut) if matching[seq]], 0, cut)
        done = cut
    assert list(view.rows) == reference_rows(matching, 0, context)


def test_filtered_view_trims_with_the_buffer() -> None:
    matching = [i in (2, 9, 20) for i in range(30)]
    view = FilteredView(1)
    view.rebuild([i for i, hit in enumerate(matching) if hit], 0, 30)
    assert list(view.rows) == [1, 2, 3, SEPARATOR, 8, 9, 10, SEPARATOR, 19, 20, 21]
    assert view.trim(9) == 5  # 1, 2, 3, the separator after them, and 8
    assert list(view.rows) == [9, 10, SEPARATOR, 19, 20, 21]
    assert view.index(19) == 3 and view.index(5) is None
    assert view.index_at_or_after(11) == 3


def test_regex_search_over_ansi_text_matches_the_shown_text() -> None:
    buffer = LogBuffer()
    buffer.extend([LogLine("status \x1b[32mOK\x1b[0m done"), LogLine("status FAIL")])
    matches = Matches()
    matches.set("~ok done$", compile_query("~ok done$"), buffer)
    assert list(matches.seqs) == [0]
    assert re.search("OK done", plain_text(buffer.text(0)))


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(alphabet="abcABC \t\x1b[m01", max_size=12), max_size=20),
    query=st.text(alphabet="abcAB 0", min_size=1, max_size=3),
)
def test_plain_search_finds_what_the_highlighter_highlights(texts: list[str], query: str) -> None:
    # Lines are picked with a fast lower-cased substring test and highlighted with the compiled
    # pattern: both must agree on which lines match.
    buffer = LogBuffer()
    buffer.extend([LogLine(text) for text in texts])
    matches = Matches()
    pattern = compile_query(query)
    matches.set(query, pattern, buffer)
    expected = [seq for seq in range(len(texts)) if pattern.search(plain_text(texts[seq]))]
    assert list(matches.seqs) == expected


def test_a_line_batch_holds_lines_column_wise_as_the_buffer_takes_them() -> None:
    lines = [LogLine("a"), LogLine("b", "stderr", "2024-05-01T12:00:00Z"), LogLine("c", "system")]
    batch = LineBatch()
    batch.add(lines[:1])
    batch.add(lines[1:])
    assert len(batch) == 3
    by_batch, by_lines = LogBuffer(10), LogBuffer(10)
    assert by_batch.extend(batch) == by_lines.extend(lines) == 0
    assert [by_batch[i] for i in range(3)] == [by_lines[i] for i in range(3)] == lines
    batch.keep_last(2)
    assert (batch.texts, batch.stamps, bytes(batch.codes)) == (
        ["b", "c"],
        ["2024-05-01T12:00:00Z", None],
        b"\x01\x02",
    )
    batch.keep_last(5)
    assert len(batch) == 2
