"""`berth config …`: where the config file is, and whether each of its entries would apply."""

from __future__ import annotations

import click

from backends.errors import Invalid
from tui.cli.context import CliContext


@click.group()
def config() -> None:
    """Look at the config file."""


@config.command("path")
@click.pass_obj
def config_path_cmd(obj: CliContext) -> None:
    """Print the path of the config file in use."""
    click.echo(obj.config_path)


@config.command("check")
@click.pass_obj
def config_check(obj: CliContext) -> None:
    """Validate the config file; print what is wrong (file, line, key) or a summary."""
    loaded = obj.load()
    problems = theme_problems(loaded.ui.theme)
    if loaded.ui.keymap:
        from tui.keymap import binding_sections, check_keymap  # the console's bindings: only when asked

        problems += check_keymap(loaded.ui.keymap, binding_sections())[1]
    for problem in problems:
        click.echo(f"{obj.config_path}: {problem}", err=True)
    if problems:  # no summary then: it would name a theme or keys that will not apply as if fine
        raise Invalid(
            f"{len(problems)} entr{'y' if len(problems) == 1 else 'ies'} of the config would not apply."
        )
    state = "found" if obj.config_path.exists() else "not found, using defaults"
    hosts = ", ".join(h.name for h in loaded.hosts)
    click.echo(f"{obj.config_path}: {state}; {len(loaded.hosts)} host(s) ({hosts}), theme {loaded.ui.theme}.")


def theme_problems(wanted: str) -> list[str]:
    """What is wrong with `[ui] theme` (a name no installed theme has), as the console would find it."""
    from backends.paths import user_themes_dir
    from themes.loader import DEFAULT_THEME, SHIPPED_DIR, load_themes

    loaded = load_themes(SHIPPED_DIR, user_themes_dir())
    names = sorted(theme.name for theme in loaded.themes)
    if wanted in names:
        return []
    return [
        f"ui.theme: no installed theme is called {wanted!r} (berth would use {DEFAULT_THEME}); "
        f"installed: {', '.join(names)}.",
        *loaded.errors,
    ]
