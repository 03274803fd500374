"""The container detail screen (enter on a container) against the test dockerd: a container made
with known env (a secret among it), a bind and a volume mount, a port published on 127.0.0.1, a
user network with an alias and a healthcheck that prints; each tab shows what the engine says,
the secret stays hidden until `s`, and the Resources edit reaches the engine (docker SDK)."""

import contextlib
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from engines.dockerd import DockerEngine
from pilot_helpers import fill_form, footer_text
from test_containers_pane import SIZE, make_app, pane, select, until
from test_read_only import toasts
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Label, TabbedContent

from backends.audit import read_audit
from backends.config import Config, HostConfig, UiConfig
from tui import verbs
from tui.app import BerthApp
from tui.screens.container_detail import TAB_IDS, ContainerDetailScreen
from tui.screens.detail_tabs import HIDDEN, env_pairs, is_secret, masked, raw_lines
from tui.screens.form import FormScreen
from tui.screens.jobs import JobsScreen
from tui.widgets.log_view import LogView
from tui.widgets.resource_table import ResourceTable

pytestmark = pytest.mark.engines
IMAGE = "berth-test/busybox:latest"


@pytest.fixture
def detailed(sdk: docker.DockerClient, docker_busybox: str, tmp_path: Path) -> Iterator[Any]:
    """A running container with env, labels, a bind and a volume mount, a port on 127.0.0.1, a
    user network with an alias and a healthcheck; removed (with its network and volume) after."""
    tag = f"detail-{uuid.uuid4().hex[:6]}"
    # A subnet of its own: the engine's default pools may be used up by bridges other dockerds of
    # the machine left behind.
    subnet = f"10.{random.randrange(100, 250)}.{random.randrange(256)}.0/24"
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    network = sdk.networks.create(f"{tag}-net", driver="bridge", ipam=ipam)
    volume = sdk.volumes.create(f"{tag}-vol")
    (tmp_path / "shared").mkdir()
    api = sdk.api
    created = api.create_container(
        IMAGE,
        ["sh", "-c", "sleep 600"],
        name=tag,
        environment={"MODE": "test", "DB_PASSWORD": "hunter2", "ALPHA": "1"},  # the engine keeps this order
        labels={"team": "ops"},
        ports=[8080],
        healthcheck={"test": ["CMD-SHELL", "echo checked; exit 0"], "interval": 1_000_000_000},
        host_config=api.create_host_config(
            binds={
                str(tmp_path / "shared"): {"bind": "/data", "mode": "ro"},
                volume.name: {"bind": "/cache"},
            },
            port_bindings={8080: ("127.0.0.1", None)},
            network_mode=network.name,
        ),
        networking_config=api.create_networking_config(
            {network.name: api.create_endpoint_config(aliases=["db-alias"])}
        ),
    )
    container = sdk.containers.get(created["Id"])
    try:
        container.start()
        container.reload()
        yield container
    finally:
        with contextlib.suppress(docker.errors.NotFound):  # a test may remove it itself
            container.remove(force=True)
        network.remove()
        volume.remove()


def drawn(widget: Widget) -> str:
    """The text `widget` draws now, its lines joined."""
    region = Region(0, 0, widget.size.width, widget.size.height)
    return "\n".join(strip.text.rstrip() for strip in widget.render_lines(region))


def tab_text(screen: ContainerDetailScreen) -> str:
    """What the tab on show draws: its note and its table, or the document."""
    pane = screen.query_one(TabbedContent).active_pane
    assert pane is not None and pane.region.area > 0
    if views := pane.query(LogView):
        return drawn(views.first().lines_widget)
    note = pane.query_one(Label)
    return drawn(note) + "\n" + drawn(pane.query_one(ResourceTable).grid)


def document(screen: ContainerDetailScreen) -> str:
    """Every line the Raw tab holds."""
    view = screen.raw_view
    return "\n".join(view.line(i).text for i in range(view.line_count))


