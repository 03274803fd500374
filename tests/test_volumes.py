"""The Containers pane's volumes view (tui/panes/volumes_view.py) and `berth volumes`, `berth volume
rm|prune|inspect`, against test dockerds and through the SSH tunnel: sizes from the disk usage,
inspect, remove refused with the user's name (and forced: the stopped users go with it, a running
one still refuses), prune removing exactly the unused volumes its preview listed, and the all-hosts
view with an SSH host."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from cli_helpers import berth
from engines.dockerd import DockerEngine
from engines.images import import_docker_busybox
from engines.sshd import SshServer
from pilot_helpers import footer_text, log_lines
from ssh_helpers import SshHost
from test_app import toasts
from test_containers_pane import SIZE, make_app, pane, until
from textual.pilot import Pilot
from textual.widgets import Checkbox

from backends.config import Config, HostConfig, save_config
from tui.app import BerthApp
from tui.format import human_bytes
from tui.screens.confirm import ConfirmScreen
from tui.screens.logs import LogScreen
from tui.widgets.resource_table import ResourceTable

pytestmark = pytest.mark.engines
DATA = 300_000
"""Bytes written into the volume whose size the view must show."""


Engine = tuple[DockerEngine, docker.DockerClient, str]
"""A dockerd of the test's own, its SDK client and the busybox image's id there."""


@pytest.fixture
def engine(make_dockerd: Callable[..., DockerEngine]) -> Iterator[Engine]:
    """A dockerd of the test's own (a prune takes everything unused there), its SDK client and
    the busybox image's id."""
    started = make_dockerd()
    client = started.client()
    yield started, client, import_docker_busybox(client)
    client.close()


def fill(client: docker.DockerClient, image: str, volume: str, size: int) -> None:
    """Write `size` bytes into `volume` from a container that is gone after."""
    client.containers.run(
        image,
        ["sh", "-c", f"head -c {size} /dev/zero > /v/data"],
        volumes={volume: {"bind": "/v"}},
        remove=True,
    )


def volume_names(client: docker.DockerClient) -> set[str]:
    return {v.name for v in client.volumes.list()}


def config_file(tmp_path: Path, *hosts: HostConfig) -> Path:
    path = tmp_path / "config.toml"
    save_config(Config(hosts=list(hosts)), path)
    return path


def targets_text(app: BerthApp) -> str:
    return str(app.screen.query_one(".targets").render())


async def show_volumes(pilot: Pilot[None], app: BerthApp, names: set[str]) -> ResourceTable:
    """`:volumes`, and wait for the rows of `names` with their sizes."""
    await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
    await pilot.press("colon", *"volumes", "enter")
    table = pane(app).resource_views["volumes"].table
    await until(
        pilot,
        lambda: names <= set(table.rows) and all(table.rows[n].cells["size"] for n in names),
        what="the volumes with their sizes",
    )
    return table


