"""Issue 8's end-to-end run: the installed `berth` in tmux, keyboard only, through an operator's
chores against the test engines, each checked on screen (capture-pane) and in the engine after:
find a container and tail its logs, search them, restart it (with a remapped key); make a member
container with a key and a port forward, snapshot and restore it; run a wasm module under a fuel
limit; send 1,000 tasks to the broker and watch them finish; pair a waiting provider; switch host
and theme; read all of it back in the audit log. Then the same chores under `--read-only` (and
NO_COLOR): each refused, nothing changed in the engines, no colour on screen.
"""

import json
import os
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pylxd
import pytest
from docker_helpers import Spawn
from engines.dockerd import DockerEngine
from engines.lxd import LxdEngine
from engines.sshd import SshServer, free_port, keygen
from tmux_helpers import Tmux, berth_env, installed_berth

from backends.config import BrokerConfig, Config, HostConfig, UiConfig, load_config, save_config

pytestmark = pytest.mark.engines


def until(check: Callable[[], object], timeout: float, what: str, screen: Callable[[], str]) -> None:
    """Wait for `check()`; on timeout fail naming `what`, with the screen as it is."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; screen:\n{screen()}")
        time.sleep(0.2)


def api(url: str, data: Path) -> Any:
    """GET a broker API path (127.0.0.1 only) of the console's broker keeping its state in `data`,
    with the admin token it made there."""
    from backends.broker.embedded import console_token

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {console_token(data)}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def fill(tmux: Tmux, *values: str) -> None:
    """Type into a form field by field: each value then Enter (Enter on the last one submits).
    A value starting with "=" replaces what the field holds (ctrl+u first). Paced: a key that
    arrives while the form is still settling its focus would land in the wrong field."""
    time.sleep(0.5)
    for value in values:
        if value.startswith("="):
            tmux.keys("C-u")
            value = value[1:]
        if value:
            tmux.keys(value, literal=True)
        tmux.keys("Enter")
        time.sleep(0.3)


def command(tmux: Tmux, text: str) -> None:
    """A `:` command."""
    tmux.keys(":")
    tmux.wait_for(":")
    tmux.keys(text, literal=True)
    tmux.keys("Enter")


def confirm(tmux: Tmux, button: str) -> None:
    """Answer a confirm dialog with y, once it has settled (a key that arrives while it is still
    mounting goes nowhere); it must close."""
    tmux.wait_for(button)
    time.sleep(0.5)
    tmux.keys("y")
    tmux.wait_gone(button, 10)


def refused(tmux: Tmux, key: str) -> None:
    """Press `key` and see berth refuse it (the last refusal's notification gone first, so this
    one is its own)."""
    tmux.wait_gone("nothing was changed", 20)
    tmux.keys(key)
    tmux.wait_for("nothing was changed")


def find(tmux: Tmux, text: str) -> None:
    """`/` filter of the table on show, kept with Enter; back on the table when the footer offers
    to clear it."""
    tmux.keys("/")
    tmux.wait_for("enter keeps, esc cancels")
    tmux.keys(text, literal=True)
    tmux.wait_for(f"filter: {text}")
    tmux.keys("Enter")
    tmux.wait_for("Clear filter")


@pytest.fixture
def lxd_client(lxd: LxdEngine) -> Iterator[pylxd.Client]:
    """pylxd on the test LXD; instances named m-op-* are force-deleted afterwards."""
    client = lxd.client()
    yield client
    for instance in client.instances.all():
        if instance.name.startswith("m-op-"):
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
            instance.delete(wait=True)


@pytest.fixture
def provider_process(
    tmp_path: Path, isolated_home: Path
) -> Iterator[Callable[[str, str], subprocess.Popen[bytes]]]:
    """`start(url, name)`: a `berth provider` process with its own key; killed afterwards, by PID."""
    started: list[subprocess.Popen[bytes]] = []

    def start(url: str, name: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"provider-{name}.log").open("wb")
        proc = subprocess.Popen(
            [
                installed_berth(),
                "provider",
                "--broker",
                url,
                "--name",
                name,
                "--key",
                str(tmp_path / f"{name}.key"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
            start_new_session=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_an_operators_chores_then_the_same_read_only(
    tmux: Tmux,
    dockerd: DockerEngine,
    spawn: Spawn,
    sdk: docker.DockerClient,
    lxd: LxdEngine,
    lxd_client: pylxd.Client,
    sshd: SshServer,
    ssh_host: Callable[..., HostConfig],
    wasm_programs: dict[str, Path],
    provider_process: Callable[[str, str], subprocess.Popen[bytes]],
    isolated_home: Path,
    tmp_path: Path,
) -> None:
    container = spawn("echo needle-42; i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done")
    member = f"m-op-{uuid.uuid4().hex[:6]}"
    public = keygen(tmp_path / "alice", "alice@laptop")
    (tmp_path / "alice.pub").write_text(public + " alice@laptop\n")
    port = free_port()
    broker_url = f"http://127.0.0.1:{port}"
    config_path = tmp_path / "config.toml"
    config = Config(
        ui=UiConfig(keymap={"containers.restart": "R"}),  # remapped: r no longer restarts
        hosts=[
            HostConfig("local", docker_socket=str(dockerd.socket), lxd_socket=str(lxd.socket)),
            ssh_host(sshd, name="far", docker_socket=str(dockerd.socket)),
        ],
        broker=BrokerConfig(listen=f"127.0.0.1:{port}", data_dir=str(tmp_path / "broker")),
        path=config_path,
    )
    save_config(config, config_path)
    env = berth_env(isolated_home)
    tmux.start([installed_berth(), "--config", str(config_path)], env)
    screen = tmux.screen

    # 1. Find the container by name, tail its logs, search them; restart it with the remapped key.
    tmux.wait_for(container.name)
    find(tmux, container.name)
    tmux.keys("l")
    tmux.wait_for("tick 3")
    tmux.keys("/")
    time.sleep(0.2)
    tmux.keys("needle", literal=True)
    tmux.keys("Enter")
    tmux.wait_for("/needle match 1/1")
    tmux.keys("Escape")
    tmux.wait_gone("/needle match")
    tmux.keys("Escape")
    tmux.wait_for("PROJECT/SERVICE")
    started = sdk.containers.get(container.id).attrs["State"]["StartedAt"]
    tmux.keys("r")  # the default key, remapped away
    time.sleep(1.5)
    assert sdk.containers.get(container.id).attrs["State"]["StartedAt"] == started
    tmux.keys("R")
    until(
        lambda: sdk.containers.get(container.id).attrs["State"]["StartedAt"] != started,
        20,
        "the restart",
        screen,
    )

    # 2. A member container with a key and a port forward; a snapshot, a change, the restore.
    tmux.keys("2")
    tmux.wait_for("SNAPS")
    tmux.wait_gone("Connecting…", 30)  # the pane reaches LXD when first shown
    tmux.keys("n")
    tmux.wait_for("Instance name")
    fill(tmux, member, "alice", "busybox", str(tmp_path / "alice.pub"), "", "", "", "")
    # Made, with its key in place (pushed once the instance exists), and listed.
    until(lambda: public in _file(lxd_client, member, "/root/.ssh/authorized_keys"), 90, "the key", screen)
    assert lxd_client.instances.get(member).config["user.berth.member"] == "alice"
    tmux.wait_for(member, 30)
    find(tmux, member)
    tmux.keys("Down")  # from the "member: alice" heading to its instance
    time.sleep(0.3)
    tmux.keys("f")
    tmux.wait_for("Port forwards ·")
    tmux.keys("a")
    tmux.wait_for("Host port")
    fill(tmux, "18022", "22", "", "")
    until(
        lambda: any(
            d.get("type") == "proxy" and "18022" in d.get("listen", "")
            for d in lxd_client.instances.get(member).devices.values()
        ),
        30,
        "the proxy device",
        screen,
    )
    tmux.wait_for("18022")
    tmux.keys("Escape")
    tmux.wait_gone("Port forwards ·")
    if lxd_client.instances.get(member).status != "Running":
        lxd_client.instances.get(member).start(wait=True)
    lxd_client.instances.get(member).files.put("/root/note", b"before\n")
    tmux.keys("z")
    tmux.wait_for("Snapshots ·")
    tmux.keys("c")
    tmux.wait_for("Stateful")
    fill(tmux, "before-change", "")
    tmux.wait_for("before-change", 30)
    lxd_client.instances.get(member).files.put("/root/note", b"after\n")
    tmux.keys("R")
    confirm(tmux, "Restore (y)")
    until(
        lambda: lxd_client.instances.get(member).files.get("/root/note") == b"before\n",
        60,
        "the restore",
        screen,
    )
    tmux.keys("Escape")
    tmux.wait_gone("Snapshots ·")

    # 3. A wasm module under a fuel limit: it runs out, and says so.
    tmux.keys("3")
    tmux.wait_for("MODULE")
    tmux.keys("n")
    tmux.wait_for("Run a wasm task")
    fill(tmux, str(wasm_programs["loop"]), "", "", "", "100000", "", "", "", "", "", "")
    tmux.wait_for("out of fuel", 30)
    tmux.keys("Escape")
    # Every Escape is waited out: a key right after it would reach berth as Alt+key.
    tmux.wait_gone("· loop.wasm")
    tmux.wait_for("out of fuel")  # in the task's row

    # 4. 1,000 tasks to the broker (the console's own, on the port of the config): all finish.
    tmux.keys("n")
    tmux.wait_for("Run a wasm task")
    fill(tmux, str(wasm_programs["trivial"]), "", "", "", "", "", "", "", "", "=broker", "=1000")
    data = tmp_path / "broker"
    until(lambda: _status(broker_url, data).get("done", 0) >= 1000, 120, "1,000 tasks done", screen)
    tmux.keys("4")
    tmux.wait_for("done 1,00", 20)  # the status line ("done 1,000", or more with the fuel run's)

    # 5. A provider of its own key waits to be paired; a approves it; it comes online.
    provider_process(broker_url, "edge-1")
    tmux.wait_for("edge-1", 20)
    find(tmux, "edge-1")
    tmux.keys("a")
    tmux.wait_for("Pair a provider")
    fill(tmux, "")  # the name it asked for
    until(
        lambda: (
            {p["name"]: p["state"] for p in api(broker_url + "/api/v1/providers", data)}.get("edge-1")
            == "online"
        ),
        30,
        "edge-1 online",
        screen,
    )
    tmux.keys("Escape")  # clear the filter
    tmux.wait_gone("Clear filter")

    # 6, 7. Another host; another theme (saved).
    command(tmux, "host far")
    tmux.wait_for("host far")
    command(tmux, "theme berth-light")
    until(lambda: load_config(config_path).ui.theme == "berth-light", 10, "the theme in the config", screen)

    # 8. The audit log has all of it.
    command(tmux, "audit")
    shown = tmux.wait_for("audit log")
    for action in (
        "container.restart",
        "member.create",
        "member.forward.add",
        "member.snapshot",
        "member.restore",
        "wasm.run",
        "wasm.submit",
        "provider.pair",
        "theme.switch",
    ):
        until(lambda a=action: a in tmux.screen(), 10, f"{action} in the audit log", screen)
    assert "container.restart" in shown or "container.restart" in tmux.screen()
    tmux.keys("Escape")
    tmux.wait_gone("audit log")
    tmux.keys("q")
    until(lambda: not tmux.alive(), 15, "berth to quit", screen)

    # The same chores under --read-only, with NO_COLOR: refused, nothing changed, no colours.
    started = sdk.containers.get(container.id).attrs["State"]["StartedAt"]
    instances = sorted(i.name for i in lxd_client.instances.all())
    snapshots = sorted(s.name for s in lxd_client.instances.get(member).snapshots.all())
    theme_before = load_config(config_path).ui.theme
    lxd_client.instances.get(member).files.put("/root/note", b"changed since\n")  # a restore would undo it
    readonly = Tmux()
    try:
        readonly.start(
            [installed_berth(), "--read-only", "--config", str(config_path)], {**env, "NO_COLOR": "1"}
        )
        readonly.wait_for(container.name)
        coloured = readonly.run("capture-pane", "-p", "-e", "-t", "berth")
        assert "[38;" not in coloured and "[48;" not in coloured, "NO_COLOR: colours on screen"
        find(readonly, container.name)
        refused(readonly, "R")  # restart
        readonly.keys("2")
        readonly.wait_for("SNAPS")
        readonly.wait_gone("Connecting…", 30)
        refused(readonly, "n")  # a new member
        find(readonly, member)
        readonly.keys("Down")
        time.sleep(0.3)
        readonly.keys("z")  # looking at the snapshots is allowed; restoring one is not
        readonly.wait_for("before-change")
        refused(readonly, "R")
        readonly.keys("Escape")
        readonly.wait_gone("Snapshots ·")
        readonly.keys("3")
        readonly.wait_for("MODULE")
        refused(readonly, "n")  # a wasm task, here or 1,000 of them on the broker
        readonly.keys("4")
        readonly.wait_for("edge-1", 30)  # the provider found the console's broker again
        find(readonly, "edge-1")
        refused(readonly, "D")  # drain
        refused(readonly, "x")  # disconnect
        command(readonly, "theme berth-dark")
        time.sleep(1)
        readonly.keys("q")
        until(lambda: not readonly.alive(), 15, "berth --read-only to quit", readonly.screen)
    finally:
        readonly.kill()
    assert sdk.containers.get(container.id).attrs["State"]["StartedAt"] == started
    assert sorted(i.name for i in lxd_client.instances.all()) == instances
    assert sorted(s.name for s in lxd_client.instances.get(member).snapshots.all()) == snapshots
    assert load_config(config_path).ui.theme == theme_before  # not saved under --read-only
    assert lxd_client.instances.get(member).files.get("/root/note") == b"changed since\n"


def _file(client: pylxd.Client, name: str, path: str) -> str:
    """A file of an instance, or "" while the instance or the file is not there (yet)."""
    try:
        return bytes(client.instances.get(name).files.get(path)).decode()
    except (pylxd.exceptions.NotFound, pylxd.exceptions.LXDAPIException):
        return ""


def _status(url: str, data: Path) -> dict[str, Any]:
    try:
        return dict(api(url + "/api/v1/status", data))
    except OSError:
        return {}
