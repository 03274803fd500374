"""`v` on the Containers pane says where it goes (issue 16, found by a newcomer; issue 17 added two
views): "Images" on the containers, "Volumes" on the images, "Networks" on the volumes and
"Containers" on the networks, each view reached in turn. A keymap that moves it moves it on every
view, and `:volumes`-style commands go straight to a view."""

from pathlib import Path

from engines.dockerd import DockerEngine
from pilot_helpers import footer_text
from test_containers_pane import SIZE, make_app, pane, until

from tui.palette import pane_commands

CYCLE = (("images", "Volumes"), ("volumes", "Networks"), ("networks", "Containers"), ("containers", "Images"))
"""Each view `v` reaches from the containers, in order, with the label `v` has there."""


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
        assert "v Volumes" in shown and "v Images" not in shown, shown
        texts = [c.text for c in pane_commands(app)]
        assert "containers: Volumes" in texts and "containers: Images" not in texts
        for view, label in CYCLE[1:]:
            await pilot.press("v")
            await until(pilot, lambda view=view: pane(app).view == view, what=view)
            await pilot.pause()
            shown = footer_text(app)
            assert f"v {label}" in shown, (view, shown)
        # The networks view lists the engine's own networks (`none` and `host`, with no bridge).
        await pilot.press("v", "v", "v")
        await until(
            pilot,
            lambda: {r.cells["name"] for r in pane(app).resource_views["networks"].table.rows.values()}
            >= {"none", "host"},
            what="the networks",
        )


async def test_a_remapped_v_goes_through_every_view(dockerd: DockerEngine, tmp_path: Path) -> None:
    app = make_app(dockerd, tmp_path)
    app.config.ui.keymap = {"containers.view": "V"}
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        await pilot.pause()
        assert "V Images" in footer_text(app)
        for view, label in CYCLE:
            await pilot.press("V")
            await until(pilot, lambda view=view: pane(app).view == view, what=view)
            await pilot.pause()
            assert f"V {label}" in footer_text(app)


async def test_a_command_goes_straight_to_a_view(dockerd: DockerEngine, tmp_path: Path) -> None:
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        for view in ("networks", "images", "volumes", "containers"):
            await pilot.press("colon", *view, "enter")
            await until(
                pilot,
                lambda view=view: pane(app).view == view
                and (pane(app).resource_views.get(view) or pane(app)).table.has_focus_within,
                what=f"{view}, in focus",
            )
