"""The resource table every pane shares, driven with Textual's Pilot as a user would."""

from collections.abc import Mapping

from rich.segment import ControlType
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Input

from tui.widgets.resource_table import MARK_COLUMN, Column, ResourceTable, Row

SIZE = (100, 30)


def mebibytes(value: object) -> float:
    return float(str(value).split()[0])


COLUMNS = [
    Column("name", "Name"),
    Column("status", "Status", width=10),
    Column("mem", "Mem", width=9, sort=mebibytes, justify="right"),
]


def container(name: str, status: str = "running", mem: int = 10, group: str | None = None) -> Row:
    return Row(
        {"name": name, "status": status, "mem": f"{mem} MiB"},
        group=group,
        rank=0 if status == "running" else 1,
    )


class Host(App[None]):
    """Just the table, with the messages it posts kept for the test to read."""

    def __init__(self, table: ResourceTable, rows: Mapping[str, Row] | None = None) -> None:
        super().__init__()
        self.table = table
        self.initial = rows
        self.messages: list[tuple[object, ...]] = []

    def compose(self) -> ComposeResult:
        yield self.table

    def on_mount(self) -> None:
        if self.initial is not None:
            self.table.update_rows(self.initial)
        self.table.focus()

    def on_resource_table_activated(self, message: ResourceTable.Activated) -> None:
        self.messages.append(("activated", message.row_id))

    def on_resource_table_cursor_moved(self, message: ResourceTable.CursorMoved) -> None:
        self.messages.append(("cursor", message.row_id, message.group))


class Terminal:
    """What a terminal shows: every frame the app sends (whole or partial) written into a character grid."""

    def __init__(self, app: App[None], size: tuple[int, int]) -> None:
        width, height = size
        self.grid = [[" "] * width for _ in range(height)]
        self.frames = 0
        self.touched: set[int] = set()  # the lines any frame wrote to, until the test clears it
        self._console = app.console
        self._draw = app._display
        app._display = self._display  # type: ignore[method-assign]

    def _display(self, screen: object, renderable: object) -> None:
        if renderable is not None:
            self.frames += 1
            x = y = 0
            for segment in self._console.render(renderable):  # type: ignore[arg-type]
                if segment.control:
                    for control in segment.control:
                        if control[0] == ControlType.CURSOR_MOVE_TO:
                            x, y = int(control[1]), int(control[2])  # type: ignore[misc]
                    continue
                for char in segment.text:
                    if char == "\n":
                        x, y = 0, y + 1
                    elif 0 <= y < len(self.grid) and 0 <= x < len(self.grid[y]):
                        self.grid[y][x] = char
                        self.touched.add(y)
                        x += 1
        self._draw(screen, renderable)  # type: ignore[arg-type]

    def lines(self) -> list[str]:
        """The screen, line by line."""
        return ["".join(row) for row in self.grid]

    def line_of(self, text: str) -> str:
        """The one line showing `text`."""
        found = [line for line in self.lines() if text in line]
        assert len(found) == 1, (text, found)
        return found[0]


def on_screen(table: ResourceTable) -> list[str]:
    """Row keys in the order the grid really draws them."""
    return table.grid.row_keys


def cell(table: ResourceTable, row_id: str, column: str) -> str:
    return table.grid.cell(row_id, column).plain


FLEET = {
    "c1": container("web-2", mem=300),
    "c2": container("web-10", "exited", mem=5),
    "c3": container("db", mem=1200),
    "c4": container("cache", "exited", mem=40),
    "c5": container("web-1", mem=90),
}


async def test_rows_show_sorted_with_rank_first() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.table
        assert table.visible_ids() == ["c3", "c5", "c1", "c4", "c2"]  # running, then exited; by name
        assert on_screen(table) == table.visible_ids()
        labels = [table.grid.label(key).plain for key in table.grid.column_keys]
        assert labels == ["", "Name ▲", "Status  ", "Mem  "]
        assert cell(table, "c3", "mem") == "1200 MiB"
        assert app.focused is table.grid
        assert table.cursor_id() == "c3"
        assert app.messages == [("cursor", "c3", None)]


