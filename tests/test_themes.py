"""Theme files: the shipped ones load; a broken user file is named and skipped."""

from pathlib import Path

import pytest

from backends.errors import Invalid
from themes.loader import SHIPPED_DIR, load_themes, theme_from_toml


def test_shipped_themes_load() -> None:
    loaded = load_themes(SHIPPED_DIR)
    assert loaded.errors == []
    names = {t.name for t in loaded.themes}
    assert {"berth-dark", "berth-light", "berth-high-contrast", "berth-amber"} <= names
    light = next(t for t in loaded.themes if t.name == "berth-light")
    assert light.dark is False


BROKEN = {
    "syntax.toml": ('name = "x"\nprimary = \n', "not valid TOML"),
    "colour.toml": ('name = "x"\nprimary = "not-a-colour"\n', "primary: 'not-a-colour' is not a colour"),
    "noname.toml": ('primary = "#fff"\n', "name: a non-empty string is required"),
    "unknown.toml": ('name = "x"\nprimary = "#fff"\nshade = "#000"\n', "unknown key 'shade'"),
    "dark.toml": ('name = "x"\nprimary = "#fff"\ndark = "yes"\n', "dark: expected true or false"),
}


@pytest.mark.parametrize("filename", sorted(BROKEN))
def test_broken_theme_is_reported_by_name(tmp_path: Path, filename: str) -> None:
    text, expected = BROKEN[filename]
    path = tmp_path / filename
    path.write_text(text)
    with pytest.raises(Invalid) as caught:
        theme_from_toml(path)
    assert f"theme {filename}:" in str(caught.value)
    assert expected in str(caught.value)


def test_user_themes_override_and_broken_ones_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#123456"\ndark = false\n')
    (tmp_path / "berth-dark.toml").write_text('name = "berth-dark"\nprimary = "#ff0000"\n')
    (tmp_path / "broken.toml").write_text("name = \n")
    loaded = load_themes(SHIPPED_DIR, tmp_path)
    by_name = {t.name: t for t in loaded.themes}
    assert "mine" in by_name
    assert by_name["berth-dark"].primary == "#ff0000"
    assert len(loaded.errors) == 1 and "broken.toml" in loaded.errors[0]