async def test_view_shows_sizes_and_users_inspects_refuses_a_used_one_and_prunes_exactly_the_previewed(
    engine: Engine, tmp_path: Path
) -> None:
    dockerd, client, image = engine
    for name in ("v-used", "v-data", "v-empty"):
        client.volumes.create(name)
    client.volumes.create("v-late", labels={"tier": "db"})
    fill(client, image, "v-data", DATA)
    holder = client.containers.run(
        image, ["sleep", "600"], name="holder", volumes={"v-used": {"bind": "/v"}}, detach=True
    )
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await show_volumes(pilot, app, {"v-used", "v-data", "v-empty", "v-late"})
        assert table.rows["v-data"].cells["size"] == human_bytes(DATA)
        assert table.rows["v-late"].cells["labels"] == "tier=db"
        assert table.rows["v-used"].cells["users"] == "holder" and table.rows["v-empty"].cells["users"] == ""
        await pilot.pause()
        shown = footer_text(app)
        assert "i Inspect" in shown and "d Remove" in shown and "P Prune unused" in shown, shown
        assert "r Reload" in shown, shown

        # r: a volume made outside berth shows once the view reads again.
        client.volumes.create("v-outside")
        await pilot.press("r")
        await until(pilot, lambda: "v-outside" in table.rows, what="the outside volume")
        client.volumes.get("v-outside").remove()

        # i: the inspect document, searchable as a log.
        assert table.move_cursor_to("v-data")
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what="the inspect document")
        assert '  "Name": "v-data",' in log_lines(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogScreen), what="back")
        await pilot.press("enter")  # enter shows the same document
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what="the inspect document on enter")
        assert app.screen.title_text == "inspect · volume v-data"
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogScreen), what="back")

        # d on the one a running container uses: the question names its user and offers no force
        # (that cannot help); confirmed, the refusal says to stop it, naming the volume once.
        assert table.move_cursor_to("v-used")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert "v-used  (used by holder)" in targets_text(app)
        assert not app.screen.query(Checkbox)
        await pilot.press("y")
        said = "v-used is used by running holder on local: nothing was removed. Stop it first."
        await until(pilot, lambda: any(said in t for t in toasts(app)), what="the refusal")
        assert "v-used" in volume_names(client)

        # P: the preview lists the unused ones with their sizes; exactly those go.
        await pilot.press("P")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the prune preview")
        preview = targets_text(app)
        assert f"v-data  {human_bytes(DATA)}" in preview and "v-empty  0 B" in preview
        assert "v-late  0 B" in preview and "v-used" not in preview
        assert f"{human_bytes(DATA)} reclaimed" in str(app.screen.query_one(".dialog-title").render())
        # A container takes v-late while the question is open: kept, and who took it is named.
        grab = client.containers.create(image, ["true"], name="grab", volumes={"v-late": {"bind": "/v"}})
        await pilot.press("y")
        await until(pilot, lambda: set(table.rows) == {"v-used", "v-late"}, what="the used volumes' rows")
        assert volume_names(client) == {"v-used", "v-late"}
        said = f"Removed 2 unused volumes on local, {human_bytes(DATA)} reclaimed."
        said += " Kept v-late: grab now uses it."
        assert any(said in t for t in toasts(app)), toasts(app)
    holder.remove(force=True)
    grab.remove()


async def test_forced_removal_takes_the_stopped_users_with_it_and_a_running_one_still_refuses(
    engine: Engine, tmp_path: Path
) -> None:
    dockerd, client, image = engine
    client.volumes.create("v-stopped")
    client.volumes.create("v-running")
    stopped = client.containers.create(
        image, ["true"], name="was-here", volumes={"v-stopped": {"bind": "/v"}}
    )
    running = client.containers.run(
        image, ["sleep", "600"], name="runs", volumes={"v-running": {"bind": "/v"}}, detach=True
    )
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=(120, 32)) as pilot:
        table = await show_volumes(pilot, app, {"v-stopped", "v-running"})
        # A running user: no force offered, and the refusal says to stop it.
        assert table.move_cursor_to("v-running")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert not app.screen.query(Checkbox)
        await pilot.press("y")
        said = "v-running is used by running runs on local: nothing was removed. Stop it first."
        await until(pilot, lambda: any(said in t for t in toasts(app)), what="the refusal")
        # Only stopped users: force is offered, its label whole at 120 columns; the toast says
        # which containers went with it.
        assert table.move_cursor_to("v-stopped")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        box = app.screen.query_one(Checkbox)
        label = "Force: remove the stopped containers using it too"
        assert str(box.label) == label and box.content_region.width >= len(label) + 3
        box.value = True
        await pilot.press("y")
        await until(pilot, lambda: "v-stopped" not in table.rows, what="the forced volume's row to go")
        said = "Removed 1 volume(s), and the containers was-here with them."
        await until(pilot, lambda: any(said in t for t in toasts(app)), what="the toast")
    assert volume_names(client) == {"v-running"}
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(stopped.id)
    assert client.containers.get(running.id).status == "running"
    running.remove(force=True)


