"""The resource table's rules without Textual: filters, sort order, groups, marks, cursor, cell diffs."""

import pytest
from rich.text import Text

from tui.widgets.table_model import (
    Column,
    FilterError,
    Header,
    Row,
    RowFilter,
    SortSpec,
    TableModel,
    follow_cursor,
    group_entries,
    plan,
    same_value,
    sort_ids,
)


def mebibytes(value: object) -> float:
    return float(str(value).split()[0])


COLUMNS = (
    Column("name", "Name"),
    Column("status", "Status"),
    Column("mem", "Mem", sort=mebibytes, justify="right"),
)


def row(name: str, status: str = "running", mem: str | None = "1 MiB", **kw: object) -> Row:
    return Row({"name": name, "status": status, "mem": mem}, **kw)  # type: ignore[arg-type]


def passes(text: str, *cells: str) -> bool:
    return RowFilter.parse(text).matches(list(cells), [c.casefold() for c in cells])


# Filters -----------------------------------------------------------------------------------------


def test_plain_filter_is_a_case_insensitive_substring_of_any_cell() -> None:
    assert passes("WEB", "shop-web-1", "running")
    assert passes("run", "shop-web-1", "Running")
    assert not passes("db", "shop-web-1", "running")
    assert not passes("1running", "shop-web-1", "running")  # never across cells


def test_tilde_filter_is_a_case_insensitive_regex_searched_in_each_cell() -> None:
    assert passes(r"~^web-\d+$", "WEB-12", "running")
    assert not passes(r"~^web-\d+$", "shop-web-12", "running")
    assert passes("~exit(ed)?", "db", "Exited (0)")


def test_bang_inverts_a_plain_or_regex_filter() -> None:
    assert passes("!exited", "web", "running")
    assert not passes("!exited", "web", "exited")
    assert passes("!~^web", "db-1")
    assert not passes("!~^web", "web-1")


def test_empty_filters_hide_nothing() -> None:
    for text in ("", "   ", "!", "~", "!~"):
        parsed = RowFilter.parse(text)
        assert not parsed.active
        assert parsed.matches(["x"], ["x"])


def test_invalid_regex_raises_a_sentence() -> None:
    with pytest.raises(FilterError, match=r"'web\(' is not a valid regular expression: missing \)"):
        RowFilter.parse("~web(")


def test_model_filter_searches_hidden_cells_and_the_group() -> None:
    model = TableModel.create(COLUMNS)
    model.set_rows(
        {
            "a": Row({"name": "web", "full_id": "4f2a9c"}, group="shop"),
            "b": Row({"name": "db"}, group="blog"),
        }
    )
    model.set_filter("4F2A")
    assert model.matching_ids() == ["a"]
    model.set_filter("blog")
    assert model.matching_ids() == ["b"]


def test_invalid_filter_leaves_the_model_unchanged() -> None:
    model = TableModel.create(COLUMNS)
    model.set_filter("web")
    with pytest.raises(FilterError):
        model.set_filter("~[")
    assert model.row_filter.text == "web"


# Sorting ------------------------------------------------------------------------------------------


def test_rank_first_then_the_sort_column_with_its_key() -> None:
    rows = {
        "a": row("alpha", "exited", "300 MiB", rank=1),
        "b": row("bravo", mem="9 MiB"),
        "c": row("charlie", mem="10 MiB"),
        "d": row("delta", mem="100 MiB"),
    }
    assert sort_ids(rows, rows, COLUMNS, SortSpec("mem")) == ["b", "c", "d", "a"]
    # Reversing reverses the column, never the rank.
    assert sort_ids(rows, rows, COLUMNS, SortSpec("mem", reverse=True)) == ["d", "c", "b", "a"]
    assert sort_ids(rows, rows, COLUMNS, SortSpec("name", reverse=True)) == ["d", "c", "b", "a"]


def test_text_sorts_case_insensitively_and_ties_fall_back_to_the_first_column() -> None:
    rows = {
        "1": row("b", "Running"),
        "2": row("A", "running"),
        "3": row("c", "exited"),
        "4": Row({"name": Text("a2", style="red"), "status": "running"}),
    }
    assert sort_ids(rows, rows, COLUMNS, SortSpec("name")) == ["2", "4", "1", "3"]
    assert sort_ids(rows, rows, COLUMNS, SortSpec("status")) == ["3", "2", "4", "1"]


def test_blanks_and_unreadable_values_sort_last_in_both_directions() -> None:
    rows = {
        "a": row("a", mem="5 MiB"),
        "b": row("b", mem=None),
        "c": row("c", mem="—"),
        "d": row("d", mem="7 MiB"),
    }
    assert sort_ids(rows, rows, COLUMNS, SortSpec("mem")) == ["a", "d", "b", "c"]
    assert sort_ids(rows, rows, COLUMNS, SortSpec("mem", reverse=True)) == ["d", "a", "b", "c"]


