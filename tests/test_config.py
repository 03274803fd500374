"""Config file: typed round trip, specific errors with file/line/key path, safe saving."""

import os
import stat
from pathlib import Path

import pytest

from backends.config import (
    BrokerConfig,
    Config,
    HostConfig,
    UiConfig,
    load_config,
    locate,
    save_config,
)
from backends.errors import Invalid


def full_config() -> Config:
    return Config(
        ui=UiConfig(theme="berth-amber", read_only=True, keymap={"app.quit": "ctrl+q", "pane.next": "n"}),
        hosts=[
            HostConfig("local"),
            HostConfig(
                "web-1",
                "ssh://ops@web1.example:2222",
                identity="~/.ssh/id_ed25519",
                jump="v6",
                docker_socket="/run/user/1000/docker.sock",
                lxd_socket="/var/snap/lxd/common/lxd/unix.socket",
                read_only=True,
            ),
            HostConfig("v6", "ssh://[::1]"),
        ],
        broker=BrokerConfig(
            url="https://broker:4080", listen="127.0.0.1:4999", data_dir="/srv/b", tokens=["t1"]
        ),
    )


def test_missing_file_gives_a_single_local_host(tmp_path: Path) -> None:
    config = load_config(tmp_path / "nope.toml")
    assert [(h.name, h.url) for h in config.hosts] == [("local", "local")]
    assert config.ui.theme == "berth-dark"


def test_round_trip_keeps_every_value(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = full_config()
    save_config(original, path)
    loaded = load_config(path)
    assert loaded == original
    assert loaded.hosts[1].ssh.user == "ops" and loaded.hosts[1].ssh.port == 2222
    assert loaded.hosts[2].ssh.host == "::1" and loaded.hosts[2].ssh.port is None


def test_save_is_private_and_keeps_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    first = full_config()
    save_config(first, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_text()
    first.ui.theme = "berth-light"
    save_config(first, path)
    assert path.with_name("config.toml.bak").read_text() == before
    assert load_config(path).ui.theme == "berth-light"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".config.toml.")], "temp file left"


MALFORMED = {
    "bad TOML syntax": (
        '[ui]\ntheme = "x"\nread_only = \n',
        "line 3: not valid TOML",
    ),
    "wrong type": (
        '[ui]\ntheme = "berth-dark"\nread_only = "yes"\n',
        "line 3: ui.read_only: expected true or false, got a string",
    ),
    "unknown host scheme": (
        '[[hosts]]\nname = "a"\n\n[[hosts]]\nname = "b"\nurl = "ssh://u@h:22"\n\n'
        '[[hosts]]\nname = "c"\nurl = "http://c.example"\n',
        "line 10: hosts[2].url: expected local or ssh://user@host[:port], got 'http://c.example'",
    ),
    "duplicate host name": (
        '[[hosts]]\nname = "web"\nurl = "local"\n[[hosts]]\nname = "web"\nurl = "ssh://web"\n',
        "line 5: hosts[1].name: duplicate host name 'web' (first used by hosts[0])",
    ),
    "jump to nowhere": (
        '[[hosts]]\nname = "a"\nurl = "ssh://u@a"\njump = "bastion"\n',
        "line 4: hosts[0].jump: expected the name of another host or ssh://user@host[:port], got 'bastion'",
    ),
    "unknown key": (
        '[broker]\nlisten = "127.0.0.1:4080"\nlisen = "x"\n',
        "line 3: broker.lisen: unknown key",
    ),
    "missing host name": (
        '[[hosts]]\nurl = "local"\n',
        "line 1: hosts[0].name: is required",
    ),
    "port out of range": (
        '[[hosts]]\nname = "a"\nurl = "ssh://a:70000"\n',
        "line 3: hosts[0].url: port 70000 is out of range",
    ),
    "keymap value type": (
        '[ui.keymap]\n"app.quit" = 3\n',
        'line 2: ui.keymap."app.quit": expected a string, got an integer',
    ),
    "bad listen address": (
        '[broker]\nlisten = "4080"\n',
        "line 2: broker.listen: expected HOST:PORT",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_names_file_line_and_key_and_is_not_touched(tmp_path: Path, case: str) -> None:
    text, expected = MALFORMED[case]
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.utime(path, (1_000_000, 1_000_000))
    with pytest.raises(Invalid) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line "), message
    assert expected in message
    # A save attempt must refuse rather than replace the user's (broken) file.
    with pytest.raises(Invalid, match="Not saving"):
        save_config(Config(), path)
    assert path.read_text() == text
    assert path.stat().st_mtime == 1_000_000
    assert not path.with_name("config.toml.bak").exists()


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b"[ui]\ntheme = '\xff'\n")
    with pytest.raises(Invalid, match="not UTF-8"):
        load_config(path)


def test_locate_follows_tables_and_arrays_of_tables() -> None:
    text = '[ui]\ntheme = "x"\n[ui.keymap]\n"a.b" = "k"\n[[hosts]]\nname = "a"\n[[hosts]]\n# c\nname = "b"\n'
    assert locate(text, ("ui", "theme")) == 2
    assert locate(text, ("ui", "keymap", "a.b")) is not None
    assert locate(text, ("hosts", 1, "name")) == 9
    assert locate(text, ("hosts", 1, "url")) == 7  # falls back to the table's header
    assert locate(text, ("broker", "listen")) is None


def test_berth_config_env_points_at_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.toml"
    path.write_text('[ui]\ntheme = "berth-light"\n')
    monkeypatch.setenv("BERTH_CONFIG", str(path))
    assert load_config().ui.theme == "berth-light"
