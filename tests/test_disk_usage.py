"""Disk usage (`:df`, tui/screens/disk_usage.py, and `berth df`) against test dockerds: each kind's
count, size and reclaimable bytes as the engine's `GET /system/df` gives them, one table for all
hosts, a prune of the kind under the cursor removing exactly what its preview listed, read-only
hiding the prune, and one read of the disk usage serving every caller for a few seconds."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import berth
from engines.dockerd import DockerEngine
from engines.images import import_docker_busybox
from pilot_helpers import footer_text
from test_app import toasts
from test_containers_pane import SIZE, until
from test_volumes import Engine, targets_text
from test_volumes import engine as engine  # a fixture: pytest finds it by its name here
from textual.pilot import Pilot

from backends.config import Config, HostConfig, UiConfig, save_config
from backends.docker import DockerBackend
from tui.app import BerthApp
from tui.format import human_bytes
from tui.screens.confirm import ConfirmScreen
from tui.screens.disk_usage import DiskUsageScreen

pytestmark = pytest.mark.engines
WRITTEN = 200_000
"""Bytes the stopped container wrote into its own layer."""


@pytest.fixture
def populated(engine: Engine) -> Engine:
    """The test's own dockerd (a prune takes everything unused there) with a running and a
    stopped container, an unused image and an unused volume."""
    _dockerd, client, image = engine
    client.containers.run(image, ["sleep", "600"], name="df-run", detach=True)
    command = ["sh", "-c", f"head -c {WRITTEN} /dev/zero > /f"]
    client.containers.run(image, command, name="df-stopped", detach=True).wait(timeout=30)
    import_docker_busybox(client, "df/unused", "1", extra={"etc/unused": b"1"})
    client.volumes.create("df-vol")
    return engine


def app_on(*hosts: HostConfig, all_hosts: bool = False, tmp_path: Path) -> BerthApp:
    config = Config(ui=UiConfig(), hosts=list(hosts), path=tmp_path / "config.toml")
    return BerthApp(config, "all" if all_hosts else None)


def cells(screen: DiskUsageScreen, key: str) -> dict[str, Any]:
    return dict(screen.table.rows[key].cells)


async def open_df(pilot: Pilot[None], app: BerthApp, rows: int) -> DiskUsageScreen:
    """`:df`, and wait for `rows` rows."""
    await pilot.press("colon", *"df", "enter")
    await until(pilot, lambda: isinstance(app.screen, DiskUsageScreen), what="the disk usage screen")
    screen = app.screen
    assert isinstance(screen, DiskUsageScreen)
    await until(pilot, lambda: len(screen.table.rows) == rows, what=f"{rows} rows")
    return screen


async def test_df_shows_each_kind_as_the_engine_counts_it_and_prunes_exactly_the_previewed(
    populated: Engine, tmp_path: Path
) -> None:
    dockerd, client, image = populated
    raw = client.api.df()
    app = app_on(HostConfig("local", docker_socket=str(dockerd.socket)), tmp_path=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_df(pilot, app, 4)
        images = cells(screen, "local/images")
        assert (images["count"], images["active"]) == ("2", "1")
        assert images["size"] == human_bytes(raw["LayersSize"])
        stopped_size = next(c["SizeRw"] for c in raw["Containers"] if c["Names"] == ["/df-stopped"])
        assert stopped_size >= WRITTEN
        containers = cells(screen, "local/containers")
        assert (containers["count"], containers["active"]) == ("2", "1")
        assert containers["reclaimable"] == human_bytes(stopped_size)
        assert (cells(screen, "local/volumes")["count"], cells(screen, "local/volumes")["active"]) == (
            "1",
            "0",
        )
        assert cells(screen, "local/build cache")["count"] == "0"
        await pilot.pause()
        shown = footer_text(app)
        assert "P Prune" in shown and "r Reload" in shown, shown

        # P on the containers: the stopped one with its size, and only it, goes.
        assert screen.table.move_cursor_to("local/containers")
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the containers' preview")
        assert targets_text(app).strip() == f"• df-stopped  {human_bytes(stopped_size)}"
        assert "Remove 1 stopped container on local" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("y")
        await until(
            pilot, lambda: cells(screen, "local/containers")["count"] == "1", what="one container left"
        )
        assert [c.name for c in client.containers.list(all=True)] == ["df-run"]

        # P on the images: the unused one goes, the one the running container uses stays.
        assert screen.table.move_cursor_to("local/images")
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the images' preview")
        preview = targets_text(app)
        assert "df/unused:1" in preview and "berth-test/busybox" not in preview
        await pilot.press("y")
        await until(pilot, lambda: cells(screen, "local/images")["count"] == "1", what="one image left")
        assert [i.id for i in client.images.list()] == [image]
        assert any("Removed 1 unused image on local" in t for t in toasts(app))

        # Nothing in the build cache: said, not asked.
        assert screen.table.move_cursor_to("local/build cache")
        await pilot.press("P")
        await until(pilot, lambda: any("No unused build cache records on local" in t for t in toasts(app)))
        assert isinstance(app.screen, DiskUsageScreen)

        # r reads again: a volume made meanwhile is counted.
        client.volumes.create("df-new")
        await pilot.press("r")
        await until(
            pilot, lambda: cells(screen, "local/volumes")["count"] == "2", what="the new volume counted"
        )
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DiskUsageScreen), what="back to the panes")


async def test_all_hosts_in_one_table_and_read_only_hides_the_prune(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    hosts = [
        HostConfig("one", docker_socket=str(dockerd.socket), read_only=True),
        HostConfig("two", docker_socket=str(dockerd.socket), read_only=True),
    ]
    app = app_on(*hosts, all_hosts=True, tmp_path=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_df(pilot, app, 8)  # four kinds on each host
        assert cells(screen, "two/volumes")["host"] == "two" and cells(screen, "one/images")["host"] == "one"
        assert screen.table.columns[0].label == "HOST"
        await pilot.pause()
        assert "Prune" not in footer_text(app)
        assert screen.table.move_cursor_to("one/containers")
        await pilot.press("P")
        await pilot.pause()
        assert isinstance(app.screen, DiskUsageScreen)  # no question: nothing may change there


async def test_one_read_serves_every_caller_for_a_few_seconds(dockerd: DockerEngine) -> None:
    backend = DockerBackend("local", str(dockerd.socket))
    try:
        first = await backend.disk_usage()
        assert await backend.disk_usage() is first  # from the read just made
        fresh, joined = await asyncio.gather(backend.disk_usage(fresh=True), backend.disk_usage())
        assert fresh is joined and fresh is not first  # the second caller waited for the same read
        await backend.volumes()
        assert await backend.disk_usage() is fresh  # the volumes' sizes came from it too
    finally:
        await backend.close()


def test_berth_df_lists_each_kind_per_host(populated: Engine, tmp_path: Path) -> None:
    dockerd, client, _image = populated
    config = tmp_path / "config.toml"
    hosts = [HostConfig(name, docker_socket=str(dockerd.socket)) for name in ("one", "two")]
    save_config(Config(hosts=hosts), config)
    out = berth(config, "df")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["KIND", "COUNT", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line.split()[0] for line in out.stdout.splitlines()[1:]] == [
        "images",
        "containers",
        "volumes",
        "build",
    ]
    every = berth(config, "--json", "--host", "all", "df")
    assert every.returncode == 0, every.stderr
    listed = json.loads(every.stdout)
    kinds = ["images", "containers", "volumes", "build cache"]
    assert [(k["host"], k["kind"]) for k in listed] == [(h, k) for h in ("one", "two") for k in kinds]
    volumes = next(k for k in listed if k["kind"] == "volumes")
    assert (volumes["count"], volumes["active"]) == (1, 0)
    assert [item["name"] for item in volumes["prunable"]] == ["df-vol"]
    containers = next(k for k in listed if k["kind"] == "containers")
    assert [item["name"] for item in containers["prunable"]] == ["df-stopped"]
    raw = client.api.df()
    assert containers["reclaimable"] == next(
        c["SizeRw"] for c in raw["Containers"] if c["Names"] == ["/df-stopped"]
    )