async def test_rows_given_before_mount_show_and_strings_are_never_markup() -> None:
    table = ResourceTable(COLUMNS)
    table.update_rows({"x": container("[b]db[/b]")})
    app = Host(table)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert cell(table, "x", "name") == "[b]db[/b]"


async def test_update_touches_only_the_cells_that_changed() -> None:
    rows = {f"c{i:03}": container(f"web-{i:03}", mem=i) for i in range(300)}
    app = Host(ResourceTable(COLUMNS), rows)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.table
        assert table.last_update.added == 300
        changed = {f"c{i:03}" for i in range(0, 300, 10)}
        fresh = {
            key: container(f"web-{int(key[1:]):03}", mem=int(key[1:]) + (1000 if key in changed else 0))
            for key in rows
        }
        stats = table.update_rows(fresh)
        assert (stats.added, stats.removed, stats.cells_changed) == (0, 0, 30)
        assert stats.changed == {(key, "mem") for key in changed}
        assert cell(table, "c010", "mem") == "1010 MiB"
        assert cell(table, "c011", "mem") == "11 MiB"

        # The same data again touches nothing; a colour-only change touches that one cell.
        assert table.update_rows(fresh).cells_changed == 0
        recoloured = dict(fresh)
        recoloured["c005"] = Row({**fresh["c005"].cells, "status": Text("running", style="red")})
        stats = table.update_rows(recoloured)
        assert stats.changed == {("c005", "status")}

        # A row gone and a row new: one removal, one addition, nothing else rewritten.
        del recoloured["c299"]
        recoloured["new"] = container("aaa")
        stats = table.update_rows(recoloured)
        assert (stats.added, stats.removed, stats.cells_changed) == (1, 1, 0)
        assert on_screen(table)[0] == "new"


async def test_cursor_stays_on_its_row_across_a_resorting_update() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await pilot.press("down", "down", "down")
        assert table.cursor_id() == "c4"  # cache, exited
        app.messages.clear()

        # cache starts running: it jumps from 4th to 2nd place, and the cursor goes with it.
        table.update_rows({**FLEET, "c4": container("cache", mem=40)})
        await pilot.pause()
        assert table.visible_ids() == ["c4", "c3", "c5", "c1", "c2"]
        assert table.cursor_id() == "c4"
        assert table.grid.cursor_row == 0
        assert app.messages == []  # same row: no CursorMoved

        # The cursor's row vanishes: the cursor lands on the nearest row that is left.
        gone = {k: v for k, v in FLEET.items() if k != "c4"}
        table.update_rows({**gone, "c4": container("cache", mem=40)})
        await pilot.press("down", "down")
        assert table.cursor_id() == "c5"
        app.messages.clear()
        table.update_rows({k: v for k, v in gone.items() if k != "c5"})
        await pilot.pause()
        assert table.cursor_id() == "c1"  # web-2, the next one down
        assert app.messages == [("cursor", "c1", None)]


async def test_cursor_returns_to_its_row_when_a_filter_stops_hiding_it() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await pilot.press("down", "down")
        assert table.cursor_id() == "c1"  # web-2
        await pilot.press("slash", *"webz")  # live: "web" keeps it, "webz" empties the table
        assert table.visible_ids() == []
        assert table.cursor_id() is None
        await pilot.press("backspace", "backspace")
        assert table.cursor_id() == "c1"
        await pilot.press("enter")

        table.set_filter("db")
        assert table.cursor_id() == "c3"
        table.update_rows(FLEET)  # a poll while the row is hidden does not make the neighbour stick
        table.set_filter("")
        assert table.cursor_id() == "c1"