def test_cli_lists_refuses_removes_and_prunes_exactly_what_it_listed(engine: Engine, tmp_path: Path) -> None:
    dockerd, client, image = engine
    config = config_file(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    for name in ("c-used", "c-free", "c-gone", "c-running"):
        client.volumes.create(name)
    client.volumes.create("c-labelled", labels={"tier": "db", "app": "web"})
    fill(client, image, "c-free", DATA)
    user = client.containers.create(image, ["true"], name="user", volumes={"c-used": {"bind": "/v"}})

    listed = berth(config, "volumes")
    assert listed.returncode == 0, listed.stderr
    header = ["VOLUME", "DRIVER", "SIZE", "USED", "BY", "CREATED", "LABELS"]
    assert listed.stdout.split("\n")[0].split() == header
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert human_bytes(DATA) in rows["c-free"] and "user" in rows["c-used"]
    as_json = {v["name"]: v for v in json.loads(berth(config, "--json", "volumes").stdout)}
    assert as_json["c-free"]["size"] == DATA and as_json["c-used"]["used_by"] == ["user"]
    assert json.loads(berth(config, "volume", "inspect", "c-free").stdout)["Name"] == "c-free"

    assert rows["c-labelled"].rstrip().endswith("app=web, tier=db")
    refused = berth(config, "volume", "rm", "c-used")
    assert refused.returncode == 1
    assert "berth: c-used is used by user (stopped) on local: nothing was removed." in refused.stderr
    assert "--force" in refused.stderr and "c-used" in volume_names(client)
    # A running user: stop it first, forced or not (no --force suggested), the name said once.
    runner = client.containers.run(
        image, ["sleep", "600"], name="runner", volumes={"c-running": {"bind": "/v"}}, detach=True
    )
    for args in (("c-running",), ("--force", "c-running")):
        running = berth(config, "volume", "rm", *args)
        assert running.returncode == 1
        said = "berth: c-running is used by running runner on local: nothing was removed. Stop it first."
        assert said in running.stderr and "--force" not in running.stderr, running.stderr
    runner.remove(force=True)
    client.volumes.get("c-running").remove()
    client.volumes.get("c-labelled").remove()
    missing = berth(config, "volume", "rm", "nope")
    assert missing.returncode == 1 and "no such volume" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    every = berth(config, "--host", "all", "volume", "prune", "--yes")
    assert every.returncode == 2 and "This command works on one host." in every.stderr
    removed = berth(config, "volume", "rm", "c-gone")
    assert removed.returncode == 0 and removed.stdout.strip() == "c-gone"

    # Without --yes and no terminal: the preview, and nothing removed.
    asked = berth(config, "volume", "prune")
    assert asked.returncode == 2
    assert f"c-free  {human_bytes(DATA)}" in asked.stderr and "--yes" in asked.stderr
    assert volume_names(client) == {"c-used", "c-free"}
    pruned = json.loads(berth(config, "--json", "volume", "prune", "--yes").stdout)
    assert [v["name"] for v in pruned["removed"]] == ["c-free"] and pruned["reclaimed"] == DATA
    assert volume_names(client) == {"c-used"}
    again = berth(config, "volume", "prune", "--yes")
    assert again.returncode == 0 and again.stdout.strip() == "No unused volumes on local: nothing to prune."

    forced = berth(config, "--json", "volume", "rm", "--force", "c-used")
    assert json.loads(forced.stdout) == [{"name": "c-used", "removed": True, "containers_removed": ["user"]}]
    assert volume_names(client) == set()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(user.id)


def test_cli_read_only_refuses_before_touching_the_engine(engine: Engine, tmp_path: Path) -> None:
    dockerd, client, _image = engine
    client.volumes.create("ro-free")
    config = config_file(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket), read_only=True))
    for args in (("volume", "rm", "ro-free"), ("volume", "prune", "--yes")):
        out = berth(config, *args)
        assert out.returncode == 1 and "read-only" in out.stderr and "was not run" in out.stderr, out.stderr
    assert berth(config, "volumes").returncode == 0  # looking is allowed
    assert volume_names(client) == {"ro-free"}


