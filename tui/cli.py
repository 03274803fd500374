"""The `berth` command: with no verb it opens the console; verbs run the same backends headless."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import click

from backends import __version__, paths
from backends.config import Config, HostConfig, adhoc_host, load_config
from backends.errors import BerthError, Denied, Invalid, NotFound
from backends.hosts import HostSession, Sessions
from tui.error_log import log_unexpected, setup_error_log
from tui.read_only import refusal

ALL_HOSTS = "all"
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Engine(Protocol):
    """A backend on one host's engine socket (Docker, LXD) that holds connections to close."""

    async def close(self) -> None:
        """Close its connections."""


E = TypeVar("E", bound=Engine)


async def on_host(
    sessions: Sessions,
    host: HostConfig,
    connect: Callable[[HostSession], Awaitable[E]],
    work: Callable[[E], Awaitable[T]],
) -> T:
    """Run `work` on `host`'s engine (`connect` makes its backend from the host's session, through
    its SSH connection if remote), then close the backend."""
    backend = await connect(sessions.get(host))
    try:
        return await work(backend)
    finally:
        await backend.close()


@dataclass
class CliContext:
    """What the global options chose, handed to every verb."""

    config_path: Path
    host: str | None
    json: bool = False
    accept_new: bool = False
    read_only: bool = False

    def load(self) -> Config:
        """The validated config (defaults when the file does not exist)."""
        return load_config(self.config_path)

    def sessions(self, config: Config) -> Sessions:
        """Host sessions for one command, honouring --accept-new."""
        return Sessions(config, accept_new=self.accept_new)

    def run_on(
        self,
        connect: Callable[[HostSession], Awaitable[E]],
        work: Callable[[E], Awaitable[T]],
        host: str | None = None,
    ) -> T:
        """Run `work` on the chosen host's engine (see `on_host`), closing every connection after."""

        async def go() -> T:
            config = self.load()
            sessions = self.sessions(config)
            try:
                return await on_host(sessions, self.host_config(config, host), connect, work)
            finally:
                await sessions.close()

        return asyncio.run(go())

    def refuse_if_read_only(self, hosts: list[HostConfig] | None = None) -> None:
        """Raise `Denied` (exit 1) when berth runs read-only, or when `hosts` (default: the ones
        --host chose) are read-only; before anything is connected to."""
        config = self.load()
        if hosts is None:
            hosts = self.hosts(config)
        why = refusal(config, hosts, flag=self.read_only)
        if why:
            ctx = click.get_current_context(silent=True)
            verb = ctx.command_path.removeprefix("berth ") if ctx else "this command"
            raise Denied(f"{why}: `{verb}` changes state and was not run.")

    def hosts(self, config: Config) -> list[HostConfig]:
        """The hosts --host chose: every one for `all`, else the one `host_config` names."""
        if self.host == ALL_HOSTS:
            return list(config.hosts)
        return [self.host_config(config)]

    def host_config(self, config: Config, name: str | None = None) -> HostConfig:
        """Host `name`, else --host's: an inventory name or an ssh:// URL; the first by default."""
        wanted = name or self.host
        if wanted is None:
            return config.hosts[0]
        if wanted == ALL_HOSTS:
            raise Invalid("This command works on one host.", "Give --host an inventory name or a URL.")
        if wanted.startswith("ssh://"):
            return adhoc_host(wanted)
        found = config.host(wanted)
        if found is None:
            known = ", ".join(h.name for h in config.hosts)
            raise NotFound(f"No host {wanted!r} in {self.config_path}.", f"Known hosts: {known}.")
        return found


def changes_state(*, on_host: bool = True) -> Callable[[F], F]:
    """Mark a verb that changes state: refused under --read-only or `[ui] read_only`, and (with
    `on_host`) on a host marked read_only; put it under the click decorators."""

    def wrap(command: F) -> F:
        @functools.wraps(command)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            obj = click.get_current_context().find_object(CliContext)
            if obj is not None:
                obj.refuse_if_read_only(None if on_host else [])
            return command(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap


class BerthGroup(click.Group):
    """The root command; its help ends with where berth's files are, resolved at run time."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Name the config file, the themes folder and the error log."""
        # Written unwrapped: a path broken across lines cannot be copied.
        formatter.write_paragraph()
        formatter.write(f"Config file: {paths.config_file()} (or --config / BERTH_CONFIG)\n")
        formatter.write(f"Your themes: {paths.user_themes_dir()}\n")
        formatter.write(f"Errors and tracebacks are logged to {paths.error_log()}\n")


@click.group(
    cls=BerthGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, "-V", "--version", prog_name="berth")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file to use instead of the default.",
)
@click.option(
    "--host",
    help="Host to work on: an inventory name, `all`, or ssh://user@host[:port] (default: the first).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--accept-new",
    is_flag=True,
    help="Trust and record host keys never seen before (a changed key is always refused).",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Look, never touch: verbs that change state are hidden in the console and refused here.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    config_path: Path | None,
    host: str | None,
    as_json: bool,
    accept_new: bool,
    read_only: bool,
) -> None:
    """berth: a keyboard-driven console for Docker, LXD and WASI workloads, here and over SSH.

    With no command it opens the console.
    """
    ctx.obj = CliContext(config_path or paths.config_file(), host, as_json, accept_new, read_only)
    if ctx.invoked_subcommand is None:
        from tui.app import BerthApp  # Textual loads only when the console is wanted

        app = BerthApp(ctx.obj.load(), host, read_only=read_only)
        app.run()
        sys.exit(app.return_code or 0)


@cli.group()
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


# The verbs register themselves on `cli`; imported here so `berth --help` lists them.
from tui import (  # noqa: E402, F401
    cli_broker,
    cli_docker,
    cli_hosts,
    cli_members,
    cli_wasm,
    cli_wasm_tasks,
    cli_web,
)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run `cli`, turning errors into one sentence and an exit code."""
    setup_error_log()
    try:
        result = cli.main(args=argv, prog_name="berth", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        sys.exit(130)
    except BerthError as exc:
        from backends.audit import redact  # a URL's password never reaches the terminal either

        click.echo(f"berth: {redact(exc.for_cli())}", err=True)  # the CLI's advice, not the console's
        sys.exit(2 if isinstance(exc, Invalid) else 1)
    except Exception as exc:
        click.echo(f"berth: {log_unexpected(exc)}", err=True)
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
