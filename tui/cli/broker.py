"""`berth broker …`, `berth provider` and `berth submit`: the offloading broker from the shell."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from backends import paths
from backends.audit import redact
from backends.broker.auth import printable
from backends.broker.client import DEFAULT_URL, BrokerClient
from backends.broker.core import bound_settings
from backends.broker.figures import FIGURES
from backends.broker.tasks import TaskRequest
from backends.errors import BerthError
from backends.units import COPIES, COUNT, WORKERS, written_duration, written_size
from tui.cli.context import CliContext, changes_state
from tui.cli.params import Duration, Parsed, Size, limits_options
from tui.format import age, table

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

BROKER_URL = click.option(
    "--broker",
    "url",
    envvar="BERTH_BROKER_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The broker's base URL (env BERTH_BROKER_URL).",
)
TOKEN = click.option(
    "--token",
    envvar="BERTH_BROKER_TOKEN",
    help="The broker's admin or client token, if it asks for one (env BERTH_BROKER_TOKEN, "
    "which ps does not show).",
)


def _echo_rows(obj: CliContext, rows: list[dict[str, Any]], columns: list[str], empty: str) -> None:
    if obj.json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(empty)
        return
    # What a provider says about itself (name, host) reaches a terminal: no escape codes in it.
    table = [[printable(str(r.get(c) if r.get(c) is not None else "-")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(cells[i]) for cells in table)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for cells in table:
        click.echo("  ".join(v.ljust(w) for v, w in zip(cells, widths, strict=True)).rstrip())


def _with_client(url: str, token: str | None, act: Callable[[BrokerClient], Awaitable[T]]) -> T:
    """`act` with a client of the broker at `url` that tries once (a command says at once when
    the broker is not there)."""

    async def go() -> T:
        async with BrokerClient(url, token, patience=0) as client:
            return await act(client)

    return asyncio.run(go())


def _call(url: str, token: str | None, method: str, path: str) -> Any:
    return _with_client(url, token, lambda client: client.call(method, path, retry=False))


Setting = tuple[str, str, Any, str]
"""A setting of `berth broker serve`: (name, kind: size, duration or count, default, help)."""

CONNECTION_SETTINGS: list[Setting] = [
    ("header_timeout", "duration", 10.0, "Time a client has to send a request's headers."),
    ("body_timeout", "duration", 30.0, "Longest pause within a request's body."),
    ("idle_timeout", "duration", 30.0, "Time an idle keep-alive connection is kept open."),
    ("max_upload", "size", 64 * 1024 * 1024, "Largest module accepted."),
    ("queue_limit", "count", 100_000, "Most tasks waiting or running at once (more: HTTP 429)."),
]
"""The serve flags for connections and the queue (the task bounds come from `bound_settings()`)."""


def _setting_options(settings: list[Setting]) -> Callable[[F], F]:
    """A flag and env var BERTH_BROKER_<NAME> for each setting (the bounds among the broker's
    settings are declared with them, in backends.broker.bounds), with its default and help."""
    types: dict[str, click.ParamType[Any]] = {
        "size": Size(),
        "duration": Duration(),
        "count": Parsed(COUNT, "count"),
    }

    def add(command: F) -> F:
        for name, kind, default, help_text in reversed(settings):
            command = click.option(
                "--" + name.replace("_", "-"),
                name,
                envvar="BERTH_BROKER_" + name.upper(),
                type=types[kind],
                default=_written(kind, default),  # as one would write it: 256MiB, 7d
                show_default=True,
                help=help_text,
            )(command)
        return command

    return add


def _written(kind: str, value: Any) -> Any:
    if kind == "size":
        return written_size(value)
    return written_duration(value) if kind == "duration" else value


@click.group()
def broker() -> None:
    """Run the wasm offloading broker, and pair and watch its providers."""


@broker.command("serve")
@click.option(
    "--listen",
    envvar="BERTH_BROKER_LISTEN",
    default="127.0.0.1:4080",
    show_default=True,
    help="Address to listen on (env BERTH_BROKER_LISTEN).",
)
@click.option(
    "--data",
    "data_dir",
    envvar="BERTH_BROKER_DATA",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the broker's database and modules (default: berth's data folder).",
)
@click.option("--tls-cert", envvar="BERTH_BROKER_TLS_CERT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tls-key", envvar="BERTH_BROKER_TLS_KEY", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tokens",
    envvar="BERTH_BROKER_TOKENS",
    default="",
    help="Tokens ROLE:NAME=TOKEN,… (ROLE admin or client; NAME=TOKEN is a client). On the command "
    "line they show in ps: prefer env BERTH_BROKER_TOKENS or --tokens-file. None: loopback only.",
)
@click.option(
    "--tokens-file",
    envvar="BERTH_BROKER_TOKENS_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File of tokens, one ROLE:NAME=TOKEN a line, # comments; only its owner may read it "
    "(env BERTH_BROKER_TOKENS_FILE).",
)
@click.option(
    "--allow-origin",
    "origins",
    multiple=True,
    envvar="BERTH_BROKER_ORIGINS",
    help="A web app's origin (scheme://host[:port]) whose pages may call the broker; repeatable "
    "(env BERTH_BROKER_ORIGINS). Any other browser request is refused.",
)
@click.option(
    "--insecure-no-tokens",
    is_flag=True,
    help="Listen beyond loopback without tokens: everyone who reaches the broker is an admin.",
)
@_setting_options(CONNECTION_SETTINGS)
@_setting_options(bound_settings())
@changes_state(on_host=False)
def broker_serve(
    listen: str,
    data_dir: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tokens: str,
    tokens_file: Path | None,
    origins: tuple[str, ...],
    insecure_no_tokens: bool,
    header_timeout: float,
    body_timeout: float,
    idle_timeout: float,
    max_upload: int,
    queue_limit: int,
    **bounds: Any,
) -> None:
    """Serve the broker until interrupted (SIGINT/SIGTERM)."""
    from click.core import ParameterSource

    from backends.broker.auth import load_tokens, origins_from
    from backends.broker.core import Broker, BrokerSettings
    from backends.broker.http_guard import HttpLimits
    from backends.broker.server import running, tls_context
    from backends.parse_addresses import parse_listen

    if tokens and click.get_current_context().get_parameter_source("tokens") == ParameterSource.COMMANDLINE:
        click.echo(
            "berth: --tokens on the command line is shown to every user by ps; "
            "use --tokens-file or env BERTH_BROKER_TOKENS.",
            err=True,
        )
    host, port = parse_listen(listen)
    settings = BrokerSettings(
        data=data_dir or paths.data_dir() / "broker",
        max_upload=max_upload,
        queue_limit=queue_limit,
        **bounds,
        tokens=load_tokens(tokens, tokens_file),
        origins=origins_from(origins),
    )
    tls = tls_context(tls_cert, tls_key)
    limits = HttpLimits(header_timeout=header_timeout, body_timeout=body_timeout, keepalive=idle_timeout)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        serving = running(
            Broker(settings), host, port, tls, limits=limits, insecure_no_tokens=insecure_no_tokens
        )
        async with serving as url:
            click.echo(f"berth broker listening on {url} (data in {settings.data})", err=True)
            await stop.wait()
        click.echo("berth broker stopped", err=True)

    asyncio.run(serve())


@broker.command("pending")
@BROKER_URL
@TOKEN
@click.pass_obj
def broker_pending(obj: CliContext, url: str, token: str | None) -> None:
    """Provider keys waiting to be paired."""
    rows = _call(url, token, "GET", "/api/v1/providers/pending")
    _echo_rows(obj, rows, ["fingerprint", "name", "host", "workers", "state"], "No provider is waiting.")


_PROVIDER_FIGURES = ["running", "in_flight", "done", "failed", "cancelled"]
"""The figures `berth broker providers` shows of each provider (see backends.broker.figures)."""


def figures_help() -> str:
    """What each figure means, for the help of the verbs that show them."""
    since = "Done, failed, cancelled and retried count since the broker started."
    return "\n\n".join([*(f"{f.label}: {f.means}." for f in FIGURES), since])


@broker.command("providers")
@BROKER_URL
@TOKEN
@click.pass_obj
def broker_providers(obj: CliContext, url: str, token: str | None) -> None:
    """Paired providers: online, draining or offline, with their figures (running, in flight,
    done, failed, cancelled: see `berth broker status --help`)."""
    rows = _call(url, token, "GET", "/api/v1/providers")
    _echo_rows(
        obj,
        rows,
        ["name", "fingerprint", "state", "host", "workers", *_PROVIDER_FIGURES],
        "No provider is paired yet.",
    )


@broker.command("status", epilog=figures_help())
@BROKER_URL
@TOKEN
@click.pass_obj
def broker_status(obj: CliContext, url: str, token: str | None) -> None:
    """The broker's figures, as the console's Providers pane shows them (--json: as the API)."""
    status = _call(url, token, "GET", "/api/v1/status")
    if obj.json:
        click.echo(json.dumps(status, indent=2))
        return
    click.echo(f"broker {printable(str(status.get('name', '')))} at {url}, up {age(float(status['uptime']))}")
    click.echo(table(["FIGURE", "VALUE"], [[f.label, f"{status.get(f.key, 0):,}"] for f in FIGURES]))


@broker.command("pair")
@click.argument("fingerprint")
@click.option("--name", required=True, help="The name the provider is shown under.")
@BROKER_URL
@TOKEN
@changes_state(on_host=False)
def broker_pair(fingerprint: str, name: str, url: str, token: str | None) -> None:
    """Admit a waiting provider by its key's fingerprint (see `berth broker pending`)."""
    _with_client(url, token, lambda client: client.pair(fingerprint, name))
    click.echo(f"Paired {fingerprint} as {name!r}; it is admitted when it next connects.")