def test_over_the_ssh_tunnel_volumes_are_listed_refused_and_removed(
    sshd: SshServer, dockerd: DockerEngine, docker_busybox: str, ssh_host: SshHost, tmp_path: Path
) -> None:
    client = dockerd.client()
    try:
        client.volumes.create("ssh-a17-used")
        client.volumes.create("ssh-a17-free")
        user = client.containers.create(
            docker_busybox, ["true"], name="ssh-a17-user", volumes={"ssh-a17-used": {"bind": "/v"}}
        )
        config = config_file(tmp_path, ssh_host(sshd, docker_socket=str(dockerd.socket)))
        listed = {v["name"]: v for v in json.loads(berth(config, "--json", "volumes").stdout)}
        assert (
            listed["ssh-a17-used"]["used_by"] == ["ssh-a17-user"] and listed["ssh-a17-used"]["host"] == "box"
        )
        refused = berth(config, "volume", "rm", "ssh-a17-used")
        assert refused.returncode == 1
        assert "ssh-a17-used is used by ssh-a17-user (stopped) on box" in refused.stderr
        removed = berth(config, "volume", "rm", "ssh-a17-free")
        assert removed.returncode == 0, removed.stderr
        assert {"ssh-a17-used"} == {v.name for v in client.volumes.list() if v.name.startswith("ssh-a17-")}
        user.remove()
        client.volumes.get("ssh-a17-used").remove()
    finally:
        client.close()


async def test_all_hosts_view_through_the_ssh_tunnel_refuses_a_used_volume_naming_its_host_and_user(
    sshd: SshServer, dockerd: DockerEngine, docker_busybox: str, ssh_host: SshHost, tmp_path: Path
) -> None:
    client = dockerd.client()
    client.volumes.create("tun-a17-used")
    user = client.containers.create(
        docker_busybox, ["true"], name="tun-a17-user", volumes={"tun-a17-used": {"bind": "/v"}}
    )
    hosts = [
        HostConfig("local", docker_socket=str(dockerd.socket)),
        ssh_host(sshd, docker_socket=str(dockerd.socket)),
    ]
    app = BerthApp(Config(hosts=hosts, path=tmp_path / "config.toml"), "all")
    try:
        async with app.run_test(size=SIZE) as pilot:
            table = await show_volumes(pilot, app, {"local/tun-a17-used", "box/tun-a17-used"})
            assert table.rows["box/tun-a17-used"].cells["host"] == "box"
            assert table.rows["box/tun-a17-used"].cells["users"] == "tun-a17-user"
            assert table.move_cursor_to("box/tun-a17-used")
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert "on box?" in str(app.screen.query_one(".dialog-title").render())
            await pilot.press("y")
            said = "tun-a17-used is used by tun-a17-user (stopped) on box"
            await until(pilot, lambda: any(said in t for t in toasts(app)), what="the refusal")
            assert "tun-a17-used" in volume_names(client)
    finally:
        user.remove()
        client.volumes.get("tun-a17-used").remove()
        client.close()


def test_a_name_that_walks_the_api_paths_is_refused_and_touches_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    """`../containers/ID` given as a volume's or a network's name would reach another resource's
    path: refused in one sentence before anything is sent, and the container is still there."""
    dockerd, client, image = engine
    config = config_file(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    victim = client.containers.create(image, ["true"], name="walk-victim")
    try:
        for args in (
            ("volume", "rm", "--force", f"../containers/{victim.id}"),
            ("volume", "inspect", "../containers/walk-victim"),
            ("network", "rm", f"../containers/{victim.id}"),
            ("network", "inspect", "./walk-victim"),
        ):
            answer = berth(config, *args)
            assert answer.returncode in (1, 2) and answer.stderr.count("\n") == 1, (args, answer.stderr)
            assert "'.' and '..' are no names" in answer.stderr, (args, answer.stderr)
        assert client.containers.get(victim.id).name == "walk-victim"
    finally:
        victim.remove(force=True)