async def open_detail(pilot: Pilot[None], app: BerthApp, container: Any) -> ContainerDetailScreen:
    """Enter on `container`'s row; the detail screen once it has read the document."""
    await select(pilot, app, container)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ContainerDetailScreen) and app.screen.loads > 0)
    screen = app.screen
    assert isinstance(screen, ContainerDetailScreen)
    return screen


async def show(pilot: Pilot[None], screen: ContainerDetailScreen, key: str, tab: str) -> str:
    await pilot.press(key)
    await until(pilot, lambda: screen.active_tab == tab, what=f"the {tab} tab")
    await pilot.pause()
    return tab_text(screen)


async def test_each_tab_shows_what_the_engine_says_and_the_secret_only_when_asked(
    dockerd: DockerEngine, detailed: Any, tmp_path: Path
) -> None:
    attrs = detailed.attrs
    host_port = attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    network = next(iter(attrs["NetworkSettings"]["Networks"]))
    address = attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, detailed)
        assert f"container · {detailed.name} · local" in drawn(screen.query_one("#detail-title", Label))
        footer = footer_text(app)
        for label in ("esc Back", "[ Prev tab", "] Next tab", "r Reload", "s Secrets", "e Edit limits"):
            assert label in footer, footer

        summary = tab_text(screen)
        assert "running" in summary
        assert f"{IMAGE} ({detailed.image.id.removeprefix('sha256:')[:12]})" in summary
        assert "sh -c 'sleep 600'" in summary
        assert "Restarts" in summary and detailed.id[:12] in summary

        env = await show(pilot, screen, "2", "env")
        assert "MODE" in env and "test" in env and "DB_PASSWORD" in env
        assert "hunter2" not in env and "hidden" in env and "1 secret value hidden: s shows them." in env
        # Sorted as the arrow says (the engine keeps MODE, DB_PASSWORD, ALPHA).
        keys = [line.split()[0] for line in env.splitlines()[2:] if line.strip()]
        assert "KEY ▲" in env and keys == ["ALPHA", "DB_PASSWORD", "MODE"], env
        await show(pilot, screen, "9", "raw")
        assert f'"Id": "{detailed.id}"' in document(screen) and "hunter2" not in document(screen)
        await pilot.press("s")
        await until(pilot, lambda: screen.reveal, what="the secrets shown")
        assert "DB_PASSWORD=hunter2" in document(screen)
        env = await show(pilot, screen, "2", "env")
        assert "hunter2" in env and "1 secret value shown: s hides them." in env
        await pilot.press("s")
        await pilot.pause()
        assert "hunter2" not in tab_text(screen) and "hidden" in tab_text(screen)

        labels = await show(pilot, screen, "3", "labels")
        assert "team" in labels and "ops" in labels
        mounts = await show(pilot, screen, "4", "mounts")
        data = next(line for line in mounts.splitlines() if "/data" in line)
        assert "bind" in data and str(tmp_path / "shared") in data and data.rstrip().endswith("ro")
        cache = next(line for line in mounts.splitlines() if "/cache" in line)
        assert "volume" in cache and f"{detailed.name}-vol" in cache and cache.rstrip().endswith("rw")
        ports = await show(pilot, screen, "5", "ports")
        assert "8080/tcp" in ports and f"127.0.0.1:{host_port}" in ports
        networks = await show(pilot, screen, "6", "networks")
        row = next(line for line in networks.splitlines() if network in line)
        assert address in row and "db-alias" in row

        await show(pilot, screen, "7", "health")

        # Checks bring no event: the tab reads the document again while it is open.
        def checks() -> list[str]:
            return [line for line in tab_text(screen).splitlines() if "checked" in line and "ago" in line]

        await until(pilot, lambda: len(checks()) >= 2, what="two checks' output")
        assert " 0 " in checks()[0]  # its exit code
        # Newest first, and the arrow says so.
        assert "CHECKED AT ▼" in tab_text(screen)
        stamps = [line.split("(")[0].strip() for line in checks()]
        assert stamps == sorted(stamps, reverse=True), stamps
        assert "Check: echo checked; exit 0, every 1s." in tab_text(screen)

        resources = await show(pilot, screen, "]", "resources")
        assert "Restart policy" in resources and "no" in resources and "unlimited" in resources
        assert await show(pilot, screen, "[", "health")

        # The raw document is searchable, as `i` is; esc closes the prompt, then ends the search,
        # and only then leaves (the key after it must not reach the pane: `e` there is exec).
        await show(pilot, screen, "9", "raw")
        await pilot.press("slash", *"db-al", "escape")
        await pilot.pause()
        assert app.screen is screen and not screen.raw_view.matches.query
        await pilot.press("slash", *"db-alias", "enter")
        await until(pilot, lambda: len(screen.raw_view.matches) > 0, what="a match in the document")
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is screen and not screen.raw_view.matches.query
        assert screen.raw_view.lines_widget.has_focus
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is not screen, what="back to the pane")


