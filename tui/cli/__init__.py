"""The `berth` command: with no verb it opens the console; verbs run the same backends headless.

Each verb lives in the module that `VERBS` names and is imported only when it runs (or its help
is shown), so `berth config path` does not load what `berth broker serve` needs.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import click

from backends import __version__, paths
from backends.errors import BerthError, Invalid
from tui.cli.context import CliContext
from tui.cli.lazy_group import LazyGroup
from tui.error_log import log_unexpected, setup_error_log

VERBS = {
    "broker": "tui.cli.broker:broker",
    "config": "tui.cli.config:config",
    "cp": "tui.cli.cp:cp",
    "df": "tui.cli.volumes:df",
    "hosts": "tui.cli.hosts:hosts",
    "image": "tui.cli.docker:image",
    "images": "tui.cli.docker:images",
    "login": "tui.cli.pull:login",
    "logs": "tui.cli.docker:logs",
    "member": "tui.cli.members:member",
    "members": "tui.cli.members:members",
    "network": "tui.cli.networks:network",
    "networks": "tui.cli.networks:networks",
    "provider": "tui.cli.broker:provider_cmd",
    "ps": "tui.cli.docker:ps",
    "pull": "tui.cli.pull:pull",
    "restart": "tui.cli.docker:restart",
    "rm": "tui.cli.docker:rm",
    "run": "tui.cli.run:run",
    "start": "tui.cli.docker:start",
    "stop": "tui.cli.docker:stop",
    "submit": "tui.cli.broker:submit_cmd",
    "update": "tui.cli.update:update",
    "volume": "tui.cli.volumes:volume",
    "volumes": "tui.cli.volumes:volumes",
    "wasm": "tui.cli.wasm:wasm",
    "web": "tui.cli.web:web",
}
"""Each top-level verb and the "module:attribute" of its click command."""


class BerthGroup(LazyGroup):
    """The root command; its help ends with where berth's files are, resolved at run time."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Name the config file, the themes folder and the error log."""
        # Written unwrapped: a path broken across lines cannot be copied.
        formatter.write_paragraph()
        formatter.write(f"Config file: {paths.config_file()} (or --config / BERTH_CONFIG)\n")
        formatter.write(f"Your themes: {paths.user_themes_dir()}\n")
        formatter.write(f"Errors and tracebacks are logged to {paths.error_log()}\n")


@click.group(
    cls=BerthGroup,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    lazy_subcommands=VERBS,
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
        # No collector passes while the console loads (~10 % of its start): what it loads lives as
        # long as it does; once its frame is up the app freezes all that and turns the collector on.
        gc.disable()
        from tui.app import BerthApp  # Textual loads only when the console is wanted

        app = BerthApp(ctx.obj.load(), host, read_only=read_only)
        app.run()
        sys.exit(app.return_code or 0)



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
