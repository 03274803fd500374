"""What berth shows is true (issue 15), for the console's frame, dialogs, tables and confirmations:
each item driven the way a user does (keys in the console through Pilot, or the installed `berth`
in tmux), then checked on the screen and, where something changes, in the engine or the file."""

import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import wasmtime
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from pilot_helpers import fill_form, log_lines
from test_app import toasts
from test_containers_pane import make_app, select, until
from test_wasm_pane import show_wasm_pane
from textual.pilot import Pilot
from tmux_helpers import Tmux, berth_env, installed_berth

from backends.config import BrokerConfig, Config, HostConfig, save_config
from tui.app import BerthApp
from tui.panes.providers import ProvidersPane
from tui.screens.audit import AuditScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.help import HelpScreen, command_rows
from tui.screens.jobs import JobsScreen
from tui.screens.logs import LogScreen
from tui.screens.picker import PickerScreen
from tui.widgets.log_view import LogView
from tui.widgets.resource_table import ResourceTable

SIZE = (140, 36)
NOWHERE = "/nonexistent/berth-test"
TRIVIAL = '(module (memory (export "memory") 1) (func (export "_start")))'


def quiet_config(tmp_path: Path) -> Config:
    """One local host whose engines are absent, saved where `berth --config` finds it."""
    host = HostConfig("local", docker_socket=f"{NOWHERE}/docker.sock", lxd_socket=f"{NOWHERE}/lxd.sock")
    config = Config(hosts=[host], broker=BrokerConfig(listen="127.0.0.1:0"), path=tmp_path / "config.toml")
    save_config(config, config.path)
    return config


def start_berth(tmux: Tmux, config: Config, home: Path) -> None:
    tmux.start([installed_berth(), "--config", str(config.path)], berth_env(home))
    tmux.wait_for("Containers")
    time.sleep(0.5)  # the first pane has focus


def trivial_module(tmp_path: Path) -> Path:
    path = tmp_path / "trivial.wasm"
    path.write_bytes(wasmtime.wat2wasm(TRIVIAL))
    return path


def header(table: ResourceTable, column: str) -> str:
    """The label the table's header shows for `column` (with its sort arrow, if it has it)."""
    return str(table.grid.label(column)).strip()


# 11. Help: every row can be reached, End goes down ----------------------------------------------


@pytest.mark.parametrize("size", [(160, 48), (80, 24)])
def test_help_reaches_its_last_row_with_end_pagedown_and_down(
    tmux: Tmux, isolated_home: Path, tmp_path: Path, size: tuple[int, int]
) -> None:
    start_berth(tmux, quiet_config(tmp_path), isolated_home)
    tmux.run("resize-window", "-t", "berth", "-x", str(size[0]), "-y", str(size[1]))
    time.sleep(0.3)
    last = command_rows()[-1].keys  # the last line of the help: a `:` command's words
    tmux.keys("?")
    tmux.wait_for("Keys and commands")
    assert last not in tmux.screen()
    for keys in (["End"], ["PageDown"] * 20, ["Down"] * 200):
        tmux.keys("Home")
        time.sleep(0.3)
        tmux.keys(*keys)
        try:
            screen = tmux.wait_for(last, timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"after {keys[0]} x{len(keys)}: {exc}") from None
        # Down the list, not sideways: the keys and the ids are still in view.
        assert "Keys" in screen and "Binding id" in screen, screen
        lines = screen.splitlines()
        bottom = max(i for i, line in enumerate(lines) if "▄▄▄▄" in line)  # the dialog's lower edge
        assert any(last in line for line in lines[:bottom]), screen


# 12. `:` completes with Tab -----------------------------------------------------------------------


async def test_tab_completes_a_command_word(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("colon", "a", "u")
        await pilot.pause(0.2)  # the suggestion is looked up off the key handler
        await pilot.press("tab")
        await pilot.pause()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen), what=f"the audit log; {toasts(app)}")
        assert not any("Unknown command" in t for t in toasts(app))


# 13. `berth config check` knows the installed themes --------------------------------------------