def test_a_column_mixing_numbers_and_text_still_sorts() -> None:
    columns = (Column("v", "V"),)
    rows = {"a": Row({"v": "x"}), "b": Row({"v": 3}), "c": Row({"v": 1.5})}
    assert sort_ids(rows, rows, columns, SortSpec("v")) == ["c", "b", "a"]


def test_cycle_sort_wraps_and_resets_direction() -> None:
    model = TableModel.create(COLUMNS, sort_column="mem", reverse=True)
    model.cycle_sort()
    assert model.sort == SortSpec("name")
    model.reverse_sort()
    assert model.sort == SortSpec("name", reverse=True)
    with pytest.raises(ValueError, match="No column 'nope'"):
        model.sort_by("nope")


def test_columns_are_checked() -> None:
    with pytest.raises(ValueError, match="at least one column"):
        TableModel.create([])
    with pytest.raises(ValueError, match="unique"):
        TableModel.create([Column("a", "A"), Column("a", "B")])


# Groups -------------------------------------------------------------------------------------------


def test_groups_by_name_with_ungrouped_rows_last() -> None:
    rows = {
        "1": row("w1", group="shop"),
        "2": row("solo"),
        "3": row("w2", group="blog"),
        "4": row("w3", group="shop"),
    }
    ordered = sort_ids(rows, rows, COLUMNS, SortSpec("name"))
    assert group_entries(rows, ordered) == [
        Header("blog", 1),
        "3",
        Header("shop", 2),
        "1",
        "4",
        Header("", 1),
        "2",
    ]


# Marks and selection ------------------------------------------------------------------------------


def test_marks_drop_vanished_ids_and_selection_prefers_visible_marks() -> None:
    model = TableModel.create(COLUMNS)
    model.grouped = True
    model.set_rows({"a": row("a", group="g"), "b": row("b", group="g"), "c": row("c")})
    entries = model.entries()
    assert entries == [Header("g", 2), "a", "b", Header("", 1), "c"]
    assert model.selected(entries, "c") == ["c"]
    assert model.selected(entries, Header("g", 2)) == ["a", "b"]
    assert model.selected(entries, None) == []

    model.toggle_marks(["c", "a"])
    assert model.selected(entries, "b") == ["a", "c"]  # display order, not marking order
    model.toggle_marks(["a", "c"])  # all marked already: unmark
    assert model.marks == set()

    model.toggle_marks(["a", "b"])
    model.set_filter("!a")
    entries = model.entries()
    assert model.selected(entries, "b") == ["b"]  # "a" is marked but hidden: left out
    model.set_rows({"b": row("b"), "c": row("c")})
    assert model.marks == {"b"}


# Cursor and diffs ---------------------------------------------------------------------------------


def test_cursor_follows_its_key_or_the_nearest_survivor() -> None:
    before = ["a", "b", "c", "d"]
    assert follow_cursor(before, "c", ["c", "a", "b", "d"]) == 0
    assert follow_cursor(before, "b", ["a", "d"]) == 1  # next one down survived
    assert follow_cursor(before, "d", ["b", "a"]) == 0  # nothing below: next one up ("b")
    assert follow_cursor(before, "d", ["a", "b"]) == 1
    assert follow_cursor(before, "b", ["x"]) == 0
    assert follow_cursor(before, None, ["x"]) == 0
    assert follow_cursor(before, "a", []) is None
    assert follow_cursor(before, "b", ["d", "c", "a"], want="c") == 1  # the user's row shows again
    assert follow_cursor(before, "b", ["d", "a"], want="c") == 0  # not yet: "b"'s nearest survivor


def test_plan_touches_only_changed_cells() -> None:
    shown = {"a": (False, "web", "1 MiB"), "b": (False, "db", "2 MiB"), "c": (False, "x", None)}
    wanted = [("b", (True, "db", "2 MiB")), ("a", (False, "web", "3 MiB")), ("d", (False, "new", None))]
    steps = plan(shown, wanted)
    assert steps.remove == ("c",)
    assert steps.add == (("d", (False, "new", None)),)
    assert steps.update == (("b", 0, True), ("a", 2, "3 MiB"))
    assert steps.order == ("b", "a", "d")


def test_same_value_sees_style_changes_that_text_equality_misses() -> None:
    assert Text("up", style="green") == Text("up", style="red")  # why same_value exists
    assert not same_value(Text("up", style="green"), Text("up", style="red"))
    assert same_value(Text("up", style="green"), Text("up", style="green"))
    assert not same_value(1, 1.0)
    assert not same_value("1", 1)
    assert same_value(None, None)
