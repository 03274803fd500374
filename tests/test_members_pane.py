"""The Members pane driven with keys and forms against the test LXD; pylxd checks the outcome."""

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pylxd
import pytest
from engines.lxd import LxdEngine
from engines.sshd import keygen
from pilot_helpers import fill_form
from test_app import toasts
from test_containers_pane import until
from textual.pilot import Pilot

from backends.config import Config, HostConfig
from tui.app import BerthApp
from tui.panes.members import MembersPane
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import FormScreen
from tui.screens.member_details import SnapshotsScreen

pytestmark = pytest.mark.engines
SIZE = (160, 40)


@pytest.fixture
def client(lxd: LxdEngine) -> Iterator[pylxd.Client]:
    """pylxd on the test LXD: the ground truth the pane is checked against."""
    yield lxd.client()


@pytest.fixture
def made(client: pylxd.Client) -> Iterator[list[str]]:
    """Names of instances a test made; force-deleted afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(pylxd.exceptions.NotFound):
            instance = client.instances.get(name)
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
            instance.delete(wait=True)


def members_app(lxd: LxdEngine, tmp_path: Path) -> BerthApp:
    host = HostConfig(
        "local", docker_socket="/nonexistent/berth-test/docker.sock", lxd_socket=str(lxd.socket)
    )
    return BerthApp(Config(hosts=[host], path=tmp_path / "config.toml"))


async def wait(
    pilot: Pilot[None], app: BerthApp, check: Callable[[], object], timeout: float = 10.0, what: str = ""
) -> None:
    """`until`, failing with the notifications on screen (they say what went wrong)."""
    try:
        await until(pilot, check, timeout, what)
    except AssertionError as exc:
        members = app.query_one(MembersPane)
        workers = [(w.name, w.state.name) for w in app.workers if w.group != "probe"]
        raise AssertionError(
            f"{exc}; notifications: {toasts(app)}; pane: {members.reads} reads, offline {members.offline!r};"
            f" workers {workers}"
        ) from None


def pane(app: BerthApp) -> MembersPane:
    return app.query_one(MembersPane)


async def test_create_snapshot_restore_and_delete_through_keys_and_forms(
    lxd: LxdEngine, client: pylxd.Client, made: list[str], tmp_path: Path
) -> None:
    name = f"m-{uuid.uuid4().hex[:6]}"
    made.append(name)
    public = keygen(tmp_path / "alice", "alice@laptop")
    (tmp_path / "alice.pub").write_text(public + " alice@laptop\n")
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(pilot, app, lambda: pane(app).reads > 0, what="the first list")

        # n: the form refuses a bad key file, then makes the instance with the key in it.
        await pilot.press("n")
        await pilot.pause()
        await fill_form(
            pilot, app, name=name, member="alice", image="busybox", keys=str(tmp_path / "nope.pub")
        )
        assert isinstance(app.screen, FormScreen)
        assert "No key file" in str(app.screen.query_one("#form-error").render())
        await fill_form(pilot, app, keys=str(tmp_path / "alice.pub"), memory="256MiB")
        assert not isinstance(app.screen, FormScreen), app.screen.query_one("#form-error").render()
        table = pane(app).table
        await wait(pilot, app, lambda: name in table.rows, timeout=60, what="the new member's row")
        instance = client.instances.get(name)
        assert instance.config["user.berth.member"] == "alice"
        assert public in instance.files.get("/root/.ssh/authorized_keys").decode()
        assert str(table.rows[name].cells["member"]) == "alice"

        # z, c: a snapshot; a file changes; R restores it.
        if instance.status != "Running":
            instance.start(wait=True)
        instance.files.put("/root/note", b"before\n")
        table.set_filter(name)
        assert table.move_cursor_to(name)
        await pilot.press("z")
        await wait(pilot, app, lambda: isinstance(app.screen, SnapshotsScreen) and app.screen.loads > 0)
        await pilot.press("c")
        await pilot.pause()
        await fill_form(pilot, app, name="before-change")
        snapshots = app.screen
        assert isinstance(snapshots, SnapshotsScreen)
        await wait(
            pilot, app, lambda: "before-change" in snapshots.table.rows, timeout=30, what="the snapshot"
        )
        instance.files.put("/root/note", b"after\n")
        assert snapshots.table.move_cursor_to("before-change")
        await pilot.press("R")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        loads = snapshots.loads
        await pilot.press("y")
        # The screen reads its list again once the restore has ended.
        await wait(pilot, app, lambda: snapshots.loads > loads, timeout=60, what="the restore to end")
        note = await asyncio.to_thread(lambda: client.instances.get(name).files.get("/root/note"))
        assert note == b"before\n"
        await pilot.press("escape")
        await pilot.pause()

        # d: asks, naming the instance, then deletes it.
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert name in app.screen.targets[0] and "1 snapshots" in app.screen.targets[0]
        await pilot.press("y")
        await wait(pilot, app, lambda: name not in table.rows, timeout=60, what="the row to go")
    with pytest.raises(pylxd.exceptions.NotFound):
        client.instances.get(name)
