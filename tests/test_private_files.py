"""Files berth writes are private (0600 in 0700 folders), after real use through the `berth`
command: a broker that ran tasks, its provider, the audit log, member backups, the config file
and its backup. A URL's password never reaches a log; a planted runtime-folder symlink is refused;
`--read-only` refuses to start a provider or a broker."""

import json
import os
import socket
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_helpers import Procs, free_port, new_key, wait_for
from cli_helpers import berth
from engines.lxd import LxdEngine
from engines.sshd import SshServer
from ssh_helpers import SshHost

from backends.config import Config, HostConfig, save_config

SECRET = "s3cret-pw"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """Every folder and file under `root` (itself included), by relative path, with its mode."""
    found = {".": mode(root)}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = mode(path)
    return found


def assert_private(root: Path) -> None:
    loose = {
        name: oct(m)
        for name, m in modes_under(root).items()
        if m != (0o700 if (root / name).is_dir() else 0o600)
    }
    assert loose == {}, f"not 0700/0600 under {root}"


def state_dir() -> Path:
    return Path(os.environ["XDG_STATE_HOME"]) / "berth"


def data_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "berth"


def audit_records() -> list[dict[str, object]]:
    return [json.loads(line) for line in (state_dir() / "audit.jsonl").read_text().splitlines()]


