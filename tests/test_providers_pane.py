"""The Providers pane driven with keys: the embedded broker and its local provider, a provider
process waiting to be paired and approved with `a`, its log, drain, and starting a provider on a
host with `P` (here, and the message when the host has no berth)."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from engines.sshd import SshServer
from pilot_helpers import fill_form, log_lines
from test_app import toasts
from test_containers_pane import until

from backends.config import BrokerConfig, Config, HostConfig
from tui.app import BerthApp
from tui.panes.provider_rows import PAIRED, WAITING
from tui.panes.providers import ProvidersPane
from tui.panes.wasm import WasmPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen

SIZE = (180, 40)
BERTH = str(Path(sys.executable).with_name("berth"))


def providers_app(tmp_path: Path) -> BerthApp:
    nowhere = "/nonexistent/berth-test"
    host = HostConfig("local", docker_socket=f"{nowhere}/docker.sock", lxd_socket=f"{nowhere}/lxd.sock")
    broker = BrokerConfig(listen="127.0.0.1:0", data_dir=str(tmp_path / "broker"))
    return BerthApp(Config(hosts=[host], broker=broker, path=tmp_path / "config.toml"))


def pane(app: BerthApp) -> ProvidersPane:
    return app.query_one(ProvidersPane)


def named(app: BerthApp, name: str, group: str) -> str | None:
    """The fingerprint of the row called `name` in `group`, if shown."""
    rows = pane(app).table.rows
    return next((fp for fp, row in rows.items() if row.cells["name"] == name and row.group == group), None)


def state_of(app: BerthApp, fingerprint: str) -> str:
    return str(pane(app).table.rows[fingerprint].cells["state"])


async def test_embedded_broker_pair_a_waiting_provider_read_its_log_and_drain_it(tmp_path: Path) -> None:
    app = providers_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        # The console's own broker comes up with its local provider paired and online.
        await until(pilot, lambda: named(app, "local", PAIRED) is not None, timeout=30, what=toasts(app))
        local = named(app, "local", PAIRED)
        assert local is not None
        await until(pilot, lambda: state_of(app, local) == "online", timeout=10)
        broker = pane(app).broker
        assert broker is not None and broker.embedded and broker.url.startswith("http://127.0.0.1:")
        status = str(pane(app).query_one("#broker-status").render())
        assert "providers 1" in status and "(embedded)" in status

        # A provider process of its own key asks to join: it waits, refused, until approved.
        log = (tmp_path / "provider.log").open("wb")
        proc = subprocess.Popen(
            [
                BERTH,
                "provider",
                "--broker",
                broker.url,
                "--name",
                "edge-7",
                "--key",
                str(tmp_path / "edge.key"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
        try:
            await until(pilot, lambda: named(app, "edge-7", WAITING) is not None, timeout=20)
            waiting = named(app, "edge-7", WAITING)
            assert waiting is not None and state_of(app, waiting) == "pending"
            assert "is not paired" in (tmp_path / "provider.log").read_text()

            assert pane(app).table.move_cursor_to(waiting)
            await pilot.press("a")
            await pilot.pause()
            await fill_form(pilot, app, name="edge seven")
            # Admitted on its next try (every 2 s while refused), under the name given.
            await until(
                pilot, lambda: named(app, "edge seven", PAIRED) is not None, timeout=15, what=toasts(app)
            )
            await until(pilot, lambda: state_of(app, waiting) == "online", timeout=15, what=toasts(app))
            assert named(app, "edge-7", WAITING) is None

            # l: its log in the log view, pairing and connection included.
            assert pane(app).table.move_cursor_to(waiting)
            await pilot.press("l")
            await until(pilot, lambda: isinstance(app.screen, LogScreen))
            await until(pilot, lambda: "paired as 'edge seven'" in "\n".join(log_lines(app)), timeout=10)
            text = "\n".join(log_lines(app))
            assert "connected from" in text and "admitted by the broker" in text
            await pilot.press("escape")
            await pilot.pause()

            # D asks, then drains: the provider finishes (nothing running) and exits.
            assert pane(app).table.move_cursor_to(waiting)
            await pilot.press("D")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: proc.poll() is not None, timeout=15, what="the provider to exit")
            assert proc.returncode == 0
            await until(pilot, lambda: state_of(app, waiting) == "offline", timeout=10)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            log.close()


async def test_start_a_provider_on_the_host_and_say_when_berth_is_missing(tmp_path: Path) -> None:
    app = providers_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: named(app, "local", PAIRED) is not None, timeout=30, what=toasts(app))

        await pilot.press("P")
        await pilot.pause()
        await fill_form(pilot, app, berth="/nonexistent/bin/berth", workers="1", name="far-1")
        said = "berth is not installed on local: `command -v /nonexistent/bin/berth` found nothing"
        await until(pilot, lambda: said in " ".join(toasts(app)), timeout=10, what=str(toasts(app)))
        assert not pane(app).started

        await pilot.press("P")
        await pilot.pause()
        await fill_form(pilot, app, berth=BERTH, workers="1", name="far-1")
        await until(pilot, lambda: named(app, "far-1", WAITING) is not None, timeout=20, what=toasts(app))
        spawned = pane(app).started["local"]
    # Leaving the console ends the provider it started.
    await asyncio.wait_for(spawned.wait(), 10)


async def test_wasm_pane_sends_copies_of_a_task_to_the_broker(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    app = providers_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        wasm = app.query_one(WasmPane)
        await pilot.press("n")
        await pilot.pause()
        # Folders do not travel to other machines: refused, named.
        await fill_form(pilot, app, module=str(wasm_programs["echo"]), target="broker", dirs=str(tmp_path))
        assert "get no folders" in str(app.screen.query_one("#form-error").render())
        await fill_form(
            pilot, app, module=str(wasm_programs["echo"]), args="one two", target="broker", count="3", dirs=""
        )
        await until(pilot, lambda: len(wasm.remote) == 3, timeout=30, what=str(toasts(app)))
        await until(
            pilot,
            lambda: all(str(wasm.table.rows[t].cells["exit"]) == "exit 0" for t in wasm.remote),
            timeout=30,
            what=str(toasts(app)),
        )
        first = next(iter(wasm.remote))
        assert wasm.table.move_cursor_to(first)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogScreen))
        await until(pilot, lambda: "arg 2: two" in log_lines(app), timeout=10)
        assert "arg 0: echo.wasm" in log_lines(app)
        assert any("on provider local" in line for line in log_lines(app))


async def test_start_a_provider_on_an_ssh_host_through_its_connection(
    make_sshd: Callable[..., SshServer], ssh_host: Callable[..., HostConfig], tmp_path: Path
) -> None:
    # The provider on the far side keeps its key under this test's folders, not the user's.
    far = tmp_path / "far"
    server = make_sshd(
        extra_config=[f"SetEnv HOME={far} XDG_DATA_HOME={far}/data XDG_STATE_HOME={far}/state"]
    )
    host = ssh_host(server, name="far")
    broker = BrokerConfig(listen="127.0.0.1:0", data_dir=str(tmp_path / "broker"))
    app = BerthApp(Config(hosts=[host], broker=broker, path=tmp_path / "config.toml"))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: named(app, "local", PAIRED) is not None, timeout=30, what=toasts(app))
        await pilot.press("P")
        await pilot.pause()
        await fill_form(pilot, app, berth=BERTH, workers="1", name="far-ssh")
        # It reached the console's broker through the reverse tunnel on the host's loopback.
        await until(
            pilot, lambda: named(app, "far-ssh", WAITING) is not None, timeout=30, what=str(toasts(app))
        )
        assert (far / "data" / "berth" / "provider_ed25519").is_file()
        waiting = named(app, "far-ssh", WAITING)
        assert waiting is not None
        assert pane(app).table.move_cursor_to(waiting)
        await pilot.press("a")
        await pilot.pause()
        await fill_form(pilot, app, name="far-ssh")
        await until(pilot, lambda: state_of(app, waiting) == "online", timeout=20, what=str(toasts(app)))


async def test_palette_offers_each_pane_verb_on_each_row(tmp_path: Path) -> None:
    from textual.command import CommandPalette

    from tui.palette import pane_commands

    app = providers_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: named(app, "local", PAIRED) is not None, timeout=30, what=toasts(app))
        texts = [c.text for c in pane_commands(app)]
        assert "providers: Log local" in texts and "providers: Drain local" in texts
        assert "wasm: New task" in texts and "members: New member" in texts
        assert not any(t.startswith("wasm: New task ") for t in texts)  # pane-level: no target

        await pilot.press("1")  # from another pane, the palette brings the right one forward
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"providers: Log local")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what=str(app.screen))
        assert app.main_screen.active_pane == "providers"


async def test_u_unpairs_a_provider_after_asking_and_escape_codes_in_its_name_never_show(
    tmp_path: Path,
) -> None:
    from backends.audit import read_audit

    app = providers_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        await until(pilot, lambda: named(app, "local", PAIRED) is not None, timeout=30, what=toasts(app))
        broker = pane(app).broker
        assert broker is not None
        # A provider whose name carries escape codes (clear the screen, set the title) asks to join.
        log = (tmp_path / "provider.log").open("wb")
        argv = [BERTH, "provider", "--broker", broker.url, "--key", str(tmp_path / "edge.key")]
        proc = subprocess.Popen(
            [*argv, "--name", "edge\x1b[2J\x1b]0;owned\x07-9"], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            await until(pilot, lambda: named(app, "edge[2J]0;owned-9", WAITING) is not None, timeout=20)
            waiting = named(app, "edge[2J]0;owned-9", WAITING)
            assert waiting is not None
            row = pane(app).table.rows[waiting].cells
            assert not any("\x1b" in str(v) or "\x07" in str(v) for v in row.values())
            body = {"fingerprint": waiting, "name": "edge nine"}
            await broker.client.call("POST", "/api/v1/providers/pair", body=body, retry=False)
            await until(pilot, lambda: state_of(app, waiting) == "online", timeout=15, what=toasts(app))

            # u asks, naming it; n leaves it paired.
            assert pane(app).table.move_cursor_to(waiting)
            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            assert isinstance(app.screen, ConfirmScreen)
            assert app.screen.question.startswith("Unpair ")
            assert any("edge nine" in target for target in app.screen.targets), app.screen.targets
            await pilot.press("n")
            await pilot.pause()
            assert state_of(app, waiting) == "online"

            # y unpairs: disconnected, refused as a key never paired, waiting again; audited.
            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await until(pilot, lambda: named(app, "edge nine", PAIRED) is None, timeout=15, what=toasts(app))
            shown = "edge[2J]0;owned-9"
            await until(pilot, lambda: named(app, shown, WAITING) is not None, timeout=20, what=toasts(app))
            assert "Unpaired" in " ".join(toasts(app))
            after = (tmp_path / "provider.log").read_text().split("admitted by the broker")[-1]
            assert "is not paired" in after
            entry = next(e for e in read_audit() if e.get("action") == "provider.unpair")
            assert (entry["targets"], entry["outcome"]) == ([waiting], "ok")
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            log.close()
