"""Read-only mode and the audit log: verbs that change state are hidden from the footer and the
palette, refused with one notification when invoked anyway, and the engines stay as they were;
what did change is in the audit log, which `:audit` shows."""

import io
import json
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from textual.binding import Binding
from textual.pilot import Pilot

from backends.audit import _last_lines, audit, audit_file, read_audit
from backends.config import Config, HostConfig, UiConfig, save_config
from backends.lxd import key_label
from tui.app import BerthApp
from tui.keymap import binding_sections
from tui.panes.containers import ContainersPane
from tui.panes.members import MembersPane
from tui.panes.providers import ProvidersPane
from tui.panes.wasm import WasmPane
from tui.read_only import state_changing
from tui.screens.audit import AuditScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.main import MainScreen
from tui.screens.member_details import KeysScreen

SIZE = (150, 40)
PANES = {"1": ContainersPane, "2": MembersPane, "3": WasmPane, "4": ProvidersPane}
LOOKING = {"1": "containers.logs", "2": "members.logs", "3": "wasm.output", "4": "providers.log"}


def toasts(app: BerthApp) -> list[str]:
    """Every notification said so far (Textual's own list drops them when they time out)."""
    said: list[str] | None = getattr(app, "said", None)
    if said is None:
        said = app.said = []  # type: ignore[attr-defined]
        notify = app.notify

        def record(message: str, **kwargs: Any) -> None:
            said.append(message)
            notify(message, **kwargs)

        app.notify = record  # type: ignore[method-assign]
    return said


def footer_ids(app: BerthApp) -> set[str]:
    """The ids of the bindings the footer may show now (what `check_action` let through)."""
    return {b.binding.id for b in app.screen.active_bindings.values() if b.binding.id}


def verbs(node_class: type) -> list[Binding]:
    return [b for b in node_class.BINDINGS if isinstance(b, Binding) and b.id in state_changing()]


async def until(pilot: Pilot[None], check: Any, what: str = "", tries: int = 300) -> None:
    for _ in range(tries):
        if check():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what or check}")


def test_every_state_changing_id_is_a_binding() -> None:
    ids = {b.id for section in binding_sections() for b in section.bindings}
    assert set(state_changing()) <= ids
    # Destructive verbs are state-changing verbs too.
    destructive = {i for i in ids if i and i.rsplit(".", 1)[-1] in ("remove", "delete", "drop")}
    assert destructive <= set(state_changing())


async def test_read_only_flag_hides_and_refuses_every_verb_of_every_pane(offline_config: Config) -> None:
    app = BerthApp(offline_config, read_only=True)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        for key, pane_class in PANES.items():
            await pilot.press(key)
            await pilot.pause()
            shown = footer_ids(app)
            assert LOOKING[key] in shown, (key, shown)
            assert not shown & set(state_changing()), shown & set(state_changing())
            pane = app.query_one(pane_class)
            for binding in verbs(pane_class):
                said = len(toasts(app))
                assert await app.run_action(binding.action, pane), binding.id
                await pilot.pause()
                assert toasts(app)[said:] == ["berth runs read-only (--read-only): nothing was changed."]
                assert isinstance(app.screen, MainScreen), binding.id
        # A key whose binding is hidden says why rather than doing nothing.
        await pilot.press("1")
        said = len(toasts(app))
        await pilot.press("d")
        await pilot.pause()
        assert toasts(app)[said:] == ["berth runs read-only (--read-only): nothing was changed."]
        assert not isinstance(app.screen, ConfirmScreen)
    assert read_audit() == []


