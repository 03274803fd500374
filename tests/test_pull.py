"""Pull and login against a real registry (Debian's docker-registry on 127.0.0.1, htpasswd basic
auth; tests/engines/registry.py): `p` in the images view pulls as a job whose layers `:jobs`
shows as they download, and `c` there stops the pull for real; wrong credentials and an unknown
image are one sentence; `berth login` writes config.json as the docker CLI does, and the docker
CLI pulls with it; `berth pull` works here and through the SSH tunnel. DOCKER_CONFIG is the
test's own folder: the real ~/.docker is never read or written."""

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from cli_helpers import BERTH
from engines.dockerd import DockerEngine
from engines.registry import Registry, SlowProxy, push_fresh
from engines.sshd import SshServer
from pilot_helpers import fill_form, footer_text
from ssh_helpers import SshHost
from test_app import toasts
from test_containers_pane import SIZE, make_app, pane, until
from textual.widgets import Static
from tmux_helpers import Tmux, berth_env, installed_berth

from backends.audit import read_audit
from backends.config import Config, HostConfig, UiConfig, save_config
from tui.app import BerthApp
from tui.screens.confirm import ConfirmScreen
from tui.screens.form import FormScreen
from tui.screens.jobs import JobsScreen

DOCKER_CLI = "/usr/local/bin/docker"


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's own docker CLI settings folder ($DOCKER_CONFIG), empty."""
    folder = tmp_path / "docker-config"
    folder.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def file_credentials(config: Path, registry: str, username: str, password: str) -> None:
    """Credentials for `registry` in config.json, as `docker login` files them."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry: {"auth": auth}}}))


def inventory(tmp_path: Path, *hosts: HostConfig) -> Path:
    path = tmp_path / "config.toml"
    save_config(Config(hosts=list(hosts)), path)
    return path


def run_berth(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The installed `berth` with its stdin fed (and no terminal), in the test's environment."""
    return subprocess.run(
        [BERTH, "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )


def image_ids(sdk: docker.DockerClient, ref: str) -> str | None:
    try:
        return str(sdk.images.get(ref).id)
    except docker.errors.ImageNotFound:
        return None


def drop(sdk: docker.DockerClient, ref: str) -> None:
    """Remove the image the test pulled as `ref`, if it is there."""
    if image_ids(sdk, ref):
        sdk.images.remove(ref)


def parts_text(app: object) -> str:
    """What the jobs screen shows of the job under its cursor's parts."""
    screen = app.screen  # type: ignore[attr-defined]
    if not isinstance(screen, JobsScreen):
        return ""
    panel = screen.query_one("#job-parts", Static)
    return str(panel.render()) if panel.display else ""


async def open_pull_form(pilot: object, app: object) -> None:
    await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")  # type: ignore[arg-type]
    await pilot.press("v")  # type: ignore[attr-defined]
    await until(pilot, lambda: pane(app).images_table.rows, what="the images")  # type: ignore[arg-type]
    await pilot.press("p")  # type: ignore[attr-defined]
    await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the pull form")  # type: ignore[arg-type,attr-defined]


async def test_p_pulls_with_layer_progress_in_jobs_and_the_list_shows_the_image(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    proxy = SlowProxy(registry, rate=2 << 20)
    ref = f"{proxy.host}/berth-test/pull-progress:1"
    image_id, _ = push_fresh(
        sdk, registry, docker_busybox, f"{registry.host}/berth-test/pull-progress:1", size=4 << 20
    )
    file_credentials(docker_config, proxy.host, registry.username, registry.password)
    app = make_app(dockerd, tmp_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await open_pull_form(pilot, app)
            # A reference Docker would refuse is refused in the form, naming the field; nothing runs.
            await fill_form(pilot, app, ref="a//b")
            await until(pilot, lambda: "Image" in str(app.screen.query_one("#form-error").render()))
            assert isinstance(app.screen, FormScreen) and not app.jobs.jobs
            await fill_form(pilot, app, ref=ref)
            await until(pilot, lambda: app.jobs.jobs, what="the pull job")
            await pilot.press("colon", *"jobs", "enter")
            await until(pilot, lambda: isinstance(app.screen, JobsScreen), what=":jobs")
            # While it downloads: the new layer with its bytes, the base layer already there.
            await until(
                pilot, lambda: "Downloading" in parts_text(app), timeout=20, what="a downloading layer"
            )
            shown = parts_text(app)
            assert f"pull {ref}" in shown and "Already exists" in shown and " / 4.2 MB" in shown, shown
            job = next(iter(app.jobs.jobs.values()))
            assert job.state == "running" and job.total and 0 < job.done < job.total
            assert "of 4.2 MB" in str(app.screen.query_one("#jobs-table").rows[str(job.id)].cells["detail"])
            await until(pilot, lambda: job.state == "done", timeout=30, what="the pull to end")
            assert "Pull complete" in parts_text(app)
            assert image_ids(sdk, ref) == image_id  # in the engine, under the reference pulled
            assert any(f"Pulled {ref} on local." in t for t in toasts(app))
            pulls = [r for r in read_audit() if r["action"] == "image.pull" and r["targets"] == [ref]]
            assert [(r["host"], r["outcome"], r["registry"]) for r in pulls] == [("local", "ok", proxy.host)]
            await pilot.press("escape")
            await until(pilot, lambda: image_id in pane(app).images_table.rows, what="the list read again")
    finally:
        proxy.close()
        drop(sdk, ref)


async def test_c_in_jobs_stops_the_pull_and_its_download(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    size = 16 << 20
    proxy = SlowProxy(registry, rate=2 << 20)  # 8 s for the layer: cancelled long before
    ref = f"{proxy.host}/berth-test/pull-cancel:1"
    push_fresh(sdk, registry, docker_busybox, f"{registry.host}/berth-test/pull-cancel:1", size=size)
    file_credentials(docker_config, proxy.host, registry.username, registry.password)
    app = make_app(dockerd, tmp_path)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await open_pull_form(pilot, app)
            await fill_form(pilot, app, ref=ref)
            await pilot.press("colon", *"jobs", "enter")
            await until(
                pilot, lambda: "Downloading" in parts_text(app), timeout=20, what="a downloading layer"
            )
            await pilot.press("c")
            await pilot.press("y")
            job = next(iter(app.jobs.jobs.values()))
            await until(pilot, lambda: job.state == "cancelled", what="the job cancelled")
            # The engine stopped downloading: the relay's bytes stop growing, short of the layer.
            await pilot.pause(1.0)
            sent = proxy.sent
            await pilot.pause(1.0)
            assert proxy.sent == sent < size
            assert image_ids(sdk, ref) is None
            # The job says so, and no layer it was bringing claims to be complete.
            assert job.detail == f"Stopped pulling {ref} on local; nothing was kept.", job.detail
            shown = parts_text(app)
            assert "Stopped  " in shown and " / 16.8 MB" in shown and "Pull complete" not in shown, shown
            pulls = [r for r in read_audit() if r["action"] == "image.pull" and r["targets"] == [ref]]
            assert pulls and pulls[-1]["outcome"].startswith("interrupted"), pulls
    finally:
        proxy.close()


class LaggingSocket:
    """A unix socket relaying to the engine's, like a slow link: a pull's answer
    (`POST /images/create`) is taken from the engine as fast as it comes but handed on at `rate`
    bytes a second, so the engine can finish a pull that berth still shows under way. Other
    requests pass at once. Closing berth's end closes the engine's."""

    def __init__(self, engine: Path, path: Path, rate: int) -> None:
        self.engine, self.path, self.rate = str(engine), path, rate
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(str(path))
        self._listener.listen()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.engine)
            pulling = threading.Event()
            threading.Thread(target=self._ask, args=(client, upstream, pulling), daemon=True).start()
            threading.Thread(target=self._answer, args=(upstream, client, pulling), daemon=True).start()

    @staticmethod
    def _ask(client: socket.socket, upstream: socket.socket, pulling: threading.Event) -> None:
        try:
            while data := client.recv(1 << 16):
                if b"/images/create" in data:
                    pulling.set()
                upstream.sendall(data)
        except OSError:
            pass
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _answer(self, upstream: socket.socket, client: socket.socket, pulling: threading.Event) -> None:
        pending = bytearray()
        upstream.setblocking(False)
        try:
            while True:
                with contextlib.suppress(BlockingIOError):
                    data = upstream.recv(1 << 16)
                    if not data and not pending:
                        break
                    pending += data
                if pending:
                    size = 64 if pulling.is_set() else len(pending)
                    client.sendall(pending[:size])
                    del pending[:size]
                    if pulling.is_set():
                        time.sleep(size / self.rate)
                else:
                    time.sleep(0.002)
        except OSError:
            pass
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Stop taking connections."""
        self._listener.close()


async def test_a_pull_cancelled_after_the_engine_finished_says_the_image_was_pulled(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    # The engine pulls at the registry's speed while its answer reaches berth slowly: cancelled
    # at the job's "Downloading", the pull has in truth ended, and the job must say so.
    ref = f"{registry.host}/berth-test/pull-late:1"
    image_id, _ = push_fresh(sdk, registry, docker_busybox, ref, size=8 << 20)
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    relay = LaggingSocket(dockerd.socket, tmp_path / "lagging.sock", rate=512)
    hosts = [HostConfig("local", docker_socket=str(relay.path))]
    app = BerthApp(Config(ui=UiConfig(), hosts=hosts, path=tmp_path / "config.toml"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await open_pull_form(pilot, app)
            await fill_form(pilot, app, ref=ref)
            await pilot.press("colon", *"jobs", "enter")
            await until(pilot, lambda: "Downloading" in parts_text(app), timeout=20, what="a download")
            await until(pilot, lambda: image_ids(sdk, ref) == image_id, timeout=20, what="the engine done")
            job = next(iter(app.jobs.jobs.values()))
            assert job.state == "running" and "Pull complete" not in parts_text(app)
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            said = f"Stopped pulling {ref}, but Docker on local had already pulled it ({image_id[7:19]})."
            await until(pilot, lambda: job.detail == said, what="how it really ended")
            assert job.state == "cancelled"
            # Its layers say what the engine has: all of them.
            shown = parts_text(app)
            assert "Already exists" in shown and "Pull complete  8.4 MB" in shown, shown
            assert "Downloading" not in shown, shown
            assert image_ids(sdk, ref) == image_id
    finally:
        relay.close()
        drop(sdk, ref)


async def test_wrong_credentials_are_one_sentence_in_the_console(
    dockerd: DockerEngine, registry_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    file_credentials(docker_config, registry.host, registry.username, "not-the-password")
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_pull_form(pilot, app)
        await fill_form(pilot, app, ref=registry_busybox)
        await until(pilot, lambda: any("failed" in t for t in toasts(app)), what="the failure")
        expected = (
            f"Docker on local could not pull {registry_busybox}: the registry refused the credentials "
            f"for {registry.host}. Log in with berth login {registry.host}."
        )
        assert any(t == f"pull {registry_busybox} failed {expected}" for t in toasts(app)), toasts(app)
        assert next(iter(app.jobs.jobs.values())).state == "failed"
    assert image_ids(sdk, registry_busybox) is None


def test_berth_pull_refuses_wrong_credentials_and_an_unknown_image_in_one_sentence(
    dockerd: DockerEngine, registry_busybox: str, registry: Registry, docker_config: Path, tmp_path: Path
) -> None:
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    failed = run_berth(config, "pull", registry_busybox)
    assert failed.returncode == 1
    assert failed.stderr == (
        f"berth: Docker on local could not pull {registry_busybox}: {registry.host} asks for "
        f"credentials. Log in with berth login {registry.host}.\n"
    )
    file_credentials(docker_config, registry.host, registry.username, "wrong")
    failed = run_berth(config, "pull", registry_busybox)
    assert failed.returncode == 1
    assert "the registry refused the credentials for" in failed.stderr and failed.stderr.count("\n") == 1
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    missing = f"{registry.host}/berth-test/no-such-image:1"
    failed = run_berth(config, "pull", missing)
    assert failed.returncode == 1
    assert failed.stderr == (
        f"berth: Docker on local could not pull {missing}: {missing} was not found on "
        f"{registry.host}. Check the name and the tag.\n"
    )
    bad = run_berth(config, "pull", "a//b")
    assert bad.returncode == 2 and "REF" in bad.stderr
    # A credential helper that is not installed is one sentence too, naming it.
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "berth-none"}))
    failed = run_berth(config, "pull", registry_busybox)
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1, failed.stderr
    assert failed.stderr.startswith(f"berth: The credential helper for {registry.host} failed: ")
    assert failed.stderr == (
        f"berth: The credential helper for {registry.host} failed: docker-credential-berth-none not "
        f"installed or not available in PATH. Check it, or log in again with berth login {registry.host}.\n"
    )


def test_berth_login_writes_config_json_the_docker_cli_pulls_with(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    ref = f"{registry.host}/berth-test/pull-login:1"
    image_id, _ = push_fresh(sdk, registry, docker_busybox, ref)
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    settings = docker_config / "config.json"
    settings.write_text(
        json.dumps({"psFormat": "table {{.Names}}", "auths": {"other.example:5000": {"auth": "eDp5"}}})
    )
    login = ("login", registry.host, "--username", registry.username, "--password-stdin")

    refused = run_berth(config, *login, stdin="wrong\n")
    assert refused.returncode == 1
    assert refused.stderr == (
        f"berth: {registry.host} refused the credentials of {registry.username} (checked by Docker on "
        "local); nothing was stored. Check the username and password.\n"
    )
    assert registry.host not in json.loads(settings.read_text())["auths"]

    done = run_berth(config, *login, stdin=registry.password + "\n")
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == f"Logged in to {registry.host} as {registry.username}; the credentials are in {settings}.\n"
    )
    written = json.loads(settings.read_text())
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    assert written == {
        "psFormat": "table {{.Names}}",
        "auths": {"other.example:5000": {"auth": "eDp5"}, registry.host: {"auth": token}},
    }
    assert settings.stat().st_mode & 0o777 == 0o600

    # The docker CLI reads what berth wrote and pulls with it.
    env = {**os.environ, "DOCKER_CONFIG": str(docker_config), "DOCKER_HOST": dockerd.url}
    pulled = subprocess.run([DOCKER_CLI, "pull", ref], capture_output=True, text=True, env=env, timeout=120)
    try:
        assert pulled.returncode == 0, pulled.stderr
        assert image_ids(sdk, ref)
    finally:
        sdk.images.remove(ref)

    # And berth pull, with the layers on stderr (no terminal: a line each at the end) and --json.
    out = run_berth(config, "--json", "pull", ref)
    try:
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["ref"] == ref and result["host"] == "local"
        assert result["id"] == image_ids(sdk, ref) == image_id
        assert [layer["status"] for layer in result["layers"]] == ["Already exists", "Pull complete"]
        lines = out.stderr.splitlines()
        assert len(lines) == 2 and lines[0].endswith("  Already exists"), out.stderr
        assert lines[1].endswith("  Pull complete  2.1 MB"), out.stderr
    finally:
        sdk.images.remove(ref)


def test_berth_pull_through_the_ssh_tunnel(
    sshd: SshServer, dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    ssh_host: SshHost, docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    ref = f"{registry.host}/berth-test/pull-ssh:1"
    image_id, _ = push_fresh(sdk, registry, docker_busybox, ref)
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    config = inventory(tmp_path, ssh_host(sshd, docker_socket=str(dockerd.socket)))
    out = run_berth(config, "--host", "box", "pull", ref)
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout == f"{ref} is {image_id.removeprefix('sha256:')[:12]} on box.\n"
        assert "Pull complete" in out.stderr and "Already exists" in out.stderr
        assert image_ids(sdk, ref) == image_id
    finally:
        drop(sdk, ref)


HELPER = '''#!{python}
"""docker-credential-berthtest: a credential helper keeping its secrets in a file beside it."""
import json, pathlib, sys
store = pathlib.Path(__file__).with_name("store.json")
data = json.loads(store.read_text()) if store.exists() else {{}}
verb = sys.argv[1]
if verb == "store":
    item = json.load(sys.stdin)
    data[item["ServerURL"]] = item
    store.write_text(json.dumps(data))
elif verb == "get":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(data[server]))
elif verb == "erase":
    data.pop(sys.stdin.read().strip(), None)
    store.write_text(json.dumps(data))
elif verb == "list":
    print(json.dumps({{k: v["Username"] for k, v in data.items()}}))
'''


def test_login_and_pull_go_through_the_configured_credential_helper(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    helper = helpers / "docker-credential-berthtest"
    helper.write_text(HELPER.format(python=sys.executable))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helpers}{os.pathsep}{os.environ['PATH']}")
    settings = docker_config / "config.json"
    settings.write_text(json.dumps({"credsStore": "berthtest"}))
    ref = f"{registry.host}/berth-test/pull-helper:1"
    image_id, _ = push_fresh(sdk, registry, docker_busybox, ref)
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))

    done = run_berth(
        config, "login", registry.host, "-u", registry.username, "--password-stdin", stdin=registry.password
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("the credentials are in docker-credential-berthtest.\n")
    # The file names the registry and keeps no secret; the helper has it.
    assert json.loads(settings.read_text()) == {"credsStore": "berthtest", "auths": {registry.host: {}}}
    kept = json.loads((helpers / "store.json").read_text())
    assert kept[registry.host] == {
        "ServerURL": registry.host,
        "Username": registry.username,
        "Secret": registry.password,
    }
    out = run_berth(config, "pull", ref)
    try:
        assert out.returncode == 0, out.stderr
        assert image_ids(sdk, ref) == image_id
    finally:
        drop(sdk, ref)


def test_ctrl_c_stops_berth_pull_and_its_download(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    size = 16 << 20
    proxy = SlowProxy(registry, rate=2 << 20)
    ref = f"{proxy.host}/berth-test/pull-interrupt:1"
    push_fresh(sdk, registry, docker_busybox, f"{registry.host}/berth-test/pull-interrupt:1", size=size)
    file_credentials(docker_config, proxy.host, registry.username, registry.password)
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    proc = subprocess.Popen(
        [BERTH, "--config", str(config), "pull", ref],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 20
        while proxy.sent < 256 << 10:
            assert time.monotonic() < deadline and proc.poll() is None, "no download began"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        # One sentence says so, under the layers as they stopped.
        said = f"\nberth: Stopped pulling {ref} on local; nothing was kept.\n"
        assert out == "" and err.endswith(said), err
        assert "  Stopped  " in err and "Pull complete" not in err, err
        time.sleep(1.0)
        sent = proxy.sent
        time.sleep(1.0)
        assert proxy.sent == sent < size
        assert image_ids(sdk, ref) is None
        pulls = [r for r in read_audit() if r["action"] == "image.pull" and r["targets"] == [ref]]
        assert pulls and pulls[-1]["outcome"].startswith("interrupted"), pulls
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proxy.close()


def test_on_a_terminal_login_asks_and_pull_redraws_its_layers_in_place(
    tmux: Tmux, dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, tmp_path: Path, isolated_home: Path,
) -> None:  # fmt: skip
    proxy = SlowProxy(registry, rate=2 << 20)
    ref = f"{proxy.host}/berth-test/pull-tty:1"
    image_id, _ = push_fresh(
        sdk, registry, docker_busybox, f"{registry.host}/berth-test/pull-tty:1", size=4 << 20
    )
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    berth = f"{installed_berth()} --config {config}"
    script = f"{berth} login {proxy.host} && {berth} pull {ref}; echo EXIT=$?; sleep 60"
    tmux.start(["sh", "-c", script], {**berth_env(isolated_home), "DOCKER_CONFIG": str(docker_config)})
    try:
        tmux.wait_for("Username:")
        tmux.keys(registry.username, "Enter", literal=False)
        tmux.wait_for("Password:")
        tmux.keys(registry.password, literal=True)
        tmux.keys("Enter")
        tmux.wait_for("Logged in to")
        assert registry.password not in tmux.screen()  # not echoed
        shown = tmux.wait_for("Downloading")
        assert " / 4.2 MB" in shown, shown
        shown = tmux.wait_for("EXIT=0", timeout=30)
        # Each layer has one line, drawn over as it went: its last status only.
        assert shown.count("Already exists") == 1 and shown.count("Pull complete") == 1, shown
        assert "Downloading" not in shown and "2 of 2 layers done" in shown, shown
        assert f"{ref} is {image_id.removeprefix('sha256:')[:12]} on local." in shown
    finally:
        proxy.close()
        drop(sdk, ref)


async def test_p_in_the_all_hosts_view_pulls_on_the_host_of_the_row_under_the_cursor(
    dockerd: DockerEngine, docker_busybox: str, registry: Registry, sdk: docker.DockerClient,
    make_dockerd: Callable[..., DockerEngine], docker_config: Path, tmp_path: Path,
) -> None:  # fmt: skip
    # The first host (the console's own) is another engine: the row under the cursor is the test
    # dockerd's, and so is the pull.
    elsewhere = HostConfig("elsewhere", docker_socket=str(make_dockerd().socket))
    local = HostConfig("local", docker_socket=str(dockerd.socket))
    ref = f"{registry.host}/berth-test/pull-all:1"
    image_id, _ = push_fresh(sdk, registry, docker_busybox, ref)
    file_credentials(docker_config, registry.host, registry.username, registry.password)
    app = BerthApp(Config(ui=UiConfig(), hosts=[elsewhere, local], path=tmp_path / "config.toml"), "all")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
            await pilot.press("colon", *"images", "enter")
            images = pane(app).images_table
            await until(pilot, lambda: f"local/{docker_busybox}" in images.rows, what="the images")
            assert images.move_cursor_to(f"local/{docker_busybox}")
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the pull form")
            assert "Pull an image on local" in str(app.screen.query_one(".dialog-title").render())
            await fill_form(pilot, app, ref=ref)
            await until(
                pilot, lambda: f"local/{image_id}" in images.rows, timeout=20, what="the pulled image"
            )
            job = next(iter(app.jobs.jobs.values()))
            assert (job.host, job.state) == ("local", "done")
            assert image_ids(sdk, ref) == image_id
            assert not any(key.startswith("elsewhere/") for key in images.rows)
    finally:
        drop(sdk, ref)


async def test_read_only_refuses_the_pull_in_the_console_and_berth_pull(
    dockerd: DockerEngine,
    registry_busybox: str,
    sdk: docker.DockerClient,
    docker_config: Path,
    tmp_path: Path,
) -> None:
    app = make_app(dockerd, tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pane(app).changes_seen > 0, what="the containers")
        await pilot.press("v")
        await until(pilot, lambda: pane(app).images_table.rows, what="the images")
        assert "Pull" not in footer_text(app)
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, FormScreen) and not app.jobs.jobs
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket), read_only=True))
    refused = run_berth(config, "pull", registry_busybox)
    assert refused.returncode == 1
    assert refused.stderr == (
        "berth: local is read-only here (read_only = true in the config): `pull` changes state "
        "and was not run.\n"
    )
    assert image_ids(sdk, registry_busybox) is None


def test_berth_pull_reads_only_the_config_json_the_docker_cli_reads(
    dockerd: DockerEngine, registry_busybox: str, registry: Registry, sdk: docker.DockerClient,
    docker_config: Path, isolated_home: Path, tmp_path: Path,
) -> None:  # fmt: skip
    # Good credentials in ~/.docker/config.json and ~/.dockercfg; DOCKER_CONFIG names a folder
    # without config.json: the docker CLI has no credentials then, and neither has berth.
    home_docker = isolated_home / ".docker"
    home_docker.mkdir()
    file_credentials(home_docker, registry.host, registry.username, registry.password)
    token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
    (isolated_home / ".dockercfg").write_text(json.dumps({registry.host: {"auth": token}}))
    config = inventory(tmp_path, HostConfig("local", docker_socket=str(dockerd.socket)))
    failed = run_berth(config, "pull", registry_busybox)
    assert failed.returncode == 1
    assert failed.stderr == (
        f"berth: Docker on local could not pull {registry_busybox}: {registry.host} asks for "
        f"credentials. Log in with berth login {registry.host}.\n"
    )
    assert image_ids(sdk, registry_busybox) is None
    # A config.json that is not JSON is said so, naming it; the pull is not tried.
    settings = docker_config / "config.json"
    settings.write_text("{bad json")
    failed = run_berth(config, "pull", registry_busybox)
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
    assert failed.stderr.startswith(f"berth: {settings} is not valid JSON: "), failed.stderr
    assert "credentials" not in failed.stderr and "login" not in failed.stderr, failed.stderr
    # Without DOCKER_CONFIG, ~/.docker/config.json is the one read, as the docker CLI does.
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    done = subprocess.run(
        [BERTH, "--config", str(config), "pull", registry_busybox],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        assert image_ids(sdk, registry_busybox)
    finally:
        drop(sdk, registry_busybox)