def test_a_broker_that_ran_tasks_keeps_its_data_private(
    procs: Procs, tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    data = tmp_path / "broker"
    data.mkdir(mode=0o755)  # as an older berth left it
    (data / "broker.sqlite").touch(mode=0o644)
    data.chmod(0o755)
    (data / "broker.sqlite").chmod(0o644)
    broker = procs.broker(data)
    # The provider and the admin reach the broker through a URL with a password in it.
    with_password = f"http://berth:{SECRET}@127.0.0.1:{broker.port}"
    key = tmp_path / "p1.key"
    fingerprint = new_key(key)
    provider = procs.provider(with_password, key, "p1")
    wait_for(lambda: broker.pending(fingerprint), 30, "p1 to ask to join")
    config = tmp_path / "config.toml"
    paired = berth(config, "broker", "pair", fingerprint, "--name", "p1", "--broker", with_password)
    assert paired.returncode == 0, paired.stderr
    wait_for(lambda: broker.online("p1"), 30, "p1 to be admitted")

    ref = broker.upload(wasm_programs["hello"])
    ids = broker.submit([{"module": ref, "env": {"API_KEY": "task-secret"}} for _ in range(5)])
    assert all(broker.wait_task(i)["state"] == "done" for i in ids)

    # While it runs: the database, its -wal and -shm (task env lives there) and the module store.
    names = modes_under(data)
    assert {"broker.sqlite", "broker.sqlite-wal", "broker.sqlite-shm", "modules"} <= set(names)
    assert any(n.startswith("modules/") and n.endswith(".wasm") for n in names)
    assert_private(data)
    provider.stop()
    broker.proc.stop()  # type: ignore[union-attr]
    assert_private(data)

    # The admin's audit log: 0600 in a 0700 folder, the broker URL without its password.
    assert mode(state_dir()) == 0o700 and mode(state_dir() / "audit.jsonl") == 0o600
    pair = next(r for r in audit_records() if r["action"] == "provider.pair")
    assert pair["host"] == f"http://berth:***@127.0.0.1:{broker.port}" and pair["outcome"] == "ok"
    assert SECRET not in (state_dir() / "audit.jsonl").read_text()
    # The provider's log names the broker without the password too.
    assert f"-> http://berth:***@127.0.0.1:{broker.port}" in provider.output()
    assert SECRET not in provider.output()
    # Its key, and the modules it was sent, are its own.
    assert mode(key) == 0o600
    assert mode(data_dir()) == 0o700
    assert_private(data_dir() / "provider-modules")


def test_config_save_keeps_a_private_backup_and_writes_through_a_symlink(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "berth.toml"
    save_config(Config(hosts=[HostConfig("local")]), real)
    real.chmod(0o644)  # as the user's editor left it
    before = real.read_text()
    link = Path(os.environ["XDG_CONFIG_HOME"]) / "berth" / "config.toml"
    link.parent.mkdir()
    link.symlink_to(real)

    added = berth(link, "hosts", "add", "web-1", "ssh://ops@127.0.0.1:2222")
    assert added.returncode == 0, added.stderr
    assert link.is_symlink() and link.resolve() == real  # still the user's link
    assert "web-1" in real.read_text() and mode(real) == 0o600
    backup = dotfiles / "berth.toml.bak"
    assert backup.read_text() == before and mode(backup) == 0o600
    assert sorted(p.name for p in dotfiles.iterdir()) == ["berth.toml", "berth.toml.bak"]  # no temp left
    assert sorted(p.name for p in link.parent.iterdir()) == ["config.toml"]

    # A plain file, and an old .bak of 0644 beside it: both come out 0600.
    plain = tmp_path / "plain.toml"
    save_config(Config(hosts=[HostConfig("local")]), plain)
    plain.chmod(0o644)
    old_backup = tmp_path / "plain.toml.bak"
    old_backup.write_text("# old\n")
    old_backup.chmod(0o644)
    assert berth(plain, "hosts", "add", "web-2", "ssh://ops@127.0.0.1:2223").returncode == 0
    assert mode(plain) == 0o600 and mode(old_backup) == 0o600
    assert "web-2" not in old_backup.read_text() and "local" in old_backup.read_text()
    assert mode(state_dir() / "audit.jsonl") == 0o600
    assert mode(state_dir() / "berth.log") == 0o600  # the error log every berth command opens


@pytest.fixture
def members(lxd: LxdEngine, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A config whose local LXD is the test one, and the names of instances made (removed after)."""
    config = tmp_path / "config.toml"
    host = HostConfig("local", docker_socket=str(tmp_path / "no-docker.sock"), lxd_socket=str(lxd.socket))
    save_config(Config(hosts=[host]), config)
    made: list[str] = []
    yield config, made
    client = lxd.client()
    for name in made:
        if client.instances.exists(name):
            instance = client.instances.get(name)
            if instance.status != "Stopped":
                instance.stop(force=True, wait=True)
            instance.delete(wait=True)


@pytest.mark.engines
def test_a_member_backup_is_private(members: tuple[Path, list[str]], tmp_path: Path) -> None:
    config, made = members
    name = f"b-{uuid.uuid4().hex[:6]}"
    made.append(name)
    created = berth(config, "member", "create", name, "--member", "ann", "--image", "busybox")
    assert created.returncode == 0, created.stderr
    out = tmp_path / "backups"
    out.mkdir(mode=0o755)
    out.chmod(0o755)
    saved = berth(config, "member", "backup", name, str(out / f"{name}.tar.gz"))
    assert saved.returncode == 0, saved.stderr
    backup = out / f"{name}.tar.gz"
    assert backup.stat().st_size > 0 and mode(backup) == 0o600
    assert [p.name for p in out.iterdir()] == [backup.name]  # no .part left
    assert mode(out) == 0o755  # the user's own folder is left as it was
    assert mode(state_dir() / "audit.jsonl") == 0o600


@pytest.mark.engines
def test_a_planted_runtime_folder_symlink_is_refused(
    sshd: SshServer, ssh_host: SshHost, tmp_path: Path
) -> None:
    # Something that looks like a Docker socket on the SSH host, so berth forwards it.
    fake = tmp_path / "docker.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(fake))
    listener.listen()
    try:
        host = ssh_host(sshd, docker_socket=str(fake), lxd_socket="/nonexistent/lxd.sock")
        config = tmp_path / "config.toml"
        save_config(Config(hosts=[host]), config)
        # Someone else's choice of folder, planted where berth keeps its forwarded sockets.
        planted = tmp_path / "planted"
        planted.mkdir(mode=0o755)
        runtime = Path(os.environ["XDG_RUNTIME_DIR"]) / "berth"
        runtime.symlink_to(planted)

        listed = berth(config, "--host", "box", "ps", timeout=60)
        assert listed.returncode != 0
        refusal = f"{runtime} is a symlink; berth keeps its sockets only in a folder of its own."
        assert refusal in listed.stderr
        assert list(planted.iterdir()) == []  # no socket was put there
        assert runtime.is_symlink() and mode(planted) == 0o755
    finally:
        listener.close()


def test_a_provider_key_made_in_berth_data_folder_is_private(procs: Procs) -> None:
    port = free_port()
    provider = procs.spawn("provider", "provider", "--broker", f"http://127.0.0.1:{port}")
    key = data_dir() / "provider_ed25519"
    wait_for(lambda: key.exists() and "provider" in provider.output(), 30, "the provider to make its key")
    provider.stop()
    assert mode(key) == 0o600 and mode(data_dir()) == 0o700


def test_a_wasm_run_keeps_its_modules_and_history_private(
    tmp_path: Path, wasm_programs: dict[str, Path]
) -> None:
    ran = berth(tmp_path / "config.toml", "wasm", "run", str(wasm_programs["hello"]))
    assert ran.returncode == 0, ran.stderr
    assert (data_dir() / "tasks.sqlite").is_file() and any((data_dir() / "modules").rglob("*.wasm"))
    assert_private(data_dir())
    assert_private(state_dir())


def test_read_only_refuses_to_start_a_provider_or_a_broker(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    port = free_port()
    key = tmp_path / "p.key"
    for verb in (
        ["provider", "--broker", f"http://127.0.0.1:{port}", "--key", str(key)],
        ["broker", "serve", "--listen", f"127.0.0.1:{port}", "--data", str(tmp_path / "b")],
    ):
        done = berth(config, "--read-only", *verb, timeout=30)
        shown = " ".join(verb[:2]) if verb[0] == "broker" else verb[0]
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip() == (
            f"berth: berth runs read-only (--read-only): `{shown}` changes state and was not run."
        )
    assert not key.exists() and not (tmp_path / "b").exists()  # nothing made, nothing listened
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