async def test_read_only_host_hides_its_verbs_but_not_the_consoles_own(offline_config: Config) -> None:
    offline_config.hosts[0].read_only = True
    app = BerthApp(offline_config)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "containers.stop" not in footer_ids(app)
        assert await app.run_action("act('stop')", app.query_one(ContainersPane))
        await pilot.pause()
        assert toasts(app)[-1] == (
            "local is read-only here (read_only = true in the config): nothing was changed."
        )
        await pilot.press("2")
        await pilot.pause()
        assert not footer_ids(app) & set(state_changing())
        # The task pool and the broker are berth's own, not the host's.
        wasm = await app.main_screen.ready_pane("wasm", WasmPane)
        assert wasm.check_action("new", ()) is True and wasm.check_action("drop", ()) is True
        providers = await app.main_screen.ready_pane("providers", ProvidersPane)
        assert providers.check_action("approve", ()) is True
        assert providers.check_action("start_provider", ()) is False
        app.switch_host("web-1")  # a host that is not read-only: the verbs come back
        await pilot.pause(0.2)
        await pilot.press("1")
        await pilot.pause()
        assert "containers.stop" in footer_ids(app)


class NoLxd:
    """Stands in for the LXD backend: the keys screen only reads (no key is ever added)."""

    host_name = "local"

    async def keys(self, name: str) -> list[str]:
        return ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0sZ1c alice@x"]


async def test_member_detail_screens_show_but_do_not_act(offline_config: Config) -> None:
    app = BerthApp(offline_config, read_only=True)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = KeysScreen(NoLxd(), "alice")  # type: ignore[arg-type]
        app.push_screen(screen)
        await until(pilot, lambda: screen.loads > 0)
        assert "detail.close" in footer_ids(app)
        assert not footer_ids(app) & {"keys.add", "keys.remove"}
        await pilot.press("a")
        await pilot.pause()
        assert app.screen is screen
        assert toasts(app)[-1].startswith("berth runs read-only (--read-only)")


async def test_config_is_never_written_read_only(offline_config: Config) -> None:
    offline_config.ui.read_only = True
    app = BerthApp(offline_config)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        palette = [c.title for c in app.get_system_commands(app.screen)]
        assert "host: add…" not in palette and "audit: log" in palette
        app.run_command(":theme berth-amber")
        await pilot.pause(0.2)
        assert app.theme == "berth-amber"  # the look switches, for this run
        app.save_config(save_config)  # even asked to write it, the app does not
        await pilot.pause(0.2)
        await pilot.press("colon", *"host add", "enter")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert toasts(app)[-1].startswith(
            "berth runs read-only ([ui] read_only in the config): no host is added."
        )
    assert not offline_config.path.exists()
    assert read_audit() == []


async def test_audit_screen_lists_newest_first_and_filters(offline_config: Config) -> None:
    app = BerthApp(offline_config)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        app.run_command(":theme berth-amber")  # saved, so audited (once the file is written)
        await until(pilot, lambda: any(r.get("action") == "theme.switch" for r in read_audit(10)))
        audit("web-1", "container.stop", ["abc123"], "failed: no such container", force=False)
        await pilot.press("colon", *"audit", "enter")
        await until(pilot, lambda: isinstance(app.screen, AuditScreen))
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        await until(pilot, lambda: screen.loads > 0)
        table = screen.table
        rows = [table.rows[k].cells for k in table.visible_ids()]
        assert [(r["host"], r["action"]) for r in rows] == [
            ("web-1", "container.stop"),
            ("local", "theme.switch"),
        ]
        assert rows[0]["outcome"] == "failed: no such container" and rows[0]["details"] == "force=false"
        assert rows[1]["targets"] == "berth-amber" and rows[1]["user"]
        table.set_filter("theme")
        assert [table.rows[k].cells["action"] for k in table.visible_ids()] == ["theme.switch"]
        await pilot.press("escape", "escape")
        await until(pilot, lambda: isinstance(app.screen, MainScreen))


def test_audit_log_is_read_from_its_end_and_skips_broken_lines() -> None:
    data = b"".join(b'{"n": %d}\n' % i for i in range(3000)) + b'{"n": 30'
    for block in (7, 100, 1 << 16):
        assert _last_lines(io.BytesIO(data), 3, block) == [b'{"n": 2998}', b'{"n": 2999}', b'{"n": 30']
    audit_file().parent.mkdir(parents=True, exist_ok=True)
    audit_file().write_bytes(data + b"\n")
    assert [r["n"] for r in read_audit(3)] == [2998, 2999]


