"""The `berth` command line: version, help, config check, errors as sentences."""

import subprocess
import sys
from pathlib import Path

import pytest

from backends import __version__
from tui.cli import main


def run_berth(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_names_the_error_log(isolated_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "Errors and tracebacks are logged to" in out
    assert str(isolated_home / "state" / "berth" / "berth.log") in out


def test_config_check_reports_a_broken_file_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[[hosts]]\nname = "a"\nurl = "ftp://a"\n')
    result = run_berth("--config", str(path), "config", "check")
    assert result.returncode == 2
    assert f"{path}, line 3: hosts[0].url: expected local or ssh://user@host[:port]" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_starting_the_console_on_a_broken_config_refuses_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[ui\n")
    result = run_berth("--config", str(path))
    assert result.returncode == 2
    assert "not valid TOML" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "[ui\n"


def test_unknown_host_is_a_sentence(tmp_path: Path) -> None:
    result = run_berth("--config", str(tmp_path / "none.toml"), "--host", "nope")
    assert result.returncode == 1
    assert "No host called 'nope'" in result.stderr


def test_config_check_on_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(tmp_path / "absent.toml"), "config", "check"])
    assert exit_info.value.code == 0
    assert "not found, using defaults; 1 host(s) (local)" in capsys.readouterr().out


def test_config_check_names_keymap_entries_that_would_be_skipped(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[ui.keymap]\n"containers.remove" = "ctrl+d"\n"app.quit" = "ctrl+q"\n"no.such" = "x"\n')
    result = run_berth("--config", str(path), "config", "check")
    assert result.returncode == 2
    assert "'containers.remove' destroys something and may not sit on 'ctrl+d'" in result.stderr
    assert "no binding has the id 'no.such'" in result.stderr
    assert "'app.quit'" not in result.stderr