async def test_resources_edit_reaches_the_engine_and_bad_input_is_one_sentence(
    dockerd: DockerEngine, detailed: Any, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    app = make_app(dockerd, tmp_path)
    said = toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, detailed)
        await show(pilot, screen, "8", "resources")
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the limits form")
        form = app.screen
        assert isinstance(form, FormScreen)
        await fill_form(pilot, app, memory="64 potatoes")
        error = str(form.query_one("#form-error", Label).render())
        assert error.startswith("Memory: Not a size: '64 potatoes'.") and error.count(".") <= 4, error
        assert app.screen is form  # the form stays open, and nothing changed
        assert sdk.containers.get(detailed.id).attrs["HostConfig"]["Memory"] == 0

        await fill_form(pilot, app, memory="64MiB", restart="unless-stopped")
        await until(pilot, lambda: app.screen is screen, what="the form to close")
        await until(
            pilot,
            lambda: sdk.containers.get(detailed.id).attrs["HostConfig"]["Memory"] == 64 * 1024**2,
            what="the memory limit in the engine",
        )
        host_config = sdk.containers.get(detailed.id).attrs["HostConfig"]
        assert host_config["RestartPolicy"]["Name"] == "unless-stopped"
        assert host_config["MemorySwap"] == -1  # no swap limit before, none after
        await until(pilot, lambda: "64MiB" in tab_text(screen), what="the new limit on the tab")
        assert "unless-stopped" in tab_text(screen)
        assert f"Limits changed: {detailed.name}" in said
        (record,) = [r for r in read_audit() if r["action"] == "container.limits"]
        assert record["targets"] == [detailed.id] and record["outcome"] == "ok", record
        assert record["Memory"] == 64 * 1024**2 and record["RestartPolicy"] == "unless-stopped", record

        # A limit the engine cannot take away is refused in the form, in one sentence.
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, FormScreen), what="the limits form again")
        await fill_form(pilot, app, memory="")
        error = str(app.screen.query_one("#form-error", Label).render())
        assert error.startswith("Memory: the engine cannot take this limit away from a container."), error
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen)
        assert sdk.containers.get(detailed.id).attrs["HostConfig"]["Memory"] == 64 * 1024**2


async def test_enter_in_the_all_hosts_view_opens_the_rows_own_host(
    dockerd: DockerEngine, detailed: Any, tmp_path: Path
) -> None:
    # The first host is another one, with no engine: the row's host is the test dockerd's.
    elsewhere = HostConfig("elsewhere", docker_socket=str(tmp_path / "none.sock"))
    local = HostConfig("local", docker_socket=str(dockerd.socket))
    app = BerthApp(Config(ui=UiConfig(), hosts=[elsewhere, local], path=tmp_path / "config.toml"), "all")
    async with app.run_test(size=SIZE) as pilot:
        table = pane(app).table
        key = f"local/{detailed.id}"
        await until(pilot, lambda: key in table.rows, what="the row")
        table.set_filter(detailed.name)
        assert table.move_cursor_to(key)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ContainerDetailScreen) and app.screen.loads > 0)
        assert isinstance(app.screen, ContainerDetailScreen)
        assert app.screen.host.name == "local" and "running" in tab_text(app.screen)


