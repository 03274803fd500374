"""The Containers pane's networks view (tui/panes/networks_view.py) and `berth networks`, `berth
network create|rm|connect|disconnect|prune|inspect`, against a test dockerd of their own (a prune
takes every unused network there): a network made from the form, a marked container connected
to it from the view (the row and the engine say it is attached), disconnected, one picked when
none is marked, removal refused while attached and for the engine's own networks, prune removing
exactly the networks its preview listed. No traffic is sent to any container's address."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest
from cli_helpers import berth
from engines.dockerd import DockerEngine
from engines.images import import_docker_busybox
from engines.sshd import SshServer
from pilot_helpers import fill_form, footer_text, log_lines
from ssh_helpers import SshHost
from test_app import toasts
from test_containers_pane import SIZE, make_app, pane, until
from textual.pilot import Pilot
from textual.widgets import Label

from backends.config import Config, HostConfig, save_config
from tui.app import BerthApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import FormScreen
from tui.screens.logs import LogScreen
from tui.screens.picker import PickerScreen
from tui.widgets.resource_table import ResourceTable

pytestmark = pytest.mark.engines
Engine = tuple[DockerEngine, docker.DockerClient, str]


@pytest.fixture
def engine(make_dockerd: Callable[..., DockerEngine]) -> Iterator[Engine]:
    """A dockerd of the test's own, its SDK client and the busybox image's id."""
    started = make_dockerd()
    client = started.client()
    yield started, client, import_docker_busybox(client)
    client.close()


def make_network(client: docker.DockerClient, name: str, subnet: str) -> docker.models.networks.Network:
    """A bridge network on `subnet`: given, not left to the engine's default pools, which the
    bridges other dockerds of the machine left behind may have used up."""
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    return client.networks.create(name, driver="bridge", ipam=ipam)


def network_names(client: docker.DockerClient) -> set[str]:
    return {n.name for n in client.networks.list()}


def attached(client: docker.DockerClient, network: str) -> set[str]:
    """The names of the containers the engine has on `network` (its endpoints)."""
    found = client.api.inspect_network(network)["Containers"] or {}
    return {c["Name"] for c in found.values()}


def networks_of(client: docker.DockerClient, container: str) -> set[str]:
    """The networks the engine has `container` on (its own settings)."""
    return set(client.api.inspect_container(container)["NetworkSettings"]["Networks"])


def row_of(table: ResourceTable, name: str) -> str | None:
    """The row key of network `name`."""
    return next((key for key, row in table.rows.items() if row.cells["name"] == name), None)


def form_error(app: BerthApp) -> str:
    return str(app.screen.query_one("#form-error", Label).render())


async def show_networks(pilot: Pilot[None], app: BerthApp) -> ResourceTable:
    """`:networks`, and wait for its first read (the engine's own `none` is always there)."""
    await pilot.press("colon", *"networks", "enter")
    table = pane(app).resource_views["networks"].table
    await until(pilot, lambda: row_of(table, "none") is not None, what="the networks")
    return table


async def answer(pilot: Pilot[None], app: BerthApp, key: str, screen: type[object], what: str) -> None:
    """Press `key` and wait for `screen`."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(app.screen, screen), what=what)


async def test_create_from_the_form_connect_the_marked_container_disconnect_pick_and_remove(
    engine: Engine, tmp_path: Path
) -> None:
    dockerd, client, image = engine
    web = client.containers.run(image, ["sleep", "600"], name="web", detach=True)
    app = make_app(dockerd, tmp_path)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        containers = pane(app).table
        await until(pilot, lambda: web.id in containers.rows, what="the container")
        assert containers.move_cursor_to(web.id)
        await pilot.press("space")  # marked in the containers view
        assert containers.marked_ids() == [web.id]
        table = await show_networks(pilot, app)
        await pilot.pause()
        shown = footer_text(app)
        for key in (
            "i Inspect",
            "n New network",
            "d Remove",
            "c Connect",
            "x Disconnect",
            "P Prune unused",
            "r Reload",
        ):
            assert key in shown, shown

        # n: bad input is one sentence naming the field, and makes nothing.
        await answer(pilot, app, "n", FormScreen, "the form")
        for values, said in (
            ({"name": "-net"}, "Name: Not a network name: '-net'."),
            ({"name": "b-net", "subnet": "10.217.0.0/33"}, "Subnet: Not a subnet: '10.217.0.0/33'."),
            ({"subnet": "10.217.0.1/24"}, "Subnet: Not a subnet: '10.217.0.1/24' (host bits are set)."),
            ({"subnet": "10.217.0.0/24", "driver": "foo"}, "Driver: Not a network driver: 'foo'."),
            (
                {"driver": "", "gateway": "10.9.9.9"},
                "Gateway: The gateway '10.9.9.9' is not in the subnet 10.217.0.0/24. "
                "Give an address in it, like 10.217.0.1,",
            ),
        ):
            await fill_form(pilot, app, **values)
            assert isinstance(app.screen, FormScreen) and said in form_error(app), form_error(app)
        assert network_names(client) == {"none", "host"}
        await fill_form(pilot, app, gateway="10.217.0.1")
        await until(pilot, lambda: row_of(table, "b-net") is not None, what="the new network's row")
        key = row_of(table, "b-net")
        assert key is not None
        assert table.rows[key].cells["subnet"] == "10.217.0.0/24 via 10.217.0.1"
        config = client.api.inspect_network("b-net")["IPAM"]["Config"]
        assert config == [{"Subnet": "10.217.0.0/24", "Gateway": "10.217.0.1"}]

        # r: a network made outside berth shows once the view reads again.
        make_network(client, "outside-net", "10.219.9.0/24")
        await pilot.press("r")
        await until(pilot, lambda: row_of(table, "outside-net") is not None, what="the outside network")
        client.networks.get("outside-net").remove()

        # c and x on Docker's own host/none: one sentence at once, nothing asked.
        host_key = row_of(table, "host")
        assert host_key is not None and table.move_cursor_to(host_key)
        for verb in ("c", "x"):
            await pilot.press(verb)
        said = "host is one of Docker's own networks on local: containers are not connected to it"
        await until(pilot, lambda: sum(said in t for t in toasts(app)) == 2, what="the refusals")
        assert not isinstance(app.screen, ConfirmScreen) and "host" not in networks_of(client, "web")

        # c: after a question naming the marked container (and where it is marked), it is
        # attached, in the row and in the engine.
        assert table.move_cursor_to(key)
        await answer(pilot, app, "c", ConfirmScreen, "the question")
        title = str(app.screen.query_one(".dialog-title").render())
        assert "Connect the 1 container(s) marked in the containers view to b-net on local?" in title
        assert "web" in str(app.screen.query_one(".targets").render())
        assert attached(client, "b-net") == set()  # nothing yet
        await pilot.press("y")
        await until(pilot, lambda: table.rows[key].cells["containers"] == "web", what="web attached")
        assert attached(client, "b-net") == {"web"} and "b-net" in networks_of(client, "web")

        # d while attached: refused at once, naming it; nothing asked, nothing removed.
        await pilot.press("d")
        await until(pilot, lambda: any("has web attached" in t for t in toasts(app)), what="the refusal")
        assert not isinstance(app.screen, ConfirmScreen) and "b-net" in network_names(client)

        # x: after asking, naming it, the marked container is detached.
        await answer(pilot, app, "x", ConfirmScreen, "the question")
        assert "web" in str(app.screen.query_one(".targets").render())
        await pilot.press("y")
        await until(pilot, lambda: table.rows[key].cells["containers"] == "", what="web detached")
        assert attached(client, "b-net") == set() and "b-net" not in networks_of(client, "web")

        # With nothing marked, c and x pick from the host's containers (x: those attached).
        await pilot.press("v", "ctrl+u")  # back to the containers, unmark all, and here again
        assert containers.marked_ids() == []
        await show_networks(pilot, app)
        assert table.move_cursor_to(key)
        await answer(pilot, app, "c", PickerScreen, "the containers to pick from")
        await pilot.press("enter")
        await until(pilot, lambda: table.rows[key].cells["containers"] == "web", what="web attached again")
        assert attached(client, "b-net") == {"web"}
        await answer(pilot, app, "x", PickerScreen, "the attached containers to pick from")
        await pilot.press("enter")
        await until(pilot, lambda: table.rows[key].cells["containers"] == "", what="web detached again")
        assert attached(client, "b-net") == set()

        # enter: the inspect document, searchable as a log.
        await answer(pilot, app, "enter", LogScreen, "the inspect document")
        assert '  "Name": "b-net",' in log_lines(app)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, LogScreen), what="back")

        # d: after asking, the network goes.
        await answer(pilot, app, "d", ConfirmScreen, "the question")
        assert "b-net" in str(app.screen.query_one(".targets").render())
        await pilot.press("y")
        await until(pilot, lambda: row_of(table, "b-net") is None, what="the removed network's row to go")
        assert network_names(client) == {"none", "host"}

        # The engine's own networks: one sentence, nothing asked.
        host_key = row_of(table, "host")
        assert host_key is not None and table.move_cursor_to(host_key)
        await pilot.press("d")
        said = "host is one of Docker's own networks on local and cannot be removed."
        await until(pilot, lambda: any(said in t for t in toasts(app)), what="the refusal")
        assert not isinstance(app.screen, ConfirmScreen)
    web.remove(force=True)


async def test_prune_removes_exactly_the_unused_networks_it_listed(engine: Engine, tmp_path: Path) -> None:
    dockerd, client, image = engine
    for number, name in enumerate(("p-free", "p-spare", "p-used")):
        make_network(client, name, f"10.219.{number}.0/24")
    # Never started: the engine has no endpoint for it, but it joins p-used when it starts.
    client.containers.create(image, ["true"], name="holder", network="p-used")
    app = make_app(dockerd, tmp_path)
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        table = await show_networks(pilot, app)
        await until(pilot, lambda: row_of(table, "p-used") is not None, what="the test's networks")
        used = row_of(table, "p-used")
        assert used is not None and table.rows[used].cells["containers"] == "holder"
        await answer(pilot, app, "P", ConfirmScreen, "the prune preview")
        previewed = str(app.screen.query_one(".targets").render())
        assert "p-free" in previewed and "p-spare" in previewed
        assert not {"p-used", "host", "none"} & set(previewed.replace("•", " ").split())
        await pilot.press("y")
        await until(pilot, lambda: row_of(table, "p-free") is None, what="the pruned rows to go")
        assert row_of(table, "p-spare") is None and row_of(table, "p-used") is not None
        assert any("Pruned 2 network(s) on local: p-free, p-spare." in t for t in toasts(app))
    assert network_names(client) == {"none", "host", "p-used"}


def test_cli_round_trip(engine: Engine, tmp_path: Path) -> None:
    dockerd, client, image = engine
    config = tmp_path / "config.toml"
    save_config(Config(hosts=[HostConfig("local", docker_socket=str(dockerd.socket))]), config)
    client.containers.run(image, ["sleep", "600"], name="db", detach=True)

    made = berth(config, "network", "create", "cli-net", "--subnet", "10.218.0.0/24", "--internal")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == client.networks.get("cli-net").id
    assert client.api.inspect_network("cli-net")["Internal"] is True

    # Bad input: one sentence naming the argument or option (exit 2), and nothing made.
    for args, said in (
        (("--", "-x"), "Invalid value for 'NAME': Not a network name: '-x'."),
        (("y", "--subnet", "300.1.1.0/24"), "Invalid value for '--subnet': Not a subnet: '300.1.1.0/24'."),
        (("y", "--subnet", "10.9.0.0/24", "--gateway", "10.8.0.1"), "is not in the subnet 10.9.0.0/24."),
        (("y", "--gateway", "10.8.0.1"), "A gateway needs a subnet to be in."),
        (("y", "--driver", "foo"), "Not a network driver: 'foo'."),
    ):
        bad = berth(config, "network", "create", *args)
        assert bad.returncode == 2 and said in bad.stderr, bad.stderr
    assert network_names(client) == {"none", "host", "cli-net"}

    listed = berth(config, "networks")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split()[:4] == ["NETWORK", "ID", "DRIVER", "SCOPE"]
    assert "10.218.0.0/24" in next(line for line in listed.stdout.splitlines() if line.startswith("cli-net"))
    every = berth(config, "--host", "all", "networks")
    assert every.returncode == 0 and every.stdout.splitlines()[0].split()[:2] == ["HOST", "NETWORK"]
    assert any(line.split()[:2] == ["local", "cli-net"] for line in every.stdout.splitlines())

    # A subnet that overlaps another network's: one sentence naming it, nothing made.
    clash = berth(config, "network", "create", "clash", "--subnet", "10.218.0.0/25")
    assert clash.returncode == 1
    assert "The subnet 10.218.0.0/25 overlaps a network on local (cli-net)." in clash.stderr, clash.stderr
    assert "permissions" not in clash.stderr and "clash" not in network_names(client)

    connected = berth(config, "network", "connect", "cli-net", "db", "--alias", "database")
    assert connected.returncode == 0, connected.stderr
    assert attached(client, "cli-net") == {"db"}
    # Attached already, by name (checked first) and by id (the engine's answer, said the same way).
    db_id = client.containers.get("db").id
    for who in ("db", db_id):
        again = berth(config, "network", "connect", "cli-net", who)
        assert again.returncode == 1, again.stderr
        assert f"{who} is already attached to cli-net." in again.stderr, again.stderr
        assert "permissions" not in again.stderr
    own_net = berth(config, "network", "connect", "none", "db")
    assert own_net.returncode == 1 and "none is one of Docker's own networks on local" in own_net.stderr
    aliases = client.api.inspect_container("db")["NetworkSettings"]["Networks"]["cli-net"]["Aliases"]
    assert "database" in aliases
    as_json = {n["name"]: n for n in json.loads(berth(config, "--json", "networks").stdout)}
    assert as_json["cli-net"]["containers"] == ["db"] and as_json["cli-net"]["subnets"] == ["10.218.0.0/24"]
    assert as_json["cli-net"]["internal"] is True and as_json["cli-net"]["host"] == "local"
    assert json.loads(berth(config, "network", "inspect", "cli-net").stdout)["Name"] == "cli-net"

    refused = berth(config, "network", "rm", "cli-net")
    assert refused.returncode == 1
    assert "Network cli-net on local has db attached: nothing was removed." in refused.stderr
    assert "berth network disconnect" in refused.stderr and "cli-net" in network_names(client)
    own = berth(config, "network", "rm", "host")
    assert own.returncode == 1 and "host is one of Docker's own networks" in own.stderr
    read_only = berth(config, "--read-only", "network", "disconnect", "cli-net", "db")
    assert read_only.returncode == 1 and "was not run" in read_only.stderr
    assert attached(client, "cli-net") == {"db"}

    gone = berth(config, "network", "disconnect", "cli-net", "db")
    assert gone.returncode == 0, gone.stderr
    assert attached(client, "cli-net") == set()
    for who in ("db", db_id):
        not_there = berth(config, "network", "disconnect", "cli-net", who)
        assert not_there.returncode == 1, not_there.stderr
        assert f"{who} is not attached to cli-net." in not_there.stderr, not_there.stderr
        assert "internal error" not in not_there.stderr

    # Prune: without --yes and no terminal, the preview and nothing removed; with it, exactly those.
    make_network(client, "spare", "10.219.5.0/24")
    asked = berth(config, "network", "prune")
    assert asked.returncode == 2
    assert "The prune would remove, on local: cli-net, spare." in asked.stderr and "--yes" in asked.stderr
    assert network_names(client) == {"none", "host", "cli-net", "spare"}
    pruned = json.loads(berth(config, "--json", "network", "prune", "--yes").stdout)
    assert pruned == {"host": "local", "removed": ["cli-net", "spare"], "kept": []}
    assert network_names(client) == {"none", "host"}
    client.containers.get("db").remove(force=True)


async def test_all_hosts_view_through_the_ssh_tunnel_connects_on_the_networks_own_host_only(
    engine: Engine, sshd: SshServer, ssh_host: SshHost, tmp_path: Path
) -> None:
    dockerd, client, image = engine
    web = client.containers.run(image, ["sleep", "600"], name="web", detach=True)
    made = make_network(client, "t-net", "10.219.6.0/24")
    # Two inventory hosts on the one engine: here, and through the SSH tunnel as "box".
    hosts = [
        HostConfig("local", docker_socket=str(dockerd.socket)),
        ssh_host(sshd, docker_socket=str(dockerd.socket)),
    ]
    app = BerthApp(Config(hosts=hosts, path=tmp_path / "config.toml"), "all")
    toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        containers = pane(app).table
        await until(pilot, lambda: f"local/{web.id}" in containers.rows, what="the container here")
        assert containers.move_cursor_to(f"local/{web.id}")
        await pilot.press("space")
        table = await show_networks(pilot, app)
        await until(pilot, lambda: f"box/{made.id}" in table.rows, what="the network through the tunnel")
        assert table.rows[f"box/{made.id}"].cells["host"] == "box"

        # The mark is on local: on box's row, c says so and changes nothing.
        assert table.move_cursor_to(f"box/{made.id}")
        await pilot.press("c")
        said = "The marked containers are not on box, where network t-net is."
        await until(pilot, lambda: any(said in t for t in toasts(app)), what="the refusal")
        assert attached(client, "t-net") == set()

        # On local's row it attaches; both rows show it (one engine), and the engine agrees.
        assert table.move_cursor_to(f"local/{made.id}")
        await answer(pilot, app, "c", ConfirmScreen, "the question")
        await pilot.press("y")
        await until(pilot, lambda: table.rows[f"box/{made.id}"].cells["containers"] == "web", what="web")
        assert table.rows[f"local/{made.id}"].cells["containers"] == "web"
        assert attached(client, "t-net") == {"web"}