async def test_slash_filters_by_text_regex_and_inverse() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await pilot.press("down")
        assert table.cursor_id() == "c5"

        await pilot.press("slash", *"WEB", "enter")
        assert table.filter_text == "WEB"
        assert table.visible_ids() == ["c5", "c1", "c2"]
        assert on_screen(table) == ["c5", "c1", "c2"]
        assert table.status_text == "filter: WEB  3/5"
        assert table.cursor_id() == "c5"  # kept through the filter
        assert app.focused is table.grid

        await pilot.press("slash", *r"~^web-\d$", "enter")  # the prompt starts selected: typing replaces
        assert table.visible_ids() == ["c5", "c1"]

        await pilot.press("slash", *"!web", "enter")
        assert table.visible_ids() == ["c3", "c4"]

        await pilot.press("slash", *"!~^(db|cache)$", "enter")
        assert table.visible_ids() == ["c5", "c1", "c2"]

        # Filtering survives updates: a new matching row shows, a new other row does not.
        table.update_rows({**FLEET, "c6": container("web-3"), "c7": container("db")})
        assert table.visible_ids() == ["c5", "c1", "c6", "c2"]

        # esc on the table clears the filter.
        await pilot.press("escape")
        assert table.filter_text == ""
        assert len(table.visible_ids()) == 7
        assert table.status_text == ""


async def test_invalid_regex_says_so_and_keeps_the_previous_filter() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await pilot.press("slash", *"web", "enter")
        assert table.visible_ids() == ["c5", "c1", "c2"]

        await pilot.press("slash", *"~we(", "enter")
        error = str(table.query_one(".rt-filter-error").render())
        assert "'we(' is not a valid regular expression" in error
        assert "Still showing '~we'." in error  # the last valid pattern typed stays in force
        assert table.status_text == "filter: ~we  3/5"
        assert table.has_class("-filtering")  # enter did not close the prompt
        assert isinstance(app.focused, Input)

        # esc cancels the edit: back to the filter from before "/".
        await pilot.press("escape")
        assert not table.has_class("-filtering")
        assert table.filter_text == "web"
        assert table.visible_ids() == ["c5", "c1", "c2"]
        assert table.grid.has_focus


async def test_keys_typed_right_after_slash_go_to_the_prompt() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await pilot.press("slash", "g", "o", "space")  # would group, sort and mark on the table
        assert not table.grouped
        assert table.sort_column == "name"
        assert table.marked_ids() == []
        assert table.query_one(Input).value == "go "


async def test_space_marks_rows_and_marks_survive_updates_and_filters() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        assert table.selected_ids() == ["c3"]  # nothing marked: the cursor row

        await pilot.press("space", "down", "space")  # marks c3, moves down, skips c5, marks c1
        assert table.marked_ids() == ["c3", "c1"]
        assert table.selected_ids() == ["c3", "c1"]
        assert cell(table, "c3", MARK_COLUMN) == "✓"
        assert cell(table, "c5", MARK_COLUMN) == ""
        assert table.last_update.changed == {("c1", MARK_COLUMN)}
        assert table.cursor_id() == "c4"
        assert "2 marked" in table.status_text

        # An update keeps the marks; a marked row that goes away is unmarked for good.
        table.update_rows({k: v for k, v in FLEET.items() if k != "c3"})
        assert table.marked_ids() == ["c1"]
        assert cell(table, "c1", MARK_COLUMN) == "✓"
        table.update_rows(FLEET)
        assert table.marked_ids() == ["c1"]

        # A filter hides a marked row: it stays marked, but actions leave it out.
        table.set_filter("!web-2")
        assert table.selected_ids() == ["c4"]
        assert "1 marked, hidden by the filter" in table.status_text
        table.set_filter("")
        assert table.selected_ids() == ["c1"]

        await pilot.press("ctrl+a")
        assert table.marked_ids() == table.visible_ids()
        await pilot.press("ctrl+u")
        assert table.marked_ids() == []
        assert table.selected_ids() == [table.cursor_id()]


