"""Updating a container to a newly pulled image (backends/docker_update.py) against the test
dockerd and the test registry: a container with env, a volume, a port on 127.0.0.1, two networks
(one with an alias) and a restart policy runs an image from the registry; a new image is pushed
under the same tag; `u` (Pilot) or `berth update` (here and through the SSH tunnel) recreates it:
the engine shows a new id under the same name with every setting, and the toast says old → new.
An image whose command exits at once is swapped back: the old container runs again under its own
name, and one sentence says why."""

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from engines.dockerd import DockerEngine
from engines.registry import Registry, push_fresh
from engines.sshd import SshServer, free_port
from ssh_helpers import SshHost
from test_app import toasts
from test_containers_pane import SIZE, make_app, pane, select, until
from test_pull import docker_config, file_credentials, inventory, run_berth  # noqa: F401  (a fixture)

from backends.audit import read_audit
from backends.config import HostConfig
from tui.screens.confirm import ConfirmScreen

pytestmark = pytest.mark.engines
STOPS_AT_ONCE = ['CMD ["sh", "-c", "trap \'exit 0\' TERM; while :; do sleep 0.1; done"]']
"""The images' command: a busybox `sleep` as PID 1 would ignore the stop signal for 10 s."""
EXITS_AT_ONCE = ['CMD ["sh", "-c", "echo cannot read /etc/app.conf; exit 3"]']


@dataclass
class Served:
    """A container running an image from the test registry, with settings to keep."""

    name: str
    ref: str
    id: str
    image: str
    port: int
    volume: str
    networks: tuple[str, str]


def short(ref: str) -> str:
    return ref.removeprefix("sha256:")[:12]


@pytest.fixture
def served(
    sdk: docker.DockerClient,
    registry: Registry,
    docker_busybox: str,
    docker_config: Path,  # noqa: F811
) -> Iterator[Served]:
    tag = f"upd{time.monotonic_ns() % 1_000_000}"
    ref = f"{registry.host}/berth-test/{tag}:1"
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    image, _ = push_fresh(sdk, registry, docker_busybox, ref, size=64 << 10, changes=STOPS_AT_ONCE)
    sdk.images.pull(ref, auth_config=registry.auth_config)
    front, back = (sdk.networks.create(f"{tag}-{n}", driver="bridge") for n in ("front", "back"))
    volume = sdk.volumes.create(f"{tag}-data")
    port = free_port("127.0.0.1")
    container = sdk.containers.create(
        ref,
        name=tag,
        environment={"GREETING": "hello"},
        volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        ports={"8080/tcp": ("127.0.0.1", port)},
        network=front.name,
        restart_policy={"Name": "unless-stopped"},
        labels={"berth.test": "update"},
        mem_limit="64m",
    )
    back.connect(container, aliases=["cache"])
    container.start()
    container.exec_run(["sh", "-c", "echo kept > /data/marker"])
    try:
        yield Served(tag, ref, container.id, image, port, volume.name, (front.name, back.name))
    finally:
        for found in sdk.containers.list(all=True, filters={"name": tag}):
            found.remove(force=True)
        for network in (front, back):
            network.remove()
        volume.remove(force=True)
        for found in sdk.images.list(name=ref.rpartition(":")[0]):
            with contextlib.suppress(docker.errors.APIError):
                sdk.images.remove(found.id, force=True)


def assert_same_settings(sdk: docker.DockerClient, served: Served, new_image: str) -> str:
    """The container named `served.name` now: a new id, the new image, every setting kept."""
    now = sdk.containers.get(served.name)
    attrs = now.attrs
    assert now.id != served.id and now.status == "running"
    assert attrs["Image"] == new_image and attrs["Config"]["Image"] == served.ref
    assert "GREETING=hello" in attrs["Config"]["Env"]
    assert attrs["Config"]["Labels"]["berth.test"] == "update"
    published = [{"HostIp": "127.0.0.1", "HostPort": str(served.port)}]
    assert attrs["HostConfig"]["PortBindings"] == {"8080/tcp": published}
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert attrs["HostConfig"]["Memory"] == 64 << 20
    assert [(m["Name"], m["Destination"]) for m in attrs["Mounts"]] == [(served.volume, "/data")]
    networks = attrs["NetworkSettings"]["Networks"]
    assert set(networks) == set(served.networks)
    assert "cache" in networks[served.networks[1]]["Aliases"]
    assert served.id[:12] not in networks[served.networks[0]]["Aliases"]  # the old id is no alias
    assert attrs["Config"]["Hostname"] == now.id[:12]  # Docker's, from the new id
    assert now.exec_run(["cat", "/data/marker"]).output == b"kept\n"  # the volume's data is there
    assert not sdk.containers.list(all=True, filters={"id": served.id})  # the old one is gone
    return str(now.id)