@broker.command("unpair")
@click.argument("fingerprint")
@BROKER_URL
@TOKEN
@changes_state(on_host=False)
def broker_unpair(fingerprint: str, url: str, token: str | None) -> None:
    """Revoke a paired provider's key: it is disconnected, and refused until paired again."""
    _with_client(url, token, lambda client: client.act_on_providers("unpair", [fingerprint]))
    click.echo(f"Unpaired {fingerprint}: it is refused from now on (pair it again to let it in).")


@click.command("provider")
@BROKER_URL
@click.option(
    "--workers",
    type=Parsed(WORKERS, "workers"),
    default="1",
    show_default=True,
    help="Worker processes: a number or `max` (one per core).",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ed25519 private key (made if missing; default in berth's data folder).",
)
@click.option("--name", default="", help="The name it asks to be paired under (default: the host name).")
@changes_state(on_host=False)
def provider_cmd(url: str, workers: int, key_file: Path | None, name: str) -> None:
    """Run tasks for a broker until SIGTERM (then finish the running ones and exit)."""
    from backends.broker import keys
    from backends.broker.provider import Provider

    key = keys.load_or_create(key_file)

    def log(line: str) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')} {redact(line)}", err=True)  # the URL may hold a password

    async def go() -> None:
        provider = Provider(url, workers, key, name, on_log=log)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, provider.drain)
        log(f"provider {provider.name} ({provider.fingerprint}) with {provider.size} workers -> {url}")
        await provider.run()

    asyncio.run(go())


