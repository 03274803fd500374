"""The Wasm tasks pane driven with keys and forms: tasks run in berth's pool, output shows live."""

from pathlib import Path

from pilot_helpers import fill_form, log_lines
from test_app import toasts
from test_containers_pane import until
from textual.pilot import Pilot

from backends.config import Config, HostConfig
from tui.app import BerthApp
from tui.panes.wasm import WasmPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen

SIZE = (160, 40)


def wasm_app(tmp_path: Path) -> BerthApp:
    nowhere = "/nonexistent/berth-test"
    host = HostConfig("local", docker_socket=f"{nowhere}/docker.sock", lxd_socket=f"{nowhere}/lxd.sock")
    return BerthApp(Config(hosts=[host], path=tmp_path / "config.toml"))


def pane(app: BerthApp) -> WasmPane:
    return app.query_one(WasmPane)


async def test_run_a_task_see_its_output_live_then_rerun_cancel_and_drop(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    app = wasm_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await show_wasm_pane(pilot, app)

        # n: a module that does not exist is refused in the form; the slow printer runs.
        await pilot.press("n")
        await pilot.pause()
        await fill_form(pilot, app, module=str(tmp_path / "nope.wasm"))
        assert "No module file" in str(app.screen.query_one("#form-error").render())
        await fill_form(pilot, app, module=str(wasm_programs["slow"]), timeout="30s", fuel="")
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what=f"the output; {toasts(app)}")
        # Lines arrive while the task still runs (it prints one every 100 ms).
        records = pane(app).records
        await until(pilot, lambda: any("tick" in t for t in log_lines(app)), timeout=15, what="live lines")
        assert any(r.state == "running" for r in records.values())
        await until(pilot, lambda: all(r.state == "done" for r in records.values()), timeout=30)
        await pilot.press("escape")
        await pilot.pause()

        table = pane(app).table
        (first,) = records
        assert str(table.rows[first].cells["exit"]) == "exit 0"

        # R runs it again with the same spec.
        assert table.move_cursor_to(first)
        await pilot.press("R")
        await until(pilot, lambda: len(records) == 2, what="the re-run")
        (second,) = set(records) - {first}
        await until(pilot, lambda: records[second].state == "done", timeout=30, what="the re-run's end")

        # c cancels a task that would never end.
        await pilot.press("n")
        await pilot.pause()
        await fill_form(pilot, app, module=str(wasm_programs["loop"]))
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await pilot.press("escape")
        await pilot.pause()
        (looping,) = set(records) - {first, second}
        await until(pilot, lambda: records[looping].state == "running", timeout=15)
        assert table.move_cursor_to(looping)
        await pilot.press("c")
        await until(pilot, lambda: records[looping].state == "cancelled", timeout=15, what="the cancel")

        # d drops the finished task from the history, after asking.
        assert table.move_cursor_to(first)
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await until(pilot, lambda: first not in table.rows, what="the dropped row")


async def test_a_cancelled_broker_batch_reads_cancelled_and_its_ages_tick(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 15, item 6: the job of a batch sent to the broker is cancelled from :jobs; its rows
    follow the broker to "cancelled" (none stays "queued"), STARTED goes on ageing, `l` and `c`
    agree with the rows."""
    from backends.config import BrokerConfig
    from tui.screens.jobs import JobsScreen

    nowhere = "/nonexistent/berth-test"
    host = HostConfig("local", docker_socket=f"{nowhere}/docker.sock", lxd_socket=f"{nowhere}/lxd.sock")
    broker_config = BrokerConfig(listen="127.0.0.1:0", data_dir=str(tmp_path / "broker"))
    app = BerthApp(Config(hosts=[host], broker=broker_config, path=tmp_path / "config.toml"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        wasm = pane(app)
        await pilot.press("n")
        await pilot.pause()
        # Tasks that never end: the local provider runs some, the rest wait.
        await fill_form(pilot, app, module=str(wasm_programs["idle"]), target="broker", count="12")
        await until(pilot, lambda: len(wasm.remote) == 12, timeout=60, what=str(toasts(app)))
        broker = await app.broker()

        async def status() -> dict[str, int]:
            answer: dict[str, int] = await broker.client.call("GET", "/api/v1/status")
            return answer

        while (await status())["running"] < 1:
            await pilot.pause(0.1)
        ids = list(wasm.remote)

        await pilot.press("colon", *"jobs", "enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen))
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, JobsScreen))

        table = wasm.table
        await until(
            pilot,
            lambda: all(str(table.rows[t].cells["state"]) == "cancelled" for t in ids),
            timeout=20,
            what=str({str(table.rows[t].cells["state"]) for t in ids}),
        )
        for task_id in ids:
            view = await broker.client.call("GET", f"/api/v1/tasks/{task_id}")
            assert view["state"] == "cancelled", view
        assert (await status())["cancelled"] == 12

        # STARTED goes on ageing with nothing else changing.
        first = ids[0]
        before = str(table.rows[first].cells["age"])
        await until(pilot, lambda: str(table.rows[first].cells["age"]) != before, timeout=5)

        # l: the output view says how it ended; c: nothing left to cancel, nothing refused.
        assert table.move_cursor_to(first)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await until(pilot, lambda: any("cancelled" in line for line in log_lines(app)), timeout=10)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause(0.5)
        assert not any("already finished" in t for t in toasts(app)), toasts(app)
        assert str(table.rows[first].cells["state"]) == "cancelled"


async def show_wasm_pane(pilot: Pilot[None], app: BerthApp) -> WasmPane:
    """Press 3 and wait until the Wasm pane's task pool has started; the pane."""
    await pilot.press("3")
    wasm = app.query_one(WasmPane)
    await until(pilot, lambda: wasm.pool is not None, timeout=30, what=wasm.table.empty_message)
    return wasm