async def test_read_only_hides_the_edit(dockerd: DockerEngine, detailed: Any, tmp_path: Path) -> None:
    app = make_app(dockerd, tmp_path, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, detailed)
        assert "Edit limits" not in footer_text(app) and "Secrets" in footer_text(app)
        await pilot.press("e")
        await pilot.pause()
        assert app.screen is screen


async def test_the_screen_follows_the_containers_events_and_r_reads_again(
    dockerd: DockerEngine, detailed: Any, sdk: docker.DockerClient, tmp_path: Path
) -> None:
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, detailed)
        detailed.kill()  # from outside berth: its die event brings the new state, no key pressed
        await until(pilot, lambda: "exited (exit code 137)" in tab_text(screen), what="the new state")
        loads = screen.loads
        await pilot.press("r")
        await until(pilot, lambda: screen.loads > loads, what="a read on r")
        detailed.remove()
        await until(pilot, lambda: "No such container" in drawn(screen.query_one("#detail-title", Label)))
        assert "exited" in tab_text(screen)  # what it last read stays on show


def test_the_tab_keys_are_the_tabs_in_order() -> None:
    keys = [
        (verb.keys, verb.action)
        for verb in verbs.owned_by("container_detail")
        if verb.action.startswith("show_tab")
    ]
    assert keys == [(str(n), f"show_tab('{tab}')") for n, tab in enumerate(TAB_IDS, 1)]


def test_secrets_are_hidden_by_key_in_the_env_and_the_document() -> None:
    doc = {"Config": {"Env": ["API_KEY=k", "github_token=t", "Secret_Sauce=s", "PGPASSWORD=p", "PATH=/bin"]}}
    assert [key for key, _value in env_pairs(doc) if is_secret(key)] == [
        "API_KEY", "github_token", "Secret_Sauce", "PGPASSWORD"
    ]  # fmt: skip
    shown = "\n".join(raw_lines(doc, reveal=False))
    assert not any(f"={v}" in shown for v in "ktsp") and "PATH=/bin" in shown
    assert f"API_KEY={HIDDEN}" in shown  # as it reads in the Env tab, not as JSON escapes
    assert masked(doc) != doc and doc["Config"]["Env"][0] == "API_KEY=k"  # the original kept
    assert "API_KEY=k" in "\n".join(raw_lines(doc, reveal=True))


async def test_colon_opens_the_prompt_over_the_screen_and_its_letters_are_no_keys(
    dockerd: DockerEngine, detailed: Any, tmp_path: Path
) -> None:
    app = make_app(dockerd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_detail(pilot, app, detailed)
        resources = await show(pilot, screen, "8", "resources")
        assert "FIELD ▲" in resources
        await pilot.press("colon", *"jobs", "enter")  # `o` and `s` are keys here: sort, secrets
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), what="the jobs screen")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, what="back to the detail screen")
        assert "FIELD ▲" in tab_text(screen) and not screen.reveal
        await pilot.press("colon", *"os", "escape")  # esc: the prompt closes, nothing runs
        await until(pilot, lambda: app.screen is screen, what="the prompt closed")
        assert "FIELD ▲" in tab_text(screen) and not screen.reveal
        # In the Raw tab's search prompt, `:` is a letter of the search.
        await show(pilot, screen, "9", "raw")
        await pilot.press("slash", *'"Id":', "enter")
        await until(pilot, lambda: screen.raw_view.matches.query == '"Id":', what="the search")
        assert app.screen is screen
