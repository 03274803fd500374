"""Services that audit themselves (issue 16 item 3): a verb driven by its key in the console, or by
the berth command, leaves exactly one record in the audit log, written by the backend service that
did it (the same record from both faces); no module under tui/ writes one itself."""

import ast
from pathlib import Path
from typing import Any

from broker_helpers import Procs, new_key, wait_for
from cli_helpers import berth
from pilot_helpers import fill_form
from test_app import toasts
from test_containers_pane import until
from test_providers_pane import SIZE, named, providers_app, state_of
from test_wasm_pane import show_wasm_pane
from textual.pilot import Pilot

from backends.audit import read_audit
from tui.app import BerthApp
from tui.panes.provider_rows import PAIRED
from tui.panes.providers import ProvidersPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen

TUI = Path(__file__).resolve().parent.parent / "tui"
READERS = {"read_audit", "audit_file", "redact", "REDACTED"}
"""What tui/ may take from backends.audit: reading the log, and hiding passwords from the screen."""
SUBMIT_KEYS = {"at", "user", "pid", "host", "action", "targets", "outcome", "count", "module"} | {
    "fuel",
    "memory",
    "timeout",
}
"""A wasm.submit record's fields, from the console and the CLI alike (no arguments, no env)."""


def brief(records: list[dict[str, Any]]) -> list[tuple[str, str, list[str], str]]:
    return [(r["host"], r["action"], r["targets"], r["outcome"]) for r in records]


def test_no_module_under_tui_writes_an_audit_record() -> None:
    writers = []
    sources = sorted(TUI.rglob("*.py"))
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.ImportFrom) and node.module == "backends.audit":
                writers += [f"{source}: {a.name}" for a in node.names if a.name not in READERS]
            elif isinstance(node, ast.Import):
                writers += [f"{source}: import {a.name}" for a in node.names if a.name == "backends.audit"]
    assert len(sources) > 50 and writers == []


async def new_task(pilot: Pilot[None], app: BerthApp, module: Path, **values: str) -> None:
    await pilot.press("n")
    await pilot.pause()
    await fill_form(pilot, app, module=str(module), **values)


async def test_wasm_and_broker_verbs_by_key_each_leave_one_record_from_their_service(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    app = providers_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        wasm = await show_wasm_pane(pilot, app)
        records = wasm.records

        # The local pool: n runs hello, R runs it again, n runs a loop that c cancels, d drops.
        await new_task(pilot, app, wasm_programs["hello"])
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what=str(toasts(app)))
        await pilot.press("escape")
        (first,) = records
        await until(pilot, lambda: records[first].state == "done", timeout=30)
        assert wasm.table.move_cursor_to(first)
        await pilot.press("R")
        await until(pilot, lambda: len(records) == 2, what="the re-run")
        (second,) = set(records) - {first}
        await until(pilot, lambda: records[second].state == "done", timeout=30)
        await new_task(pilot, app, wasm_programs["loop"])
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await pilot.press("escape")
        (looping,) = set(records) - {first, second}
        await until(pilot, lambda: records[looping].state == "running", timeout=15)
        assert wasm.table.move_cursor_to(looping)
        await pilot.press("c")
        await until(pilot, lambda: records[looping].state == "cancelled", timeout=15, what=str(toasts(app)))
        assert wasm.table.move_cursor_to(first)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: first not in wasm.table.rows, what="the dropped row")

        # The broker: two copies of echo sent, then a task that never ends, cancelled with c.
        await new_task(pilot, app, wasm_programs["echo"], args="a b", target="broker", count="2")
        await until(pilot, lambda: len(wasm.remote) == 2, timeout=30, what=str(toasts(app)))
        sent = list(wasm.remote)
        await until(pilot, lambda: all(records[t].state == "done" for t in sent), timeout=30)
        await new_task(pilot, app, wasm_programs["idle"], target="broker")
        await until(pilot, lambda: len(wasm.remote) == 3, timeout=30, what=str(toasts(app)))
        (idle,) = set(wasm.remote) - set(sent)
        assert records[idle].state == "queued"  # as the pane knows it until the broker ends it
        assert wasm.table.move_cursor_to(idle)
        await pilot.press("c")
        await until(pilot, lambda: records[idle].state == "cancelled", timeout=15, what=str(toasts(app)))

        # The Providers pane: D drains the console's own provider, after asking.
        await pilot.press("4")
        providers = app.query_one(ProvidersPane)
        await until(pilot, lambda: named(app, "local", PAIRED) is not None, timeout=30, what=str(toasts(app)))
        local = named(app, "local", PAIRED)
        assert local is not None and providers.table.move_cursor_to(local)
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: state_of(app, local) != "online", timeout=15, what=str(toasts(app)))
        assert providers.broker is not None
        url = providers.broker.url

    log = read_audit()
    assert brief(log) == [
        ("local", "wasm.run", ["hello.wasm"], "ok"),
        ("local", "wasm.rerun", [first], "ok"),
        ("local", "wasm.run", ["loop.wasm"], "ok"),
        ("local", "wasm.cancel", [looping], "ok"),
        ("local", "wasm.drop", [first], "ok"),
        (url, "wasm.submit", ["echo.wasm"], "ok"),
        (url, "wasm.submit", ["idle.wasm"], "ok"),
        (url, "wasm.cancel", [idle], "ok"),
        (url, "provider.drain", [local], "ok"),
    ]
    run, submit = log[0], log[5]
    assert (run["fuel"], run["memory"], run["timeout"]) == (None, None, None)
    assert set(submit) == SUBMIT_KEYS and submit["count"] == 2 and submit["module"].startswith("sha256:")


def test_the_berth_command_leaves_the_same_records_once(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    broker = procs.broker(tmp_path / "broker")
    key = tmp_path / "p1.key"
    fingerprint = new_key(key)
    procs.provider(broker.url, key, "p1")
    wait_for(lambda: broker.pending(fingerprint), 30, "p1 to ask to join")
    config = tmp_path / "config.toml"
    url = ("--broker", broker.url)

    paired = berth(config, "broker", "pair", fingerprint, "--name", "p1", *url)
    assert paired.returncode == 0, paired.stderr
    wait_for(lambda: broker.online("p1"), 30, "p1 to be admitted")
    echo = str(wasm_programs["echo"])
    submitted = berth(config, "submit", *url, "--count", "2", "--fuel", "1000000", echo, "a")
    assert submitted.returncode == 0, submitted.stderr
    assert "2 task(s)" in submitted.stderr and "2 exit 0" in submitted.stderr
    unpaired = berth(config, "broker", "unpair", fingerprint, *url)
    assert unpaired.returncode == 0, unpaired.stderr
    added = berth(config, "hosts", "add", "web-9", "ssh://me@127.0.0.1:2222")
    assert added.returncode == 0, added.stderr

    log = read_audit()
    assert brief(log) == [
        (broker.url, "provider.pair", [fingerprint], "ok"),
        (broker.url, "wasm.submit", ["echo.wasm"], "ok"),
        (broker.url, "provider.unpair", [fingerprint], "ok"),
        ("local", "host.add", ["web-9"], "ok"),
    ]
    pair, submit, _, host = log
    assert pair["name"] == "p1"
    assert set(submit) == SUBMIT_KEYS and submit["count"] == 2 and submit["fuel"] == 1_000_000
    assert (host["url"], host["read_only"]) == ("ssh://me@127.0.0.1:2222", False)
