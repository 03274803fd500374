"""The broker's figures (issue 15, item 7) read the same on every screen: tasks sent from the Wasm
tasks pane to a real broker and its 4-worker provider, then the Providers pane's status line and
rows, `berth broker status` and `berth broker providers`, each checked against the broker's API.

300 copies that exit 3 are failed everywhere (not done), 40 cancelled ones are cancelled
everywhere, running never exceeds the workers while more are in flight, and a drained provider
keeps its figures."""

import json
from pathlib import Path
from typing import Any

from broker_helpers import Broker, Procs, start_paired_provider, wait_for
from cli_helpers import berth
from pilot_helpers import fill_form
from test_app import toasts
from test_containers_pane import until

from backends.config import BrokerConfig, Config, HostConfig
from tui.app import BerthApp
from tui.panes.provider_rows import PAIRED
from tui.panes.providers import ProvidersPane
from tui.panes.wasm import WasmPane
from tui.screens.confirm import ConfirmScreen

SIZE = (200, 50)


def console(tmp_path: Path, url: str) -> BerthApp:
    nowhere = "/nonexistent/berth-test"
    host = HostConfig("local", docker_socket=f"{nowhere}/docker.sock", lxd_socket=f"{nowhere}/lxd.sock")
    return BerthApp(Config(hosts=[host], broker=BrokerConfig(url=url), path=tmp_path / "config.toml"))


def status_line(app: BerthApp) -> str:
    return str(app.query_one(ProvidersPane).query_one("#broker-status").render())


def row(app: BerthApp, name: str) -> dict[str, str]:
    """The cells of the paired provider called `name`, as text."""
    rows = app.query_one(ProvidersPane).table.rows
    found = [r for r in rows.values() if r.cells["name"] == name and r.group == PAIRED]
    return {k: str(v) for k, v in found[0].cells.items()} if found else {}


def shows(line: str, **figures: int) -> bool:
    """True when the status line reads each `label value` (in_flight: "in flight")."""
    return all(f" {label.replace('_', ' ')} {value:,} " in line + " " for label, value in figures.items())


def provider(broker: Broker, name: str) -> dict[str, Any]:
    return next(p for p in broker.get("/api/v1/providers") if p["name"] == name)


async def test_every_screen_counts_the_same_tasks_the_same_way(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    start_paired_provider(procs, broker, "p4", workers=4)
    app = console(tmp_path, broker.url)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        wasm = app.query_one(WasmPane)

        # 300 copies of a module that exits 3, sent from the Wasm pane's form.
        await pilot.press("n")
        await pilot.pause()
        await fill_form(pilot, app, module=str(wasm_programs["exit3"]), target="broker", count="300")
        await until(pilot, lambda: len(wasm.remote) == 300, timeout=30, what=str(toasts(app)))
        failed = set(wasm.remote)
        await until(
            pilot, lambda: all(wasm.records[t].finished for t in failed), timeout=120, what=str(toasts(app))
        )
        assert {str(wasm.table.rows[t].cells["state"]) for t in failed} == {"failed"}
        assert {str(wasm.table.rows[t].cells["exit"]) for t in failed} == {"exit 3"}
        status = broker.get("/api/v1/status")
        assert (status["done"], status["failed"], status["cancelled"]) == (0, 300, 0), status
        assert {broker.get(f"/api/v1/tasks/{t}")["state"] for t in failed} == {"failed"}

        # 40 that never end: the provider's 4 workers run 4 of them, more wait there, the rest here.
        await pilot.press("n")
        await pilot.pause()
        await fill_form(pilot, app, module=str(wasm_programs["idle"]), target="broker", count="40")
        await until(pilot, lambda: len(wasm.remote) == 340, timeout=30, what=str(toasts(app)))
        idle = set(wasm.remote) - failed
        busy = wait_for(
            lambda: (s := broker.get("/api/v1/status"))["running"] == 4 and s["in_flight"] > 4 and s,
            30,
            "4 running, more in flight",
        )
        assert busy["queued"] + busy["in_flight"] == 40 and busy["free_workers"] == 0, busy
        await pilot.press("4")
        await until(
            pilot,
            lambda: shows(status_line(app), running=4, in_flight=busy["in_flight"], queued=busy["queued"]),
            timeout=10,
            what=status_line(app),
        )
        p4 = row(app, "p4")
        assert (p4["workers"], p4["in_flight"]) == ("4/4", str(busy["in_flight"])), p4
        assert (p4["done"], p4["failed"], p4["cancelled"]) == ("0", "300", "0"), p4
        assert provider(broker, "p4")["running"] == 4

        # Cancelled from the Wasm pane: every row (ctrl+a), c; only the 40 still open are cancelled.
        await pilot.press("3")
        await pilot.press("ctrl+a")
        await pilot.press("c")
        await until(
            pilot,
            lambda: all(wasm.records[t].state == "cancelled" for t in idle),
            timeout=30,
            what=str(toasts(app)),
        )
        assert {str(wasm.table.rows[t].cells["state"]) for t in idle} == {"cancelled"}
        views = [broker.get(f"/api/v1/tasks/{t}") for t in idle]
        assert {v["state"] for v in views} == {"cancelled"}
        on_p4 = sum(1 for v in views if v["provider"] == "p4")  # those it had in flight
        assert on_p4 >= 4

        await pilot.press("4")
        everything = {"queued": 0, "running": 0, "in_flight": 0, "done": 0, "failed": 300, "cancelled": 40}
        await until(pilot, lambda: shows(status_line(app), **everything), timeout=10, what=status_line(app))
        await until(pilot, lambda: row(app, "p4").get("cancelled") == str(on_p4), timeout=10)
        p4 = row(app, "p4")
        assert (p4["workers"], p4["in_flight"], p4["done"], p4["failed"]) == ("0/4", "0", "0", "300"), p4

        # Drained, it goes offline and keeps its figures.
        table = app.query_one(ProvidersPane).table
        assert table.move_cursor_to(next(fp for fp, r in table.rows.items() if r.cells["name"] == "p4"))
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        gone = "offline"
        await until(pilot, lambda: row(app, "p4").get("state") == gone, timeout=20, what=str(toasts(app)))
        p4 = row(app, "p4")
        assert (p4["done"], p4["failed"], p4["cancelled"]) == ("0", "300", str(on_p4)), p4
        offline = provider(broker, "p4")
        assert (offline["state"], offline["done"], offline["failed"], offline["cancelled"]) == (
            "offline",
            0,
            300,
            on_p4,
        )

    # The command line says the same.
    config = tmp_path / "config.toml"
    shown = berth(config, "broker", "status", "--broker", broker.url)
    assert shown.returncode == 0, shown.stderr
    figures = dict(line.rsplit(None, 1) for line in shown.stdout.splitlines()[2:])
    assert {k: figures[k] for k in ("queued", "running", "in flight", "done", "failed", "cancelled")} == {
        "queued": "0",
        "running": "0",
        "in flight": "0",
        "done": "0",
        "failed": "300",
        "cancelled": "40",
    }
    as_json = json.loads(berth(config, "--json", "broker", "status", "--broker", broker.url).stdout)
    assert (as_json["done"], as_json["failed"], as_json["cancelled"], as_json["running"]) == (0, 300, 40, 0)
    listed = berth(config, "broker", "providers", "--broker", broker.url)
    assert listed.returncode == 0, listed.stderr
    header, line = listed.stdout.splitlines()
    assert header.split()[-5:] == ["RUNNING", "IN_FLIGHT", "DONE", "FAILED", "CANCELLED"]
    assert line.split()[-5:] == ["-", "-", "0", "300", str(on_p4)]