async def test_g_groups_rows_under_headers_and_a_header_selects_its_group() -> None:
    rows = {
        "a": container("shop-web", group="shop"),
        "b": container("shop-db", "exited", group="shop"),
        "c": container("blog", group="blog"),
        "d": container("loose"),
    }
    table = ResourceTable(COLUMNS, group_label="compose: {group}", no_group_label="(no project)")
    app = Host(table, rows)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("g")
        assert table.grouped
        shown = on_screen(table)
        headers = [cell(table, key, "name") for key in shown if key.startswith("\x00")]
        assert headers == ["▾ compose: blog  (1)", "▾ compose: shop  (2)", "▾ (no project)  (1)"]
        assert table.visible_ids() == ["c", "a", "b", "d"]
        assert len(shown) == 7

        # The cursor stayed on its row (blog, under its header); one down is shop's header.
        assert table.cursor_id() == "c"
        await pilot.press("down")
        assert table.cursor_group() == "shop"
        assert table.cursor_id() is None
        assert table.selected_ids() == ["a", "b"]
        assert ("cursor", None, "shop") in app.messages

        await pilot.press("enter")  # nothing to activate on a header
        assert not [m for m in app.messages if m[0] == "activated"]

        await pilot.press("space")  # marks the whole group, and the cursor moves on
        assert table.marked_ids() == ["a", "b"]
        await pilot.press("enter")
        assert ("activated", "a") in app.messages

        # A header can't be marked: ctrl+a marks rows only.
        await pilot.press("ctrl+a")
        assert table.marked_ids() == ["c", "a", "b", "d"]

        await pilot.press("g")
        assert on_screen(table) == ["c", "d", "a", "b"]  # running by name, then exited


async def test_o_cycles_the_sort_column_and_shift_o_reverses_it() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table

        def labels() -> list[str]:
            return [table.grid.label(key).plain for key in table.grid.column_keys][1:]

        await pilot.press("o", "o")
        assert table.sort_column == "mem"
        assert labels() == ["Name  ", "Status  ", "Mem ▲"]
        # Numeric by the column's key (90 < 300 < 1200), not as text; exited rows still last.
        assert on_screen(table) == ["c5", "c1", "c3", "c2", "c4"]

        await pilot.press("O")
        assert table.sort_reverse
        assert labels() == ["Name  ", "Status  ", "Mem ▼"]
        assert on_screen(table) == ["c3", "c1", "c5", "c4", "c2"]
        assert table.cursor_id() == "c3"  # the cursor row moved and the cursor followed it

        await pilot.press("o")
        assert (table.sort_column, table.sort_reverse) == ("name", False)
        assert labels()[0] == "Name ▲"


async def test_empty_table_and_empty_filter_say_so() -> None:
    table = ResourceTable(COLUMNS, empty_message="No containers on local.")
    app = Host(table, {})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        empty = table.query_one(".rt-empty")
        assert table.has_class("-empty")
        assert str(empty.render()) == "No containers on local."
        assert table.selected_ids() == []
        assert table.cursor_id() is None

        table.update_rows(FLEET)
        assert not table.has_class("-empty")
        await pilot.press("slash", *"zzz", "enter")
        assert table.has_class("-empty")
        assert str(empty.render()) == "Nothing matches filter 'zzz'.  (esc clears it)"
        assert table.selected_ids() == []

        table.empty_message = "No containers on web-1."
        table.update_rows({})
        assert str(empty.render()) == "No containers on web-1."


async def test_bindings_have_ids_and_can_be_remapped() -> None:
    ids = {b.id for b in ResourceTable.BINDINGS if isinstance(b, Binding)}
    assert {
        "table.filter",
        "table.mark",
        "table.mark_all",
        "table.clear_marks",
        "table.sort_next",
        "table.sort_reverse",
        "table.group",
        "table.clear_filter",
    } <= ids
    assert all(isinstance(b, Binding) and b.description for b in ResourceTable.BINDINGS)

    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        app.set_keymap({"table.mark": "x"})
        table = app.table
        await pilot.press("space")
        assert table.marked_ids() == []
        await pilot.press("x")
        assert table.marked_ids() == ["c3"]


async def test_escape_and_g_pass_through_when_the_table_has_nothing_to_do() -> None:
    class Pane(App[None]):
        BINDINGS = [Binding("escape", "note('esc')"), Binding("g", "note('g')")]

        def __init__(self) -> None:
            super().__init__()
            self.notes: list[str] = []

        def compose(self) -> ComposeResult:
            yield ResourceTable(COLUMNS, groupable=False)

        def on_mount(self) -> None:
            self.query_one(ResourceTable).update_rows(FLEET)
            self.query_one(ResourceTable).focus()

        def action_note(self, what: str) -> None:
            self.notes.append(what)

    app = Pane()
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(ResourceTable)
        await pilot.press("escape", "g")
        assert app.notes == ["esc", "g"]
        assert not table.grouped
        table.set_filter("web")
        await pilot.press("escape")
        assert app.notes == ["esc", "g"]  # this esc cleared the filter instead
        assert table.filter_text == ""