def test_keys_are_audited_by_fingerprint_only() -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0sZ1cOvQy1b4gH3p7GgWkZ1kQ2cR6n0m4hD2d3x2Zf alice@laptop"
    label = key_label(key)
    assert label.startswith("SHA256:") and label.endswith(" alice@laptop")
    assert "AAAAC3" not in label
    assert key_label("not a key") == "(not a key) key"


# With the test dockerd: nothing changes in the engine -------------------------------------------


@pytest.mark.engines
async def test_read_only_containers_pane_changes_nothing_in_docker(
    dockerd: DockerEngine, spawn: Spawn, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    c = spawn()
    hosts = [HostConfig("local", docker_socket=str(dockerd.socket))]
    config = Config(ui=UiConfig(), hosts=hosts, path=tmp_path / "c.toml")
    app = BerthApp(config, read_only=True)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        table = app.query_one(ContainersPane).table
        await until(pilot, lambda: c.id in table.rows, "the container's row")
        table.set_filter(c.name)
        assert table.move_cursor_to(c.id)
        shown = footer_ids(app)
        assert "containers.logs" in shown and not shown & set(state_changing())
        await pilot.press("s", "r", "p", "d", "e", "U", "D", "v", "P", "d", "v")
        await pilot.pause(0.5)
        assert isinstance(app.screen, MainScreen)
        assert sum("berth runs read-only" in t for t in toasts(app)) == 9
    assert sdk.containers.get(c.id).status == "running"
    assert [i.id for i in sdk.images.list()] and read_audit() == []


# The CLI ---------------------------------------------------------------------------------------


def test_cli_refuses_state_changing_verbs_read_only(tmp_path: Path) -> None:
    from cli_helpers import berth

    config = tmp_path / "config.toml"
    config.write_text(
        '[[hosts]]\nname = "ro"\nurl = "local"\nread_only = true\n\n[[hosts]]\nname = "rw"\nurl = "local"\n'
    )
    module = tmp_path / "m.wasm"
    module.write_bytes(b"\0asm\1\0\0\0")
    refused = {
        ("--read-only", "stop", "web"): "berth: berth runs read-only (--read-only): `stop` changes state",
        ("--read-only", "--host", "rw", "rm", "web"): "`rm` changes state",
        ("stop", "web"): "ro is read-only here (read_only = true in the config): `stop` changes state",
        ("--host", "rw", "image", "move", "img", "--to", "ro"): "ro is read-only here",
        ("--host", "rw", "--read-only", "member", "delete", "alice", "--yes"): "`member delete` changes",
        ("member", "keys", "alice", "--add", str(module)): "ro is read-only here",
        ("--read-only", "broker", "pair", "SHA256:x", "--name", "p"): "`broker pair` changes state",
        ("--read-only", "submit", str(module)): "`submit` changes state",
        ("--read-only", "hosts", "add", "web-9", "local"): "`hosts add` changes state",
        ("--read-only", "wasm", "run", "--rw-dir", str(tmp_path), str(module)): "`wasm run` changes state",
    }
    for args, said in refused.items():
        done = berth(config, *args, timeout=30)
        assert (done.returncode, done.stdout) == (1, ""), (args, done.stderr)
        assert said in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)
    assert "web-9" not in config.read_text()
    assert read_audit() == []
    # A read-only host is still a host to add other hosts next to; that is audited.
    done = berth(config, "hosts", "add", "web-9", "local")
    assert done.returncode == 0, done.stderr
    assert [(r["action"], r["targets"], r["url"]) for r in read_audit()] == [("host.add", ["web-9"], "local")]
    assert json.loads(audit_file().read_text().splitlines()[-1])["user"]
