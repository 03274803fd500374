"""What the Members pane shows is true (issue 15): each item driven the way a user does (keys in
the console through Pilot, or the installed `berth` in tmux), then checked on the screen and in the
test LXD (read through pylxd)."""

import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pylxd
import pytest
from engines.lxd import LxdEngine
from pilot_helpers import fill_form, log_lines
from test_app import toasts
from test_members_pane import client, made, members_app, pane, wait  # noqa: F401  (fixtures)
from textual.notifications import Notification
from tmux_helpers import Tmux, berth_env, installed_berth

from backends.audit import read_audit
from backends.config import Config, HostConfig, save_config
from backends.lxd import LxdBackend
from backends.lxd_models import MEMBER_KEY, MemberSpec
from tui.app import BerthApp
from tui.screens.logs import LogScreen
from tui.screens.member_details import ForwardsScreen, SnapshotsScreen
from tui.widgets.log_view import LogView

pytestmark = pytest.mark.engines
SIZE = (160, 40)
NO_DOCKER = "/nonexistent/berth-test/docker.sock"


@pytest.fixture
async def backend(lxd: LxdEngine) -> AsyncIterator[LxdBackend]:
    """berth's LXD backend, to set the scene (the verb under test goes through the keys)."""
    lxd_backend = LxdBackend("local", str(lxd.socket))
    yield lxd_backend
    await lxd_backend.close()


async def member(backend: LxdBackend, made: list[str], who: str = "ann") -> str:  # noqa: F811
    name = f"t-{uuid.uuid4().hex[:6]}"
    made.append(name)
    await backend.create(MemberSpec(name, who, "busybox"))
    return name


def notes(app: BerthApp) -> list[Notification]:
    # Textual keeps notifications in a private list; its own tests read it the same way.
    return list(app._notifications)


# 5. A failure is titled as one ------------------------------------------------------------------