def run_berth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_check_refuses_a_theme_that_is_not_installed(isolated_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[ui]\ntheme = "berth-drak"\n')
    result = run_berth("--config", str(path), "config", "check")
    assert result.returncode == 2, result
    assert "ui.theme: no installed theme is called 'berth-drak'" in result.stderr
    assert "berth-dark" in result.stderr and "Traceback" not in result.stderr
    assert "berth-drak" not in result.stdout  # no summary naming it as if it applied

    # A theme of the user's own counts as installed.
    themes = isolated_home / "config" / "berth" / "themes"
    themes.mkdir(parents=True)
    (themes / "mine.toml").write_text('name = "berth-drak"\nprimary = "#336699"\n')
    result = run_berth("--config", str(path), "config", "check")
    assert result.returncode == 0, result.stderr


# 14. A burst of keys in a form lands in the fields it was typed for ---------------------------


def test_a_pasted_burst_fills_each_field_of_add_host(tmux: Tmux, isolated_home: Path, tmp_path: Path) -> None:
    config = quiet_config(tmp_path)
    assert config.path is not None
    start_berth(tmux, config, isolated_home)
    tmux.keys(":")
    tmux.keys("host add", literal=True)
    tmux.keys("Enter")
    tmux.wait_for("Add host")
    # One write, as a paste or a fast typist sends it: name, Tab, URL, Tab, identity, Enter, Enter.
    tmux.keys("web-9\tssh://ops@127.0.0.1:2222\t~/.ssh/id_x\r\r", literal=True)
    tmux.wait_gone("Add host")
    tmux.wait_for("Added web-9")
    deadline = time.monotonic() + 10
    while "web-9" not in config.path.read_text():
        assert time.monotonic() < deadline, "the config was never saved"
        time.sleep(0.1)
    saved = {h["name"]: h for h in tomllib.loads(config.path.read_text())["hosts"]}
    assert saved["web-9"]["url"] == "ssh://ops@127.0.0.1:2222"
    assert saved["web-9"]["identity"] == "~/.ssh/id_x"


# 15. Every screen's bindings are in the keymap catalogue -----------------------------------------


async def test_screen_bindings_can_be_remapped_and_are_listed_in_help(
    offline_config: Config, tmp_path: Path
) -> None:
    offline_config.ui.keymap = {"confirm.yes": "Y", "jobs.cancel": "x", "help.close": "z"}
    app = BerthApp(offline_config)
    module = trivial_module(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert not [t for t in toasts(app) if "Keymap" in t], toasts(app)

        # ? lists the screens' bindings, remapped; the remapped key closes it, the default no more.
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        keys = {row.binding_id: row.keys for row in app.screen.rows}
        assert keys["confirm.yes"] == "Y" and keys["jobs.cancel"] == "x" and keys["help.close"] == "z"
        for listed in ("form.cancel", "picker.cancel", "top.close", "command_line.close", "detail.close"):
            assert listed in keys
        await pilot.press("q")  # help.close's default key: no longer
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("z")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)

        # :jobs, x is its cancel now (no job runs: it says so); c no longer is.
        await pilot.press("colon", *"jobs", "enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("c")
        await pilot.pause()
        assert not any("Choose a running job" in t for t in toasts(app))
        await pilot.press("x")
        await pilot.pause()
        assert any("Choose a running job to cancel." in t for t in toasts(app))
        await pilot.press("escape")
        await pilot.pause()

        # A confirmation answers to Y, not y: a task is dropped from the pool's history.
        pane = await show_wasm_pane(pilot, app)
        await pilot.press("n")
        await pilot.pause()
        await fill_form(pilot, app, module=str(module))
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what=f"the output; {toasts(app)}")
        await pilot.press("escape")
        (task,) = pane.records
        await until(pilot, lambda: pane.records[task].state == "done", timeout=30)
        assert pane.table.move_cursor_to(task)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("Y")
        assert pane.pool is not None
        pool = pane.pool
        await until(pilot, lambda: task not in {r.id for r in pool.tasks()}, what="the drop")


# 20. Inspect offers only the keys a document has a use for -------------------------------------


@pytest.mark.engines
async def test_inspect_offers_no_stream_keys_while_logs_still_do(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    c = spawn("while :; do echo tick; sleep 0.2; done")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, c)
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.view.line_count > 0)
        view = app.screen.query_one(LogView)
        offered = {binding.action for _key, (_node, binding, _on, _tip) in app.screen.active_bindings.items()}
        assert {"next_match", "toggle_wrap", "open_save"} <= offered
        assert not {"follow", "pick_range", "marker", "toggle_timestamps"} & offered
        held = view.line_count
        await pilot.press("s", "m", "t", "G")
        await pilot.pause()
        assert not isinstance(app.screen, PickerScreen)  # no "tail 100…" offered
        assert view.line_count == held and "timestamps" not in view.status_text()
        assert "following" not in view.status_text() and "End to follow" not in view.status_text()
        await pilot.press("escape")
        await pilot.pause()

        # The log of the same container still has them all.
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen) and "tick" in " ".join(log_lines(app)))
        offered = {binding.action for _key, (_node, binding, _on, _tip) in app.screen.active_bindings.items()}
        assert {"follow", "pick_range", "marker", "toggle_timestamps"} <= offered


# 21. Sort arrows say how the rows are ordered -----------------------------------------------------


async def send_to_broker(pilot: Pilot[None], app: BerthApp, module: Path, count: int) -> None:
    await pilot.press("n")
    await pilot.pause()
    await fill_form(pilot, app, module=str(module), target="broker", count=str(count))


