"""Running a container (issue 17): `n` in the images view opens a form prefilled with the image
under the cursor, and `berth run` takes the same settings; the container the engine made has
exactly them (the docker SDK inspects it). A bad field is one sentence naming it and makes
nothing; a taken name, a taken host port and a missing network are one sentence each, and leave
nothing behind. Ports are published on 127.0.0.1 and never sent traffic."""

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from broker_helpers import free_port
from engines.dockerd import DockerEngine
from engines.images import DOCKER_REPO, DOCKER_TAG, import_docker_busybox
from engines.registry import Registry, push_fresh
from pilot_helpers import fill_form, footer_text
from test_app import toasts
from test_cli_docker import berth
from test_containers_pane import SIZE, make_app, pane, until
from test_pull import docker_config, file_credentials  # noqa: F401
from textual.widgets import Label

from backends.audit import read_audit
from backends.config import Config, HostConfig, UiConfig
from tui.app import BerthApp
from tui.screens.form import FormScreen

pytestmark = pytest.mark.engines
IMAGE = f"{DOCKER_REPO}:{DOCKER_TAG}"


@pytest.fixture
def made(sdk: docker.DockerClient) -> Iterator[dict[str, str]]:
    """Unique names for this test's container, volume and network (`name`, `volume`, `network`,
    the network made here), all removed afterwards with whatever container bears the name."""
    tag = uuid.uuid4().hex[:8]
    names = {"name": f"run-{tag}", "volume": f"run-vol-{tag}", "network": f"run-net-{tag}"}
    network = sdk.networks.create(names["network"], driver="bridge")
    yield names
    for container in sdk.containers.list(all=True, filters={"name": f"run-{tag}"}):
        container.remove(force=True, v=True)
    network.remove()
    for volume in sdk.volumes.list(filters={"name": names["volume"]}):
        volume.remove(force=True)


def named(sdk: docker.DockerClient, name: str) -> list[Any]:
    """The containers called exactly `name`."""
    return [c for c in sdk.containers.list(all=True) if c.name == name]


