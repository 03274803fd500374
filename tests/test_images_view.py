"""The Containers pane's images view (its own widget, tui/panes/images_view.py) driven with keys
against a test dockerd of its own: d removes the image under the cursor, P prunes the dangling
ones, each after asking and naming what goes; the engine says what is left. Its keys show on the
images view only, and the containers' keys not there."""

from collections.abc import Callable
from pathlib import Path

from engines.dockerd import DockerEngine
from engines.images import import_docker_busybox
from test_app import toasts
from test_containers_pane import SIZE, make_app, pane, until

from backends.config import HostConfig
from tui.app import BerthApp
from tui.screens.confirm import ConfirmScreen


def footer_keys(app: BerthApp) -> set[str]:
    """The actions the footer offers now (enabled and shown)."""
    active = app.screen.active_bindings.values()
    return {b.binding.action for b in active if b.enabled and b.binding.show}


async def test_d_removes_an_image_and_p_prunes_the_dangling_ones_after_asking(
    make_dockerd: Callable[..., DockerEngine], tmp_path: Path
) -> None:
    engine = make_dockerd()
    client = engine.client()
    try:
        # Two imports under one tag: the first is left dangling (<none>); a third to remove.
        dangling = import_docker_busybox(client, "berth-test/img", "1", extra={"etc/v": b"1"})
        kept = import_docker_busybox(client, "berth-test/img", "1", extra={"etc/v": b"2"})
        doomed = import_docker_busybox(client, "berth-test/doomed", "1", extra={"etc/v": b"3"})
        app = make_app(engine, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
            assert "move" not in footer_keys(app)
            await pilot.press("v")
            images = pane(app).images_table
            await until(pilot, lambda: {dangling, kept, doomed} <= set(images.rows), what="the images")
            assert {"move", "prune", "remove"} <= footer_keys(app)
            assert not {"logs", "exec", "top"} & footer_keys(app)  # the containers' verbs are not here

            assert images.move_cursor_to(doomed)
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert "berth-test/doomed:1" in str(app.screen.query_one(".targets").render())
            await pilot.press("y")
            await until(pilot, lambda: doomed not in images.rows, 10, "the removed image's row to go")
            assert {i.id for i in client.images.list(all=True)} == {dangling, kept}

            await pilot.press("P")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the prune question")
            assert dangling.removeprefix("sha256:")[:12] in str(app.screen.query_one(".targets").render())
            await pilot.press("y")
            await until(pilot, lambda: dangling not in images.rows, 10, "the pruned image's row to go")
            assert {i.id for i in client.images.list(all=True)} == {kept}
    finally:
        client.close()


async def test_a_host_that_cannot_answer_leaves_the_others_images_on_show(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    """All hosts: one whose engine is gone is named in one notification; the reachable host's
    images stay listed (every host was read together, and one failure emptied the view)."""
    gone = HostConfig("gone", docker_socket=str(tmp_path / "no-docker.sock"))
    app = make_app(dockerd, tmp_path, extra=[gone])
    app.all_hosts = True
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        await pilot.press("v")
        images = pane(app).images_table
        await until(pilot, lambda: f"local/{docker_busybox}" in images.rows, what="the local images")
        await until(pilot, lambda: any("gone:" in t for t in toasts(app)), what="the failure named")


async def test_enter_and_i_on_an_image_show_its_inspect_document(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    """The images view's enter and `i`, like the volumes' and networks': the engine's document."""
    from tui.screens.logs import LogScreen

    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        await pilot.press("v")
        images = pane(app).images_table
        await until(pilot, lambda: docker_busybox in images.rows, what="the images")
        images.move_cursor_to(docker_busybox)
        for key in ("enter", "i"):
            await pilot.press(key)
            await until(pilot, lambda: isinstance(app.screen, LogScreen), what=f"the document ({key})")
            screen = app.screen
            assert isinstance(screen, LogScreen)
            text = "\n".join(screen.view.line(i).text for i in range(screen.view.line_count))
            assert f'"Id": "{docker_busybox}"' in text and "berth-test/busybox:latest" in text
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, LogScreen), what="back")