async def test_wasm_and_jobs_tables_are_newest_first_under_a_down_arrow(
    offline_config: Config, tmp_path: Path
) -> None:
    module = trivial_module(tmp_path)
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        pane = await show_wasm_pane(pilot, app)
        for _ in range(3):
            await pilot.press("n")
            await pilot.pause()
            await fill_form(pilot, app, module=str(module))
            await until(pilot, lambda: isinstance(app.screen, LogScreen))
            await pilot.press("escape")
            await pilot.pause(0.05)
        records = pane.records
        await until(pilot, lambda: len(records) == 3 and all(r.state == "done" for r in records.values()))
        table = pane.table
        newest_first = sorted(pane.records, key=lambda t: pane.records[t].created_at, reverse=True)
        assert table.visible_ids() == newest_first
        assert header(table, "age") == "STARTED ▼"
        await pilot.press("O")  # reversed: the arrow turns and so do the rows
        await pilot.pause()
        assert header(table, "age") == "STARTED ▲" and table.visible_ids() == newest_first[::-1]

        # Two batches on the broker: two jobs, the newest on top under "# ▼".
        await send_to_broker(pilot, app, module, 2)
        await until(pilot, lambda: len(app.jobs.jobs) == 1)
        await send_to_broker(pilot, app, module, 2)
        await until(pilot, lambda: len(app.jobs.jobs) == 2)
        await pilot.press("colon", *"jobs", "enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        assert isinstance(app.screen, JobsScreen)
        jobs = app.screen.table
        assert header(jobs, "id") == "# ▼" and jobs.visible_ids() == ["2", "1"]
        await pilot.press("O")
        await pilot.pause()
        assert header(jobs, "id") == "# ▲" and jobs.visible_ids() == ["1", "2"]


@pytest.mark.engines
async def test_all_hosts_containers_are_sorted_by_name_under_name_arrow(
    dockerd: DockerEngine, spawn: Spawn, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    made = [spawn(name=f"{prefix}-{tag}") for prefix in ("mm", "zz", "aa")]
    # Two inventory hosts on the test dockerd: every container shows once per host.
    hosts = [HostConfig(h, docker_socket=str(dockerd.socket)) for h in ("local", "d2")]
    app = BerthApp(Config(hosts=hosts, path=tmp_path / "config.toml"), "all")
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one("#containers-table", ResourceTable)
        wanted = {f"{h}/{c.id}" for h in ("local", "d2") for c in made}
        await until(pilot, lambda: wanted <= set(table.rows), what="both hosts' rows")
        table.set_filter(tag)
        await pilot.pause()
        assert header(table, "name") == "NAME ▲" and header(table, "host") == "HOST"
        names = [str(table.rows[key].cells["name"]) for key in table.visible_ids()]
        assert names == sorted(names) and len(names) == 6, names


# 23. Confirmations name what they act on --------------------------------------------------------


async def test_drop_drain_and_disconnect_ask_by_name(offline_config: Config, tmp_path: Path) -> None:
    module = trivial_module(tmp_path)
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        wasm = await show_wasm_pane(pilot, app)
        await pilot.press("n")
        await pilot.pause()
        await fill_form(pilot, app, module=str(module))
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await pilot.press("escape")
        (task,) = wasm.records
        await until(pilot, lambda: wasm.records[task].state == "done", timeout=30)
        assert wasm.table.move_cursor_to(task)
        await pilot.press("d")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.question == f"Drop task {task} (trivial.wasm, done) from the history?"
        await pilot.press("y")
        assert wasm.pool is not None
        pool = wasm.pool
        await until(pilot, lambda: task not in {r.id for r in pool.tasks()}, what="the drop")
        assert any(f"Dropped task {task} (trivial.wasm, done)" in t for t in toasts(app))

        # The console's own provider, by the name it was paired as (not its fingerprint).
        await pilot.press("4")
        providers = app.query_one(ProvidersPane)
        await until(pilot, lambda: providers.providers, timeout=30, what="the local provider")
        fingerprint, provider = next(iter(providers.providers.items()))
        name, host = provider["name"], provider["host"]
        assert name and fingerprint != name
        # A paired provider's group is open (its row is under it): ▾, not ▸.
        grid = providers.table.grid
        first = grid.column_keys[1]
        assert any(str(grid.cell(key, first)).startswith("▾ providers") for key in grid.row_keys)
        for key, verb, answer in (("x", "Disconnect", "n"), ("D", "Drain", "y")):
            assert providers.table.move_cursor_to(fingerprint)
            await pilot.press(key)
            await pilot.pause()
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert confirm.question == f"{verb} provider {name} ({host})?"
            assert confirm.targets == [f"{name} ({host})"]
            await pilot.press(answer)
            await pilot.pause()
        # Not disconnected (that was answered no); drained: it finishes and leaves.
        broker = await app.broker()

        async def state() -> str:
            listed = await broker.client.call("GET", "/api/v1/providers")
            return next(str(p["state"]) for p in listed if p["fingerprint"] == fingerprint)

        deadline = time.monotonic() + 20
        while await state() == "online":
            assert time.monotonic() < deadline, "the provider was never drained"
            await pilot.pause(0.1)
        assert any(f"Draining provider {name} ({host})." in t for t in toasts(app)), toasts(app)
        assert not any("Disconnected" in t for t in toasts(app))