def assert_runs_with_the_settings(
    sdk: docker.DockerClient, name: str, made: dict[str, str], port: int, bound: Path
) -> None:
    """The container `name` runs with what the test gave it, as the engine reports it."""
    (container,) = named(sdk, name)
    info = container.attrs
    assert info["State"]["Running"], info["State"]
    assert info["Config"]["Image"] == IMAGE
    assert info["Config"]["Cmd"] == ["sh", "-c", "sleep 300"]
    assert {"A=1", "B=two words"} <= set(info["Config"]["Env"])
    host = info["HostConfig"]
    assert host["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
    assert host["PortBindings"]["53/udp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]  # a free one
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/data"]["Type"] == "volume" and mounts["/data"]["Name"] == made["volume"]
    assert mounts["/data"]["RW"] is True
    assert mounts["/in"]["Type"] == "bind" and mounts["/in"]["Source"] == str(bound)
    assert mounts["/in"]["RW"] is False
    assert host["NetworkMode"] == made["network"] and made["network"] in info["NetworkSettings"]["Networks"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["Memory"] == 64 * 1024**2
    assert host["NanoCpus"] == 500_000_000


def form_values(made: dict[str, str], port: int, bound: Path) -> dict[str, str]:
    """The form's fields for the container the tests run."""
    return {
        "name": made["name"],
        "command": "sh -c 'sleep 300'",
        "env": "A=1\nB='two words'",
        "ports": f"127.0.0.1:{port}:80\n127.0.0.1::53/udp",
        "mounts": f"{made['volume']}:/data, {bound}:/in:ro",
        "network": made["network"],
        "restart": "on-failure:3",
        "memory": "64MiB",
        "cpus": "0.5",
    }


async def open_run_form(pilot: Any, app: Any, image_row: str) -> FormScreen:
    """Show the images view, put the cursor on the image's row and press n."""
    await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
    await pilot.press("v")
    images = pane(app).images_table
    await until(pilot, lambda: image_row in images.rows, what="the images")
    assert images.move_cursor_to(image_row)
    assert "n Run" in footer_text(app)
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the run form")
    assert isinstance(app.screen, FormScreen)
    return app.screen


async def test_n_runs_a_container_with_exactly_the_form_settings(
    dockerd: DockerEngine, docker_busybox: str, sdk: docker.DockerClient, made: dict[str, str], tmp_path: Path
) -> None:
    bound, port = tmp_path / "in", free_port()
    bound.mkdir()
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_run_form(pilot, app, docker_busybox)
        assert form.values()["image"] == IMAGE  # the image under the cursor
        await fill_form(pilot, app, **form_values(made, port, bound))
        await until(pilot, lambda: not isinstance(app.screen, FormScreen), what="the form to close")
        await until(pilot, lambda: any(made["name"] in t for t in toasts(app)), 20, "the run's toast")
        assert any(f"{made['name']} runs on local." in t for t in toasts(app)), toasts(app)
    assert_runs_with_the_settings(sdk, made["name"], made, port, bound)
    runs = [r for r in read_audit() if r["action"] == "container.run" and r["targets"] == [made["name"]]]
    assert [(r["host"], r["outcome"], r["image"]) for r in runs] == [("local", "ok", IMAGE)]


async def test_in_the_all_hosts_view_n_runs_on_the_host_of_the_image_under_the_cursor(
    dockerd: DockerEngine,
    docker_busybox: str,
    make_dockerd: Callable[..., DockerEngine],
    sdk: docker.DockerClient,
    made: dict[str, str],
    tmp_path: Path,
) -> None:
    other = make_dockerd()
    other_client = other.client()
    try:
        other_image = import_docker_busybox(other_client)
        hosts = [
            HostConfig("local", docker_socket=str(dockerd.socket)),
            HostConfig("second", docker_socket=str(other.socket)),
        ]
        app = BerthApp(Config(ui=UiConfig(), hosts=hosts, path=tmp_path / "config.toml"), "all")
        async with app.run_test(size=SIZE) as pilot:
            form = await open_run_form(pilot, app, f"second/{other_image}")
            assert "Run a container on second" in str(form.query_one(".dialog-title", Label).render())
            await fill_form(pilot, app, name=made["name"], command="sleep 300")
            await until(pilot, lambda: any(made["name"] in t for t in toasts(app)), 20, "the run's toast")
            assert any(f"{made['name']} runs on second." in t for t in toasts(app)), toasts(app)
        (container,) = [c for c in other_client.containers.list() if c.name == made["name"]]
        assert container.image.id == other_image and not named(sdk, made["name"])
    finally:
        other_client.close()


BAD_FIELDS = [
    ("image", "a//b", "Image: Not an image reference: 'a//b'."),
    ("name", "-web", "Name: Not a container name: '-web'."),
    ("command", "sh -c 'sleep", 'Command: Not a command: "sh -c \'sleep" (no closing quotation).'),
    ("env", "A=1 novalue", "Env: Not a K=V pair: 'novalue'."),
    (
        "ports",
        "8080:80, 99999:80",
        "Ports: Not a port mapping: '99999:80' ('99999' is no port from 1 to 65535).",
    ),
    (
        "mounts",
        "./here:/in",
        "Mounts: Not a mount: './here:/in' ('./here' is no volume name, and a host path is absolute).",
    ),
    ("network", "-net", "Network: Not a network name: '-net'."),
    ("restart", "sometimes", "Restart policy: Not a restart policy: 'sometimes'."),
    ("memory", "64M", "Memory limit: Not a size: '64M'."),
    ("cpus", "0", "CPUs: Not a number of CPUs: '0' (from 0.01 to 8192)."),
]


async def test_a_bad_field_is_one_sentence_naming_it_and_nothing_is_made(
    dockerd: DockerEngine, docker_busybox: str, sdk: docker.DockerClient, made: dict[str, str], tmp_path: Path
) -> None:
    bound = tmp_path / "in"
    bound.mkdir()
    before = {c.id for c in sdk.containers.list(all=True)}
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_run_form(pilot, app, docker_busybox)
        good = form_values(made, free_port(), bound)
        for field, bad, sentence in BAD_FIELDS:
            await fill_form(pilot, app, **{"image": IMAGE, **good, field: bad})
            assert app.screen is form, f"{field}: the form closed"
            error = str(form.query_one("#form-error", Label).render())
            assert error.startswith(sentence), (field, error)
            assert error.count("Write it like") == 1
    assert {c.id for c in sdk.containers.list(all=True)} == before
    assert not sdk.volumes.list(filters={"name": made["volume"]})


async def test_a_read_only_host_offers_no_run(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    app = make_app(dockerd, tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        await pilot.press("v")
        images = pane(app).images_table
        await until(pilot, lambda: docker_busybox in images.rows, what="the images")
        assert images.move_cursor_to(docker_busybox)
        assert "n Run" not in footer_text(app)
        await pilot.press("n")
        await pilot.pause(0.2)
        assert not isinstance(app.screen, FormScreen)


async def test_on_an_80x24_terminal_the_fields_scroll_and_the_title_error_and_buttons_stay(
    dockerd: DockerEngine, docker_busybox: str, tmp_path: Path
) -> None:
    # Ten fields are taller than such a terminal's dialog: they scroll, or Run and the error
    # would be cut off below its edge; the title, the error and the buttons stay on show.
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await open_run_form(pilot, app, docker_busybox)
        dialog, fields = form.query_one(".dialog"), form.query_one(".form-fields")

        def on_show(*selectors: str) -> bool:
            return all(dialog.content_region.contains_region(form.query_one(s).region) for s in selectors)

        await until(pilot, lambda: fields.max_scroll_y > 0 and on_show(".dialog-title", "#submit"), what="it")
        await fill_form(pilot, app, cpus="0")
        error = form.query_one("#form-error", Label)
        await until(pilot, lambda: str(error.render()).startswith("CPUs: Not a number"), what="the error")
        await until(pilot, lambda: on_show(".dialog-title", "#form-error", "#submit"), what="all on show")
        assert str(error.render()).startswith("CPUs: Not a number of CPUs: '0'")


def test_berth_run_round_trip_with_the_same_settings(
    dockerd: DockerEngine, docker_busybox: str, sdk: docker.DockerClient, made: dict[str, str], tmp_path: Path
) -> None:
    bound, port = tmp_path / "in", free_port()
    bound.mkdir()
    out = berth(
        dockerd, "--json", "run", "--name", made["name"], "-e", "A=1", "-e", "B=two words",
        "-p", f"127.0.0.1:{port}:80", "-p", "127.0.0.1::53/udp",
        "-v", f"{made['volume']}:/data", "-v", f"{bound}:/in:ro", "--network", made["network"],
        "--restart", "on-failure:3", "--memory", "64MiB", "--cpus", "0.5", IMAGE, "sh", "-c", "sleep 300",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer == {"id": named(sdk, made["name"])[0].id, "name": made["name"], "image": IMAGE}
    assert_runs_with_the_settings(sdk, made["name"], made, port, bound)

    # The same sentences as the form's, click naming the option.
    bad = berth(dockerd, "run", "--cpus", "0", "-p", "8080:80", IMAGE)
    assert bad.returncode == 2 and "Not a number of CPUs: '0' (from 0.01 to 8192)." in bad.stderr
    bad = berth(dockerd, "run", "-p", "99999:80", IMAGE)
    assert bad.returncode == 2 and "Not a port mapping: '99999:80' ('99999' is no port" in bad.stderr
    bad = berth(dockerd, "run", "--network", "a/b", IMAGE)
    assert bad.returncode == 2 and "Not a network name: 'a/b'." in bad.stderr
    denied = berth(dockerd, "--read-only", "run", "--name", f"{made['name']}-ro", IMAGE)
    assert denied.returncode == 1 and "changes state and was not run" in denied.stderr
    assert not named(sdk, f"{made['name']}-ro")


def test_a_taken_name_port_or_missing_network_is_one_sentence_and_leaves_nothing(
    dockerd: DockerEngine, docker_busybox: str, sdk: docker.DockerClient, made: dict[str, str]
) -> None:
    port = free_port()
    publish = ("--network", made["network"], "-p", f"127.0.0.1:{port}:80")  # no network: nothing is bound
    first = berth(dockerd, "run", "--name", made["name"], *publish, IMAGE, "sleep", "300")
    assert first.returncode == 0, first.stderr
    taken = named(sdk, made["name"])[0].id
    before = {c.id for c in sdk.containers.list(all=True)}

    again = berth(dockerd, "run", "--name", made["name"], IMAGE, "sleep", "300")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"berth: A container named {made['name']!r} already exists on local: nothing was made. "
        "Pick another name, or remove that container first."
    )
    port_taken = berth(dockerd, "run", "--name", f"{made['name']}-2", *publish, IMAGE, "sleep", "300")
    assert port_taken.returncode == 1
    assert (
        f"{made['name']}-2 could not start on local: host port 127.0.0.1:{port} is taken, so it was removed."
        in port_taken.stderr
    )
    no_network = berth(dockerd, "run", "--name", f"{made['name']}-3", "--network", "run-nowhere", IMAGE)
    assert no_network.returncode == 1
    assert "No network 'run-nowhere' on local: nothing was made." in no_network.stderr
    assert {c.id for c in sdk.containers.list(all=True)} == before and taken in before
    runs = [r for r in read_audit() if r["action"] == "container.run" and made["name"] in r["targets"][0]]
    assert [r["outcome"][:7] for r in runs] == ["ok", "failed:", "failed:", "failed:"]


def test_berth_run_pulls_an_image_the_host_lacks_first(
    dockerd: DockerEngine,
    docker_busybox: str,
    registry: Registry,
    sdk: docker.DockerClient,
    made: dict[str, str],
    docker_config: Path,  # noqa: F811
) -> None:
    ref = f"{registry.host}/berth-test/run-{made['name']}:1"
    image_id, _digest = push_fresh(sdk, registry, docker_busybox, ref, size=64 << 10)  # gone from the engine
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    try:
        out = berth(dockerd, "run", "--name", made["name"], ref, "sleep", "300")
        assert out.returncode == 0, out.stderr
        (container,) = named(sdk, made["name"])
        assert container.image.id == image_id and container.status == "running"
        # One the registry does not have: the pull's one sentence, and nothing made.
        missing = berth(
            dockerd, "run", "--name", f"{made['name']}-2", f"{registry.host}/berth-test/nothing:1"
        )
        assert missing.returncode == 1 and missing.stderr.count("\n") == 1, missing.stderr
        assert f"could not pull {registry.host}/berth-test/nothing:1" in missing.stderr, missing.stderr
        assert "was not found on" in missing.stderr
        assert not named(sdk, f"{made['name']}-2")
    finally:
        container.remove(force=True)
        sdk.images.remove(image_id, force=True)
