"""Updating a container to a newly pulled image (backends/docker_update.py) against the test
dockerd and the test registry: a container with env, a volume, a port on 127.0.0.1, two networks
(one with an alias) and a restart policy runs an image from the registry; a new image is pushed
under the same tag; `u` (Pilot) or `berth update` (here and through the SSH tunnel) recreates it:
the engine shows a new id under the same name with every setting, and the toast says old → new.
An image whose command exits at once is swapped back: the old container runs again under its own
name, and one sentence says why."""

import asyncio
import contextlib
import json
import os
import re
import subprocess
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
from backends.compose import compose_command
from backends.config import HostConfig
from backends.docker import DockerBackend
from backends.errors import BerthError, Invalid, NotFound
from backends.hosts import HostSession
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
        drop_images(sdk, ref)


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


async def test_u_updates_the_marked_containers_to_the_new_image_with_every_setting(
    dockerd: DockerEngine, sdk: docker.DockerClient, registry: Registry, docker_busybox: str,
    served: Served, tmp_path: Path,
) -> None:  # fmt: skip
    plain = sdk.containers.run(served.ref, name=f"{served.name}-b", detach=True, network_mode="none")
    new_image, _ = push_fresh(sdk, registry, docker_busybox, served.ref, size=64 << 10, changes=STOPS_AT_ONCE)
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        table = await select(pilot, app, sdk.containers.get(served.id))
        await until(pilot, lambda: set(table.visible_ids()) == {served.id, plain.id}, what="both rows")
        await pilot.press("space", "space")
        assert set(table.selected_ids()) == {served.id, plain.id}
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
        named = str(app.screen.query_one(".targets").render())
        assert served.name in named and plain.name in named
        await pilot.press("y")
        await until(pilot, lambda: app.jobs.jobs, what="the update job")
        [job] = app.jobs.jobs.values()  # one job for both
        assert job.title == "update 2 containers"
        await until(pilot, lambda: job.state != "running", timeout=40, what="the update to end")
        assert job.state == "done" and job.detail == "2 of 2 done", job.detail
        new_id = assert_same_settings(sdk, served, new_image)
        plain_now = sdk.containers.get(plain.name)
        assert plain_now.id != plain.id and plain_now.attrs["Image"] == new_image
        shown = toasts(app)
        assert any(f"{served.name} updated: {short(served.id)} → {short(new_id)}" in t for t in shown), shown
        assert any(f"{plain.name} updated: {short(plain.id)} → {short(plain_now.id)}" in t for t in shown)
        assert not any("finished" in t for t in shown), shown  # one toast says how the job ended
        await until(pilot, lambda: new_id in pane(app).table.rows, what="the new row")
    records = [r for r in read_audit() if r["action"] == "container.update"]
    assert {(r["targets"][0], r["new_id"], r["outcome"]) for r in records} == {
        (served.id, new_id, "ok"),
        (plain.id, plain_now.id, "ok"),
    }


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


def drop_images(sdk: docker.DockerClient, ref: str) -> None:
    for found in sdk.images.list(name=ref.rpartition(":")[0]):
        with contextlib.suppress(docker.errors.APIError):
            sdk.images.remove(found.id, force=True)


async def test_a_health_check_must_pass_and_the_old_images_env_is_not_kept(
    backend: DockerBackend, sdk: docker.DockerClient, registry: Registry, docker_busybox: str,
    docker_config: Path,  # noqa: F811
) -> None:  # fmt: skip
    tag = f"hc{time.monotonic_ns() % 1_000_000}"
    ref = f"{registry.host}/berth-test/{tag}:1"
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    push_fresh(sdk, registry, docker_busybox, ref, size=4 << 10, changes=[*STOPS_AT_ONCE, "ENV READY=yes"])
    sdk.images.pull(ref, auth_config=registry.auth_config)
    # The container's own check reads READY, which only its image sets: the env it got from its
    # old image must not be pinned on the new container, or the new image's could never apply.
    check = {
        "test": ["CMD-SHELL", 'test "$READY" = yes || { echo not ready; exit 1; }'],
        "interval": 300_000_000, "timeout": 1_000_000_000, "retries": 1,
    }  # fmt: skip
    old = sdk.containers.run(ref, name=tag, detach=True, healthcheck=check, network_mode="none")
    try:
        push_fresh(sdk, registry, docker_busybox, ref, size=4 << 10, changes=[*STOPS_AT_ONCE, "ENV READY=no"])
        with pytest.raises(BerthError) as caught:
            await backend.update(tag)
        assert caught.value.message == (
            f"{tag} was not updated: the new container was unhealthy (its last check: “not ready”, "
            f"exit code 1); the old one is back as {tag}, running."
        )
        assert sdk.containers.get(tag).id == old.id and sdk.containers.get(tag).status == "running"
        steps: list[str] = []
        new_image, _ = push_fresh(
            sdk, registry, docker_busybox, ref, size=4 << 10, changes=[*STOPS_AT_ONCE, "ENV READY=yes"]
        )
        result = await backend.update(tag, lambda stage, _pull: steps.append(stage))
        now = sdk.containers.get(tag)
        assert result.new_id == now.id != old.id and result.new_image == new_image
        assert now.attrs["State"]["Health"]["Status"] == "healthy"
        assert list(dict.fromkeys(steps)) == [
            f"pulling {ref}", "creating the new container", "stopping the old container",
            "starting the new container", "waiting for the new container to stay up",
            "removing the old container",
        ]  # fmt: skip
    finally:
        for found in sdk.containers.list(all=True, filters={"name": tag}):
            found.remove(force=True)
        drop_images(sdk, ref)