async def test_u_updates_a_container_to_the_new_image_with_every_setting(
    dockerd: DockerEngine, sdk: docker.DockerClient, registry: Registry, docker_busybox: str,
    served: Served, tmp_path: Path,
) -> None:  # fmt: skip
    new_image, _ = push_fresh(sdk, registry, docker_busybox, served.ref, size=64 << 10, changes=STOPS_AT_ONCE)
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await select(pilot, app, sdk.containers.get(served.id))
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        assert served.name in str(app.screen.query_one(".targets").render())
        await pilot.press("y")
        await until(pilot, lambda: app.jobs.jobs, what="the update job")
        job = next(iter(app.jobs.jobs.values()))
        assert job.title == f"update container {served.name}"
        await until(pilot, lambda: job.state != "running", timeout=40, what="the update to end")
        assert job.state == "done", job.detail
        new_id = assert_same_settings(sdk, served, new_image)
        said = f"{served.name} updated: {short(served.id)} → {short(new_id)}"
        assert any(said in t for t in toasts(app)), toasts(app)
        await until(pilot, lambda: new_id in pane(app).table.rows, what="the new row")
    records = [r for r in read_audit() if r["action"] == "container.update"]
    assert [(r["targets"], r["new_id"], r["outcome"]) for r in records] == [([served.id], new_id, "ok")]


def test_berth_update_swaps_back_when_the_new_image_exits_at_once(
    dockerd: DockerEngine, sdk: docker.DockerClient, registry: Registry, docker_busybox: str,
    served: Served, tmp_path: Path,
) -> None:  # fmt: skip
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    up_to_date = run_berth(config, "update", served.name)
    assert up_to_date.returncode == 0, up_to_date.stderr
    still = f"{served.name} is up to date ({served.ref} is still image {short(served.image)}).\n"
    assert up_to_date.stdout == still
    push_fresh(sdk, registry, docker_busybox, served.ref, size=64 << 10, changes=EXITS_AT_ONCE)
    out = run_berth(config, "update", served.name)
    assert out.returncode == 1 and not out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    # Under its restart policy the engine starts it again: caught as it exits or as it restarts.
    assert re.fullmatch(
        rf"berth: {served.name} was not updated: the new container "
        r"(kept restarting \(exit code 3\)|exited with code 3), "
        r"its last line: “cannot read /etc/app.conf”; "
        rf"the old one is back as {served.name}, running\. Check the new image .*",
        lines[0],
    ), lines[0]
    # The old container, under its own name, running again; nothing else left over.
    back = sdk.containers.get(served.name)
    assert back.id == served.id and back.status == "running"
    assert [c.name for c in sdk.containers.list(all=True, filters={"name": served.name})] == [served.name]
    assert back.exec_run(["cat", "/data/marker"]).output == b"kept\n"
    failed = [r for r in read_audit() if r["action"] == "container.update"]
    assert len(failed) == 1 and failed[0]["outcome"].startswith(f"failed: {served.name} was not updated")


def test_berth_update_through_the_ssh_tunnel(
    sshd: SshServer, dockerd: DockerEngine, sdk: docker.DockerClient, registry: Registry,
    docker_busybox: str, served: Served, ssh_host: SshHost, tmp_path: Path,
) -> None:  # fmt: skip
    new_image, _ = push_fresh(sdk, registry, docker_busybox, served.ref, size=64 << 10, changes=STOPS_AT_ONCE)
    config = inventory(tmp_path, ssh_host(sshd, docker_socket=str(dockerd.socket)))
    refused = run_berth(config, "--host", "box", "--read-only", "update", served.name)
    assert refused.returncode == 1 and "changes state and was not run" in refused.stderr
    assert sdk.containers.get(served.name).id == served.id
    out = run_berth(config, "--host", "box", "--json", "update", served.name)
    assert out.returncode == 0, out.stderr
    [result] = json.loads(out.stdout)
    new_id = assert_same_settings(sdk, served, new_image)
    assert result == {
        "host": "box", "name": served.name, "image": served.ref, "updated": True, "old_id": served.id,
        "new_id": new_id, "old_image": served.image, "new_image": new_image, "compose": False,
    }  # fmt: skip