async def test_a_refused_forward_and_a_bad_expiry_are_titled_as_failures(
    lxd: LxdEngine,
    backend: LxdBackend,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    name = await member(backend, made)
    port = random.randint(20000, 30000)
    await backend.add_forward(name, port, 7000, listen_address="127.0.0.1")
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(pilot, app, lambda: name in pane(app).table.rows, what="the member's row")
        assert pane(app).table.move_cursor_to(name)
        await pilot.press("f")
        await wait(pilot, app, lambda: isinstance(app.screen, ForwardsScreen) and app.screen.loads > 0)
        await pilot.press("a")
        await pilot.pause()
        await fill_form(pilot, app, host_port=str(port), port="9090", listen="127.0.0.1")
        await wait(pilot, app, lambda: any("already forwarded" in n.message for n in notes(app)))
        (refused,) = [n for n in notes(app) if "already forwarded" in n.message]
        assert refused.title == f"Add forward 127.0.0.1:{port} → 9090/tcp failed"
        assert refused.severity == "error"
        assert not any("added" in f"{n.title} {n.message}" for n in notes(app)), toasts(app)
        devices = client.instances.get(name).devices
        assert [d for d, conf in devices.items() if conf["type"] == "proxy"] == [f"berth-tcp-{port}"]
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("z")
        await wait(pilot, app, lambda: isinstance(app.screen, SnapshotsScreen) and app.screen.loads > 0)
        await pilot.press("S")
        await pilot.pause()
        await fill_form(pilot, app, schedule="@daily", expiry="for ever and a day")
        await wait(pilot, app, lambda: any("expiry" in n.message.lower() for n in notes(app)))
        (bad,) = [n for n in notes(app) if "expiry" in n.message.lower()]
        assert bad.title == f"Set the snapshot schedule of {name} failed" and bad.severity == "error"
        assert not any("Snapshot schedule set" in f"{n.title} {n.message}" for n in notes(app))
        assert client.instances.get(name).config.get("snapshots.expiry", "") == ""


# 8. An imported backup does not take a host port another instance forwards ---------------------


async def test_import_drops_the_forwards_whose_host_port_is_taken_and_says_which(
    lxd: LxdEngine,
    backend: LxdBackend,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    name = await member(backend, made)
    port = random.randint(20000, 30000)
    await backend.add_forward(name, port, 7000, listen_address="127.0.0.1")
    file = await backend.backup(name, tmp_path / "ann.tar.gz")
    copy = f"{name}-copy"
    made.append(copy)
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(pilot, app, lambda: name in pane(app).table.rows, what="the member's row")
        await pilot.press("I")
        await pilot.pause()
        await fill_form(pilot, app, path=str(file), name=copy)
        await wait(pilot, app, lambda: copy in pane(app).table.rows, timeout=90, what="the copy's row")
        await wait(pilot, app, lambda: any("without the forward" in n.message for n in notes(app)))
        (said,) = [n for n in notes(app) if "without the forward" in n.message]
        assert f"127.0.0.1:{port} → 7000/tcp (host port already forwarded to {name} " in said.message
        assert said.severity == "warning"
        assert str(pane(app).table.rows[copy].cells["forwards"]) == ""

    # In LXD: the copy has no proxy device, so it starts (and stays up); the original keeps its own.
    imported = client.instances.get(copy)
    assert not [d for d, conf in imported.devices.items() if conf["type"] == "proxy"]
    imported.start(wait=True)
    time.sleep(8)  # with the clashing forward it failed ~7 s into its start
    assert client.instances.get(copy).status == "Running"
    assert f"berth-tcp-{port}" in client.instances.get(name).devices


# 16 and 20. A running member's log: LXD's log, said so; only a document's keys -----------------


async def test_l_on_a_running_member_shows_lxds_log_and_says_so(
    lxd: LxdEngine,
    backend: LxdBackend,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    name = await member(backend, made)
    assert client.instances.get(name).status == "Running"
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(pilot, app, lambda: name in pane(app).table.rows, what="the member's row")
        assert pane(app).table.move_cursor_to(name)
        await pilot.press("l")
        await wait(pilot, app, lambda: isinstance(app.screen, LogScreen), what="the log")
        screen = app.screen
        assert isinstance(screen, LogScreen)
        assert screen.title_text == f"lxd log (no console log) · {name} · local"
        lines = log_lines(app)
        assert lines[0].startswith(f"{name} has no console log to read") and "LXD's log of it" in lines[0]
        assert any(f"lxc {name} " in line for line in lines[2:])  # lxc.log's own lines
        assert not any("failed" in (n.title or "") for n in notes(app)), toasts(app)
        assert any("this is LXD's log of it instead" in n.message for n in notes(app))
        # A log read once: no follow, range, marker or timestamps to offer.
        offered = {binding.action for _key, (_n, binding, _on, _tip) in screen.active_bindings.items()}
        assert "next_match" in offered and not {"follow", "pick_range", "marker"} & offered
        assert "following" not in screen.query_one(LogView).status_text()


# 17 and 21. The all-hosts view shows every host's members -------------------------------------


async def test_all_hosts_shows_each_hosts_members_and_acts_on_the_rows_host(
    lxd: LxdEngine,
    backend: LxdBackend,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    tmp_path: Path,
) -> None:
    first = await member(backend, made, "zoe")
    second = await member(backend, made, "bob")
    # Two inventory hosts on the test LXD (one engine, seen twice), and one whose LXD is gone.
    hosts = [
        HostConfig("local", docker_socket=NO_DOCKER, lxd_socket=str(lxd.socket)),
        HostConfig("lxd-b", docker_socket=NO_DOCKER, lxd_socket=str(lxd.socket)),
        HostConfig("gone", docker_socket=NO_DOCKER, lxd_socket="/nonexistent/l.s"),
    ]
    app = BerthApp(Config(hosts=hosts, path=tmp_path / "config.toml"), "all")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        table = pane(app).table
        wanted = {f"{h}/{n}" for h in ("local", "lxd-b") for n in (first, second)}
        await wait(pilot, app, lambda: wanted <= set(table.rows), what="both hosts' rows")
        assert table.rows[f"lxd-b/{first}"].cells["host"] == "lxd-b"
        await wait(pilot, app, lambda: "gone/!" in table.rows, what="the unreachable host's row")
        error = str(table.rows["gone/!"].cells["error"])
        assert "/nonexistent/l.s" in error and len(str(table.rows["gone/!"].cells["member"])) <= 32

        # Sorted by name under "NAME ▲", within each member's group (its heading ▾: open).
        names = [str(table.rows[k].cells["name"]) for k in table.visible_ids() if k in wanted]
        zoes = [n for n in names if n == first]
        assert names.index(second) < names.index(first) and len(zoes) == 2  # bob's group, then zoe's
        assert str(table.grid.label("name")).strip() == "NAME ▲"
        grid = table.grid
        headings = [str(grid.cell(key, grid.column_keys[1])) for key in grid.row_keys if key.startswith("\0")]
        assert "▾ member: bob  (2)" in headings and "▾ member: zoe  (2)" in headings, headings

        # s on lxd-b's row stops it through lxd-b's connection (the audit log says which host).
        table.clear_marks()
        assert table.move_cursor_to(f"lxd-b/{first}")
        await pilot.press("s")
        # Written once LXD's stop operation has ended (its status says Stopped a little before).
        await wait(pilot, app, lambda: any(r["action"] == "member.stop" for r in read_audit()), timeout=60)
    assert client.instances.get(first).status == "Stopped"
    assert [(r["host"], r["action"], r["targets"]) for r in read_audit()][-1] == (
        "lxd-b",
        "member.stop",
        [first],
    )


# 19. The shell opens on a clear screen -----------------------------------------------------------


def test_e_opens_the_shell_on_a_clear_screen(
    tmux: Tmux,
    lxd: LxdEngine,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    isolated_home: Path,
    tmp_path: Path,
) -> None:
    name = f"t-{uuid.uuid4().hex[:6]}"
    made.append(name)
    spec = {"name": name, "source": {"type": "image", "alias": "busybox"}, "config": {MEMBER_KEY: "sh"}}
    client.instances.create(spec, wait=True)
    client.instances.get(name).start(wait=True)
    host = HostConfig("local", docker_socket=NO_DOCKER, lxd_socket=str(lxd.socket))
    config = Config(hosts=[host], path=tmp_path / "config.toml")
    save_config(config, config.path)
    marker = "OLD-TERMINAL-OUTPUT-" + uuid.uuid4().hex[:6]
    berth = f"{installed_berth()} --config {config.path}"
    tmux.start(["sh", "-c", f"echo {marker}; exec {berth}"], berth_env(isolated_home))
    tmux.wait_for("Containers")
    tmux.keys("2")
    tmux.wait_for(name)
    tmux.keys("/")
    tmux.keys(name, literal=True)
    tmux.keys("Enter")
    time.sleep(0.5)
    tmux.keys("Down")  # from the member's heading to its instance
    time.sleep(0.3)
    tmux.keys("e")
    tmux.wait_gone("Containers", timeout=20)
    tmux.keys("echo in-the-shell-$((6 * 7))", literal=True)
    tmux.keys("Enter")
    screen = tmux.wait_for("in-the-shell-42", timeout=20)
    assert marker not in screen, screen
    tmux.keys("exit", literal=True)
    tmux.keys("Enter")
    tmux.wait_for("Members")
