"""What the `berth` command says when something fails (issue 15, item 24), run as a user would: a
sentence in plain words with the command line's advice, never aiohttp's internals, never the
console's advice ("berth retries.", "Refresh the list"), never a name twice."""

from pathlib import Path

import pytest
from broker_helpers import Procs, free_port
from cli_helpers import berth
from engines.dockerd import DockerEngine
from engines.sshd import SshServer
from ssh_helpers import SshHost, known_hosts

CONSOLE_ONLY = ("berth retries", "keeps retrying", "Refresh the list", "ssl:default", "Connect call failed")


def said(done: object) -> str:
    """The one sentence on stderr, after checking nothing the console says leaked into it."""
    stderr = str(getattr(done, "stderr", ""))
    assert not any(words in stderr for words in CONSOLE_ONLY), stderr
    assert stderr.count("\n") == 1, stderr
    return stderr.strip()


def test_what_cannot_be_reached_says_why_in_plain_words(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    port = free_port()  # nobody listens there
    broker = berth(config, "broker", "providers", "--broker", f"http://127.0.0.1:{port}")
    assert broker.returncode == 1
    assert said(broker) == (
        f"berth: Cannot reach the broker at http://127.0.0.1:{port}: Connection refused. "
        "Is `berth broker serve` running there? Check --broker (BERTH_BROKER_URL)."
    )

    # A broker URL that carries a password: the sentence shows the URL without it.
    secret = berth(config, "broker", "status", "--broker", f"http://ops:hunter2@127.0.0.1:{port}")
    assert secret.returncode == 1
    assert said(secret).startswith(f"berth: Cannot reach the broker at http://ops:***@127.0.0.1:{port}: ")

    host = berth(config, "--host", f"ssh://nobody@127.0.0.1:{port}", "ps")
    assert host.returncode == 1
    assert said(host) == (
        f"berth: Cannot reach nobody@127.0.0.1:{port}: Connection refused. "
        "Check that the host is up and its SSH port open, then run the command again."
    )
    probed = berth(config, "--host", f"ssh://nobody@127.0.0.1:{port}", "hosts")
    assert probed.returncode == 1
    row = probed.stdout.splitlines()[1]
    assert row.endswith(f"Cannot reach nobody@127.0.0.1:{port}: Connection refused."), row

    config.write_text('[[hosts]]\nname = "box"\nurl = "local"\ndocker_socket = "/nonexistent/docker.sock"\n')
    docker = berth(config, "ps")
    assert docker.returncode == 1
    assert said(docker) == (
        "berth: Docker on box does not answer at /nonexistent/docker.sock (No such file or directory). "
        "Check that the engine runs and that you may use its socket."
    )


def test_a_broker_that_asks_for_a_token_names_the_flag(procs: Procs, tmp_path: Path) -> None:
    broker = procs.broker(tmp_path / "broker", None, "--tokens", "admin:root=r00t")
    refused = berth(tmp_path / "config.toml", "broker", "providers", "--broker", broker.url)
    assert refused.returncode == 1
    assert said(refused) == (
        "berth: This broker asks for a token. "
        "Pass a token of the broker with --token TOKEN or BERTH_BROKER_TOKEN."
    )
    ran = berth(tmp_path / "config.toml", "broker", "providers", "--broker", broker.url, "--token", "r00t")
    assert ran.returncode == 0, ran.stderr


@pytest.mark.engines
def test_ssh_refusals_name_the_login_once_and_say_which_flag(
    sshd: SshServer, ssh_host: SshHost, tmp_path: Path
) -> None:
    ssh_host(sshd)  # its key is known
    config = tmp_path / "config.toml"
    login = f"no-such-user@127.0.0.1:{sshd.port}"
    denied = berth(config, "--host", f"ssh://{login}", "ps")
    assert denied.returncode == 1
    assert said(denied) == (
        f"berth: Permission denied for {login}. "
        "Check the user and the key: identity in the inventory, IdentityFile, or ssh-agent."
    )

    known_hosts().unlink()  # a host never seen before
    unknown = berth(config, "--host", f"ssh://{login}", "ps")
    assert unknown.returncode == 1
    advice = "Check it with the host's admin, then run the command again with --accept-new."
    assert said(unknown).endswith(advice), unknown.stderr


@pytest.mark.engines
def test_an_engine_404_gives_the_command_lines_advice(dockerd: DockerEngine, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "".join(f'[[hosts]]\nname = "{n}"\nurl = "local"\ndocker_socket = "{dockerd.socket}"\n' for n in "ab")
    )
    moved = berth(config, "image", "move", "berth-test/no-such-image:1", "--from", "a", "--to", "b")
    assert moved.returncode == 1
    sentence = said(moved)
    assert "berth-test/no-such-image:1" in sentence, sentence
    assert sentence.endswith("Check the name; it may have been removed meanwhile."), sentence