async def test_marks_and_headers_take_their_colours_from_the_theme() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        table = app.table
        await pilot.press("space")
        before = table.grid.cell("c3", MARK_COLUMN).style
        app.theme = "dracula"
        await pilot.pause()
        await pilot.pause()
        after = table.grid.cell("c3", MARK_COLUMN).style
        assert before != after


async def test_an_update_that_changes_nothing_draws_no_frame() -> None:
    # A stats sample every 2 s hands the table all its rows again, mostly unchanged: a frame for that
    # (a scrolling table lays out again and redraws its scrollbar) is most of what an idle console costs.
    fleet = {**FLEET, **{f"x{i}": container(f"box-{i}") for i in range(60)}}
    table = ResourceTable(COLUMNS)
    app = Host(table, fleet)
    frames: list[object] = []
    async with app.run_test(size=SIZE) as pilot:
        table.update_rows({**fleet, "x0": container("box-0", mem=11)})  # the first row: on screen
        await pilot.pause()
        draw = app._display

        def counted(screen: object, renderable: object) -> None:
            if renderable is not None:
                frames.append(renderable)
            draw(screen, renderable)  # type: ignore[arg-type]

        app._display = counted  # type: ignore[method-assign]
        for _ in range(3):
            table.update_rows({key: Row(dict(row.cells), row.group, row.rank) for key, row in fleet.items()})
            await pilot.pause(0.05)
        assert table.last_update.cells_changed == 0
        # The first of the three put box-0 back from 11 to 10 MiB and drew; the other two drew nothing.
        assert len(frames) == 1
        table.set_filter("web")  # a change does draw
        await pilot.pause()
        assert len(frames) > 1 and table.status_text == "filter: web  3/65"