async def test_a_compose_service_is_updated_through_compose(
    backend: DockerBackend, dockerd: DockerEngine, sdk: docker.DockerClient, registry: Registry,
    docker_busybox: str, docker_config: Path, tmp_path: Path,  # noqa: F811
) -> None:  # fmt: skip
    tag = f"cmp{time.monotonic_ns() % 1_000_000}"
    ref = f"{registry.host}/berth-test/{tag}:1"
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    push_fresh(sdk, registry, docker_busybox, ref, size=4 << 10, changes=STOPS_AT_ONCE)
    (tmp_path / "docker-compose.yml").write_text(
        f"version: '2.4'\nservices:\n  app:\n    image: {ref}\n    network_mode: none\n"
    )
    session = HostSession(HostConfig("local", docker_socket=str(dockerd.socket)))
    compose = await compose_command(session)
    env = {**os.environ, "DOCKER_HOST": dockerd.url}
    up = subprocess.run(
        [*compose, "-p", tag, "up", "-d"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        [old] = sdk.containers.list(filters={"label": f"com.docker.compose.project={tag}"})
        new_image, _ = push_fresh(sdk, registry, docker_busybox, ref, size=4 << 10, changes=STOPS_AT_ONCE)
        result = await backend.update(old.name, session=session)
        now = sdk.containers.get(old.name)
        assert result.compose and result.updated and result.new_id == now.id != old.id
        assert now.attrs["Image"] == result.new_image == new_image
        actions = [(r["action"], r.get("service")) for r in read_audit()][-3:]
        assert actions == [("compose.pull", "app"), ("compose.up", "app"), ("container.update", "app")]
        again = await backend.update(now.name, session=session)
        assert not again.updated and sdk.containers.get(old.name).id == now.id
    finally:
        await session.close()
        subprocess.run([*compose, "-p", tag, "down"], cwd=tmp_path, env=env, capture_output=True)
        drop_images(sdk, ref)


async def test_what_cannot_be_updated_is_one_sentence_and_nothing_changes(
    backend: DockerBackend, sdk: docker.DockerClient, docker_busybox: str
) -> None:
    tag = f"no{time.monotonic_ns() % 1_000_000}"
    by_id = sdk.containers.run(
        docker_busybox, ["sleep", "600"], name=f"{tag}-id", detach=True, network_mode="none"
    )
    removed = sdk.containers.run(
        "berth-test/busybox:latest", ["sleep", "600"], name=f"{tag}-rm", detach=True, auto_remove=True,
        network_mode="none",
    )  # fmt: skip
    try:
        with pytest.raises(
            Invalid, match=rf"^{tag}-id was made from image id {short(docker_busybox)}, not from a"
        ):
            await backend.update(by_id.name)
        with pytest.raises(Invalid, match=rf"^{tag}-rm was started with --rm: stopping it would remove it"):
            await backend.update(removed.name)
        with pytest.raises(NotFound):
            await backend.update(f"{tag}-nothing")
        assert {c.id for c in sdk.containers.list(filters={"name": tag})} == {by_id.id, removed.id}
    finally:
        for found in sdk.containers.list(all=True, filters={"name": tag}):
            found.remove(force=True)


async def test_an_update_cancelled_while_the_new_container_proves_itself_puts_the_old_one_back(
    backend: DockerBackend, sdk: docker.DockerClient, registry: Registry, docker_busybox: str,
    served: Served,
) -> None:  # fmt: skip
    push_fresh(sdk, registry, docker_busybox, served.ref, size=4 << 10, changes=STOPS_AT_ONCE)
    proving = asyncio.Event()

    def step(stage: str, _pull: object) -> None:
        if stage == "waiting for the new container to stay up":
            proving.set()

    update = asyncio.create_task(backend.update(served.name, step))
    await asyncio.wait_for(proving.wait(), 30)
    assert sdk.containers.get(served.name).id != served.id  # the new one had taken the name
    update.cancel()
    with pytest.raises(asyncio.CancelledError):
        await update
    back = sdk.containers.get(served.name)
    assert back.id == served.id and back.status == "running"
    assert [c.id for c in sdk.containers.list(all=True, filters={"name": served.name})] == [served.id]
    [record] = [r for r in read_audit() if r["action"] == "container.update"]
    assert record["outcome"].startswith("interrupted")


async def test_an_image_built_or_imported_here_is_refused_before_any_pull(
    dockerd: DockerEngine, sdk: docker.DockerClient, docker_busybox: str, tmp_path: Path
) -> None:
    # The busybox test image was imported: it has no RepoDigests, so no registry knows it, and
    # its name would send a pull to Docker Hub.
    tag = f"loc{time.monotonic_ns() % 1_000_000}"
    local = f"berth-test/{tag}:local"
    sdk.images.get(docker_busybox).tag(f"berth-test/{tag}", "local")
    assert not sdk.images.get(local).attrs.get("RepoDigests")
    grab = sdk.containers.run(local, ["sleep", "600"], name=f"{tag}-grab", detach=True, network_mode="none")
    refusal = (
        f"{grab.name}'s image {local} was built or imported on local, not pulled: there is no "
        "registry to update it from."
    )
    try:
        config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
        refused = run_berth(config, "update", grab.name)
        assert refused.returncode != 0, refused.stderr
        assert refused.stderr == f"berth: {grab.name}: {refusal}\n", refused.stderr
        app = make_app(dockerd, tmp_path)
        async with app.run_test(size=SIZE) as pilot:
            await select(pilot, app, grab)
            await pilot.press("u")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            await until(pilot, lambda: any(refusal in t for t in toasts(app)), what="the refusal")
        assert sdk.containers.get(grab.name).id == grab.id
        assert not [r for r in read_audit() if r["action"] == "image.pull" and r["targets"] == [local]]
    finally:
        grab.remove(force=True)
        sdk.images.remove(local)
