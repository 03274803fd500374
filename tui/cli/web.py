"""`berth web`: the same console in a browser, on loopback unless told otherwise, behind a token."""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import signal
import sys

import click

from tui.cli.context import CliContext


@click.command("web")
@click.option(
    "--listen", default="127.0.0.1:8000", show_default=True, help="Address to serve on (HOST:PORT)."
)
@click.pass_obj
def web(obj: CliContext, listen: str) -> None:
    """Serve the console to a browser: each page opens its own berth, as this user, on this host.

    It makes a token at start and prints the URL that carries it (open that one); a browser
    without it, or a page from another site, gets nothing. It listens on loopback by default;
    reach it from elsewhere through an SSH tunnel (ssh -L 8000:127.0.0.1:8000 HOST).
    """
    from aiohttp import web as aioweb  # loaded only for this verb

    from backends.errors import Unreachable
    from backends.parse_addresses import parse_listen
    from tui import web_server

    host, port = parse_listen(listen)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        click.echo(
            f"berth web: serving on {host}, not loopback, over plain HTTP: the token can be read "
            "on the way; prefer an SSH tunnel.",
            err=True,
        )
    warning = web_server.version_warning()
    if warning:
        click.echo(f"berth web: {warning}", err=True)
    argv = [sys.executable, "-c", "from tui.cli import main; main()", "--config", str(obj.config_path)]
    if obj.host:
        argv += ["--host", obj.host]
    if obj.read_only:
        argv.append("--read-only")  # every page's console is read-only too
    token = web_server.make_token()
    app = web_server.WebConsole(shlex.join(argv), token).build()

    async def serve() -> None:
        runner = aioweb.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
        await runner.setup()
        try:
            await aioweb.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise Unreachable(
                f"berth web cannot listen on {host}:{port}: {exc.strerror or exc}.", "Pick another --listen."
            ) from None
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"berth web: http://{shown}:{bound}/?token={token} (Ctrl+C stops it)", err=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(serve())