@click.command("submit")
@BROKER_URL
@TOKEN
@click.option(
    "--count", type=Parsed(COPIES, "count"), default=1, show_default=True, help="How many tasks to run."
)
@limits_options
@click.argument("module", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1)
@click.pass_obj
@changes_state(on_host=False)
def submit_cmd(
    obj: CliContext,
    url: str,
    token: str | None,
    count: int,
    fuel: int | None,
    memory: int | None,
    timeout: float | None,
    module: Path,
    args: tuple[str, ...],
) -> None:
    """Run MODULE on the broker's providers COUNT times with ARGS; print a summary (or, with
    --json, one result object per task and line). Follows the results across broker restarts."""
    from backends.broker.protocol import Limits

    data = module.read_bytes()
    limits = Limits(fuel=fuel, memory=memory, timeout=timeout)
    started = time.monotonic()

    async def go() -> Counter[str]:
        tally: Counter[str] = Counter()
        async with BrokerClient(url, token) as client:
            request = TaskRequest("", list(args), limits=limits, name=module.name)  # `send` sets the ref
            sent = await client.send(data, request, count)
            async for result in client.results(sent.id):
                tally[_outcome(result)] += 1
                if obj.json:
                    click.echo(json.dumps({k: result.get(k) for k in _JSON_FIELDS}))
                elif count == 1:
                    sys.stdout.write(result.get("stdout", ""))
                    sys.stderr.write(result.get("stderr", ""))
        return tally

    tally = asyncio.run(go())
    sys.stdout.flush()
    if not obj.json:
        seconds = time.monotonic() - started
        parts = ", ".join(f"{n} {what}" for what, n in tally.most_common())
        click.echo(f"{count} task(s) in {seconds:.2f} s ({count / seconds:,.0f}/s): {parts}", err=True)
    if sum(n for what, n in tally.items() if what != "exit 0"):
        raise BerthError("Some tasks did not exit with 0.") if count > 1 else SystemExit(1)


_JSON_FIELDS = ("id", "state", "kind", "exit_code", "stdout", "stderr", "message", "provider", "duration_ms")


def _outcome(result: dict[str, Any]) -> str:
    if result.get("kind") == "exit":
        return f"exit {result.get('exit_code')}"
    return str(result.get("kind") or result.get("state"))
