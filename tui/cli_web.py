"""`berth web`: the same console in a browser (textual-serve), on loopback unless told otherwise."""

from __future__ import annotations

import ipaddress
import shlex
import sys

import click

from tui.cli import CliContext, cli


@cli.command("web")
@click.option(
    "--listen", default="127.0.0.1:8000", show_default=True, help="Address to serve on (HOST:PORT)."
)
@click.pass_obj
def web(obj: CliContext, listen: str) -> None:
    """Serve the console to a browser: each page opens its own berth, as this user, on this host.

    Anyone who reaches the address gets the console, so it listens on loopback by default; reach
    it from elsewhere through an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST).
    """
    from textual_serve.server import Server  # loaded only for this verb

    from backends.broker.server import parse_listen

    host, port = parse_listen(listen)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(
            f"berth web: serving on {host}, not loopback: anyone who reaches it gets a console.", err=True
        )
    argv = [sys.executable, "-c", "from tui.cli import main; main()", "--config", str(obj.config_path)]
    if obj.host:
        argv += ["--host", obj.host]
    if obj.read_only:
        argv.append("--read-only")  # every page's console is read-only too
    click.echo(f"berth web: http://{host}:{port}/ (Ctrl+C stops it)", err=True)
    Server(shlex.join(argv), host=host, port=port, title="berth").serve()