async def test_a_changed_cell_is_drawn_again_and_nothing_else_is() -> None:
    # A changed cell repaints its row alone (a stats sample changes a few cells of many rows). What
    # reaches the screen must still be right: the changed rows (the cursor row too), every other
    # row as it was, a row changed while scrolled out of view once it shows, a mark and the moved
    # cursor.
    fleet = {f"x{i:02d}": container(f"box-{i:02d}", mem=i) for i in range(60)}
    table = ResourceTable(COLUMNS)
    app = Host(table, fleet)
    terminal = Terminal(app, SIZE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        grid = table.grid
        before = terminal.lines()
        assert "box-00" in before[1] and "box-50" not in "".join(before)
        terminal.touched.clear()
        changed = {"x00": 100, "x03": 103, "x50": 150}  # the cursor row, another, one out of view
        shown = {**fleet, **{key: container(f"box-{key[1:]}", mem=mem) for key, mem in changed.items()}}
        table.update_rows(shown)
        await pilot.pause()
        assert table.last_update.changed == {(key, "mem") for key in changed}
        after = terminal.lines()
        assert "100 MiB" in terminal.line_of("box-00") and "103 MiB" in terminal.line_of("box-03")
        assert [i for i, (old, new) in enumerate(zip(before, after, strict=True)) if old != new] == [1, 4]
        assert terminal.touched == {1, 4}  # only the changed rows' lines were sent to the terminal
        await pilot.press("space")  # mark box-00, the cursor moves to box-01
        await pilot.pause()
        assert terminal.line_of("box-00").lstrip().startswith("✓") and "✓" not in terminal.line_of("box-01")
        assert table.cursor_id() == "x01"
        grid.scroll_end(animate=False)
        await pilot.pause()
        assert "150 MiB" in terminal.line_of("box-50") and "58 MiB" in terminal.line_of("box-58")
        frames = terminal.frames
        table.update_rows({**shown, "x00": container("box-00", mem=7)})  # changed, but out of view
        await pilot.pause(0.05)
        assert terminal.frames == frames  # nothing to draw
        grid.scroll_home(animate=False)
        await pilot.pause()
        assert "7 MiB" in terminal.line_of("box-00") and "103 MiB" in terminal.line_of("box-03")


async def test_y_copies_the_marked_ids_else_the_cursor_row() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("y")
        assert app.clipboard == "c3"
        await pilot.press("space", "space")  # space marks and moves down
        await pilot.press("y")
        assert app.clipboard == "c3\nc5"


async def test_a_click_puts_the_cursor_on_the_row() -> None:
    app = Host(ResourceTable(COLUMNS), FLEET)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.table
        assert table.cursor_id() == "c3"
        # Row 0 of the grid is its header; the rows follow in display order (c3, c5, c1, ...).
        await pilot.click(table.grid, offset=(4, 3))
        await pilot.pause()
        assert table.cursor_id() == "c1"


async def test_a_cell_that_fits_its_auto_width_column_redraws_only_its_row() -> None:
    columns = [Column("name", "Name"), Column("note", "Note")]

    def rows(note: str) -> dict[str, Row]:
        return {
            "a": Row({"name": "alpha", "note": "Up 59 seconds"}),
            "b": Row({"name": "beta", "note": note}),
        }

    app = Host(ResourceTable(columns), rows("Up 58 seconds"))
    terminal = Terminal(app, SIZE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        grid = app.table.grid
        width = grid.render_widths()["note"]
        line = terminal.lines().index(terminal.line_of("beta"))
        terminal.touched.clear()
        app.table.update_rows(rows("Up 1 minute"))  # narrower: fits, the column keeps its width
        await pilot.pause()
        assert terminal.touched == {line}  # beta's line alone was drawn again
        assert cell(app.table, "b", "note") == "Up 1 minute"
        assert "Up 1 minute " in terminal.line_of("beta")
        assert grid.render_widths()["note"] == width
        app.table.update_rows(rows("Up 1 minute (healthy)"))  # wider: the column grows
        await pilot.pause()
        assert grid.render_widths()["note"] > width
        assert cell(app.table, "b", "note") == "Up 1 minute (healthy)"
        assert "Up 1 minute (healthy)" in terminal.line_of("beta")


async def test_keys_move_the_cursor_and_scroll_the_rows_and_columns_on_screen() -> None:
    # The grid's keys: up/down, page up/down and ctrl+home/ctrl+end move the cursor and bring its
    # row on screen under the header; home/end (and left/right) scroll sideways; enter activates.
    columns = [*COLUMNS, Column("note", "Note")]
    fleet = {
        f"x{i:02d}": Row({**container(f"box-{i:02d}", mem=i).cells, "note": f"{'.' * 90}end-{i:02d}"})
        for i in range(60)
    }
    app = Host(ResourceTable(columns), fleet)
    terminal = Terminal(app, SIZE)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.table
        assert terminal.lines()[0].split() == ["Name", "▲", "Status", "Mem", "Note"]
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert table.cursor_id() == "x59" and "box-59" in terminal.lines()[-2]  # above the scrollbar
        assert "Name ▲" in terminal.lines()[0]  # the header stays on top
        await pilot.press("ctrl+home")
        await pilot.pause()
        assert table.cursor_id() == "x00" and "box-00" in terminal.lines()[1]
        await pilot.press("pagedown")
        await pilot.pause()
        shown = [line for line in terminal.lines() if "box-" in line]
        assert table.cursor_id() == "x28" and "box-28" in shown[0]  # a page on: 28 rows fit on screen
        await pilot.press("pageup", "down")
        await pilot.pause()
        assert table.cursor_id() == "x01" and "box-00" in terminal.lines()[1]
        assert "end-01" not in terminal.line_of("box-01")
        await pilot.press("end")
        await pilot.pause()
        assert "end-01" in terminal.lines()[2] and table.cursor_id() == "x01"  # scrolled, not moved
        await pilot.press("home")
        await pilot.pause()
        assert "box-01" in terminal.lines()[2]
        await pilot.press("enter")
        assert ("activated", "x01") in app.messages
