"""End to end, the weekly chores in the installed `berth` in a real terminal (tmux): the volumes
view refusing a used volume and pruning the unused one, a pull from the test registry whose
layers `:jobs` shows downloading, and `u` updating a container to a new image pushed under the
same tag. Against a dockerd of the test's own (a prune takes everything unused on its engine)
and the test registry (credentials in the test's own DOCKER_CONFIG), read off the screen and
checked in the engine."""

from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from engines.dockerd import DockerEngine
from engines.images import import_docker_busybox
from engines.registry import Registry, SlowProxy, push_fresh
from test_operator_flow import until
from test_pull import file_credentials, image_ids, inventory
from test_volumes import volume_names
from tmux_helpers import Tmux, berth_env, installed_berth

from backends.audit import read_audit
from backends.config import HostConfig
from backends.docker_update import OLD_SUFFIX

pytestmark = pytest.mark.engines


def toast_text(screen: str) -> str:
    """The notifications on the screen (right of their bar), their wrapped lines joined."""
    return " ".join(" ".join(line.split("▌", 1)[1].split()) for line in screen.splitlines() if "▌" in line)


def command(tmux: Tmux, text: str) -> None:
    """Type a `:` command and run it."""
    tmux.keys(":")
    tmux.keys(text, literal=True)
    tmux.keys("Enter")


def test_volumes_prune_pull_with_progress_and_update_in_a_real_terminal(
    tmux: Tmux, make_dockerd: Callable[..., DockerEngine], registry: Registry,
    tmp_path: Path, isolated_home: Path,
) -> None:  # fmt: skip
    engine = make_dockerd()
    client = engine.client()
    busybox = import_docker_busybox(client)
    proxy = SlowProxy(registry, rate=1 << 20)
    ref = f"{proxy.host}/berth-test/daily:1"
    pushed, _ = push_fresh(client, registry, busybox, f"{registry.host}/berth-test/daily:1", size=4 << 20)
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    file_credentials(docker_config, proxy.host, registry.username, registry.password)
    client.volumes.create("dy-kept")
    client.volumes.create("dy-spare")
    client.containers.run(
        busybox, ["sleep", "600"], name="dy-holder", volumes={"dy-kept": {"bind": "/v"}}, detach=True
    )
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(engine.socket)))
    env = {**berth_env(isolated_home), "DOCKER_CONFIG": str(docker_config)}
    try:
        tmux.start([installed_berth(), "--config", str(config)], env)
        tmux.wait_for("dy-holder")

        # 1. v v: the volumes view lists both, the used one with its user; d on it is refused by name.
        tmux.keys("v")
        tmux.wait_for("v Volumes")  # the images view's footer
        tmux.keys("v")
        tmux.wait_for("v Networks")  # the volumes view's
        screen = tmux.wait_for("dy-spare")
        rows = {line.split()[0]: line for line in screen.splitlines() if line.strip().startswith("dy-")}
        assert set(rows) == {"dy-kept", "dy-spare"}, screen
        assert "dy-holder" in rows["dy-kept"] and "dy-holder" not in rows["dy-spare"], screen
        tmux.keys("/")
        tmux.keys("dy-kept", literal=True)
        tmux.keys("Enter")
        tmux.wait_for("esc Clear filter")
        tmux.keys("d")
        tmux.wait_for("(used by dy-holder)")  # the question names the user
        tmux.keys("y")
        tmux.wait_for("is used by running dy-holder")  # and the refusal
        assert volume_names(client) == {"dy-kept", "dy-spare"}
        tmux.keys("Escape")  # the filter goes
        tmux.wait_gone("esc Clear filter")

        # 2. P: the preview names the unused volume only; y removes exactly it.
        tmux.keys("P")
        screen = tmux.wait_for("Prune (y)")
        assert "Remove 1 unused volume on local" in screen, screen
        listed = [line.split("•", 1)[1].split()[0] for line in screen.splitlines() if "•" in line]
        assert listed == ["dy-spare"], screen
        tmux.keys("y")
        until(lambda: volume_names(client) == {"dy-kept"}, 20, "the prune", tmux.screen)
        tmux.wait_gone("dy-spare")
        assert "dy-kept" in tmux.screen()

        # 3. Back to the images, p: the reference, and :jobs shows the layers downloading.
        command(tmux, "images")
        tmux.wait_for("v Volumes")
        tmux.keys("p")
        tmux.wait_for("Pull an image on local")
        tmux.keys(ref, literal=True)
        tmux.keys("Enter")
        tmux.wait_gone("Pull an image on local")  # keys sent before the form closes would go to it
        command(tmux, "jobs")
        screen = tmux.wait_for("Downloading")  # the layer under way, with its bytes
        assert "Already exists" in screen and " / 4.2 MB" in screen, screen
        job = next(line for line in screen.splitlines() if f"pull {ref}" in line and "local" in line)
        assert "running" in job and " of 4.2" in job, screen  # the job's total (at 120 columns, cut)
        tmux.wait_for("Pull complete", timeout=30)
        until(lambda: image_ids(client, ref) == pushed, 20, "the pulled image in the engine", tmux.screen)
        tmux.keys("Escape")
        tmux.wait_gone("Pull complete")

        # 4. A new image under the same tag; u on a container of that ref: old id -> new id.
        app = client.containers.run(
            ref, ["sleep", "600"], name="dy-app", environment={"DY_MODE": "kept"},
            restart_policy={"Name": "unless-stopped"}, detach=True,
        )  # fmt: skip
        fresh, _ = push_fresh(client, registry, busybox, f"{registry.host}/berth-test/daily:1", size=1 << 20)
        for footer in ("v Networks", "v Containers", "l Logs"):  # images -> ... -> containers
            tmux.keys("v")
            tmux.wait_for(footer)
        tmux.keys("/")
        tmux.keys("dy-app", literal=True)
        tmux.keys("Enter")
        tmux.wait_for("esc Clear filter")
        tmux.keys("u")
        tmux.wait_for("Update (y)")
        tmux.keys("y")
        tmux.wait_for("dy-app updated", timeout=40)
        updated = client.containers.get("dy-app")
        said = toast_text(tmux.screen())
        assert f"dy-app updated: {app.id[:12]} → {updated.id[:12]}" in said, said
        assert updated.id != app.id and updated.image.id == fresh and updated.status == "running"
        assert "DY_MODE=kept" in updated.attrs["Config"]["Env"]
        assert updated.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(app.id)  # the old one went once the new one stayed up
        tmux.wait_gone(OLD_SUFFIX)  # and so did its row, set aside while the new one proved itself
        records = [r for r in read_audit() if r["action"] == "container.update"]
        assert [(r["targets"], r["new_id"], r["outcome"]) for r in records] == [([app.id], updated.id, "ok")]
        tmux.keys("q")
        until(lambda: not tmux.alive(), 10, "berth quitting on q", tmux.screen)
    finally:  # the engine, and what is on it, goes with the make_dockerd fixture
        proxy.close()
        client.close()
