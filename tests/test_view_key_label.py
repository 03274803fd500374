"""`v` on the Containers pane says where it goes (issue 16, found by a newcomer): "Images" on the
containers, "Containers" on the images, where it labelled the key "Images" and went back. A
keymap that moves it moves it on both views."""

from pathlib import Path

from engines.dockerd import DockerEngine
from pilot_helpers import footer_text
from test_containers_pane import SIZE, make_app, pane, until

from tui.palette import pane_commands


async def test_v_is_labelled_for_where_it_goes_on_each_view(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        await pilot.pause()
        assert "v Images" in footer_text(app) and "v Containers" not in footer_text(app)
        await pilot.press("v")
        await until(pilot, lambda: docker_busybox in pane(app).images_table.rows, what="the images")
        await pilot.pause()
        shown = footer_text(app)
        assert "v Containers" in shown and "v Images" not in shown, shown
        texts = [c.text for c in pane_commands(app)]
        assert "containers: Containers" in texts and "containers: Images" not in texts
        await pilot.press("v")
        await until(pilot, lambda: pane(app).view == "containers", what="the containers again")
        await pilot.pause()
        assert "v Images" in footer_text(app)


async def test_a_remapped_v_goes_both_ways(dockerd: DockerEngine, tmp_path: Path) -> None:
    app = make_app(dockerd, tmp_path)
    app.config.ui.keymap = {"containers.view": "V"}
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        await pilot.pause()
        assert "V Images" in footer_text(app)
        await pilot.press("V")
        await until(pilot, lambda: pane(app).view == "images", what="the images")
        await pilot.pause()
        assert "V Containers" in footer_text(app)
        await pilot.press("V")
        await until(pilot, lambda: pane(app).view == "containers", what="the containers again")
