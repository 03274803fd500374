"""The forms and the `berth` command read input with the same parser (issue 16 item 3): a form's
hint is its grammar's examples, what a hint offers is taken, and the console and the command line
refuse the same bad input with the same sentence. Driven by keys (Pilot) and the installed berth;
checked in the task pool and in the test LXD."""

import uuid
from pathlib import Path
from typing import TypeVar

import pylxd
import pytest
from cli_helpers import berth
from engines.lxd import LxdEngine
from engines.sshd import keygen
from pilot_helpers import fill_form
from test_app import toasts
from test_cli_members import inventory  # noqa: F401  (fixture)
from test_containers_pane import until
from test_members_pane import client, made, members_app, pane, wait  # noqa: F401  (fixtures)
from test_wasm_pane import show_wasm_pane, wasm_app
from textual import events
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import Input, Label, TextArea

from backends.config import Config, load_config, save_config
from backends.errors import Invalid
from tui.app import BerthApp
from tui.panes.wasm import WasmPane
from tui.screens.form import FormScreen
from tui.screens.logs import LogScreen
from tui.screens.member_details import DetailScreen, ForwardsScreen, KeysScreen, SnapshotsScreen

SIZE = (160, 40)
T = TypeVar("T", bound=DetailScreen)


def wrapped_text(widget: Widget) -> str:
    """What `widget` shows on screen, its wrapped lines joined again."""
    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return " ".join(strip.text.strip() for strip in lines if strip.text.strip())


def form_error(app: BerthApp) -> str:
    """The sentence under the form's fields."""
    return str(app.screen.query_one("#form-error", Label).render())


async def type_into(pilot: Pilot[None], app: BerthApp, field: str, text: str) -> None:
    """Focus a field of the form on screen and type `text` into it, key by key."""
    widget = app.screen.query_one(f"#field-{field}")
    widget.focus()
    await pilot.pause()
    await pilot.press(*text)


def new_instance(lxd_client: pylxd.Client, names: list[str], prefix: str) -> str:
    """The name of a new (stopped) busybox instance in the test LXD, put in `names` (the `made`
    fixture's, which deletes them after the test)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    names.append(name)
    lxd_client.instances.create({"name": name, "source": {"type": "image", "alias": "busybox"}}, wait=True)
    return name


async def open_details(pilot: Pilot[None], app: BerthApp, name: str, key: str, kind: type[T]) -> T:
    """The detail screen `key` opens on instance `name`'s row of the Members pane, once read."""
    await pilot.press("2")
    table = pane(app).table
    await wait(pilot, app, lambda: name in table.rows, what="the instance's row")
    assert table.move_cursor_to(name)
    await pilot.press(key)
    await wait(pilot, app, lambda: isinstance(app.screen, kind) and app.screen.loads > 0)
    assert isinstance(app.screen, kind)
    return app.screen


async def open_new_task_form(pilot: Pilot[None], app: BerthApp) -> FormScreen:
    await show_wasm_pane(pilot, app)
    await pilot.press("n")
    await pilot.pause()
    assert isinstance(app.screen, FormScreen)
    return app.screen


async def test_500ms_typed_as_the_hint_says_limits_the_task(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    app = wasm_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        form = await open_new_task_form(pilot, app)
        await type_into(pilot, app, "module", str(wasm_programs["slow"]))  # ticks for 1 s
        await type_into(pilot, app, "timeout", "500ms")
        # Enter moves on through the fields after it, then runs the task from the last one.
        await pilot.press(*["enter"] * (len(form.fields) - [f.id for f in form.fields].index("timeout")))
        await pilot.pause()
        assert not isinstance(app.screen, FormScreen), form_error(app)
        await until(pilot, lambda: isinstance(app.screen, LogScreen), what="the task's output")
        records = app.query_one(WasmPane).records
        await until(pilot, lambda: any(r.state != "running" for r in records.values()), timeout=15)
        (record,) = records.values()
        assert record.spec.limits.timeout == 0.5
        assert record.result is not None and record.result.kind == "timeout", record.result
        assert record.result.message == "timed out after 0.5 s"

        # The wall-time field's hint is the duration grammar's examples, 500ms first. (Imported
        # here, so the check above runs on old code.)
        from backends.units import DURATION, TIME_LIMIT

        await pilot.press("escape", "n")
        await pilot.pause()
        hint = app.screen.query_one("#field-timeout", Input).placeholder
        assert hint == TIME_LIMIT.example == DURATION.example and hint.startswith("500ms")


async def test_a_bad_duration_is_refused_by_the_form_and_the_command_alike(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    said = {}
    for bad in ("5x", "0s"):
        done = berth(tmp_path / "config.toml", "wasm", "run", str(wasm_programs["hello"]), "--timeout", bad)
        assert done.returncode == 2, done.stderr
        said[bad] = done.stderr.partition("Invalid value for '--timeout': ")[2].strip()
    app = wasm_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_task_form(pilot, app)
        for bad, sentence in said.items():
            await fill_form(pilot, app, module=str(wasm_programs["hello"]), timeout=bad)
            assert isinstance(app.screen, FormScreen), f"{bad!r} was taken"
            assert form_error(app) == f"Wall time: {sentence}"
        assert not app.query_one(WasmPane).records  # nothing ran
    from backends.units import TIME_LIMIT  # (here, so the check above runs on old code)

    assert said["5x"] == str(TIME_LIMIT.refuse("5x"))
    assert said["0s"].startswith("Not a time limit: '0s' (it must be longer than 0 s).")


async def test_a_bad_image_reference_is_refused_by_the_form_and_berth_wasm_run_alike(tmp_path: Path) -> None:
    """`a//b` closed the form and did nothing at all (Docker redirected the request); `x:y:z` came
    back as the engine's "invalid reference format" after the form had closed."""
    said = {}
    for bad in ("a//b", "x:y:z", "NC2/Upper"):
        done = berth(tmp_path / "config.toml", "wasm", "run", bad)
        assert done.returncode == 2, done.stderr
        said[bad] = done.stderr.removeprefix("berth: ").strip()
    app = wasm_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_task_form(pilot, app)
        for bad, sentence in said.items():
            await fill_form(pilot, app, image=bad)
            assert isinstance(app.screen, FormScreen), f"{bad!r} was taken"
            assert form_error(app) == f"…or a wasi/wasm image on this host: {sentence}"
        assert not app.query_one(WasmPane).records  # nothing ran
    assert said["a//b"].startswith("Not an image reference: 'a//b'. Write it like busybox"), said


async def test_too_many_copies_are_refused_by_the_form_and_berth_submit_alike(
    wasm_programs: dict[str, Path], tmp_path: Path
) -> None:
    hello = str(wasm_programs["hello"])
    said = {}
    for bad in ("100001", "0", "-3"):
        done = berth(tmp_path / "config.toml", "submit", "--count", bad, hello)
        assert done.returncode == 2, done.stderr
        said[bad] = done.stderr.partition("Invalid value for '--count': ")[2].strip()
    app = wasm_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_new_task_form(pilot, app)
        for bad, sentence in said.items():
            await fill_form(pilot, app, module=hello, target="broker", count=bad)
            assert isinstance(app.screen, FormScreen), f"{bad!r} was taken"
            assert form_error(app) == f"How many copies: {sentence}"
        assert not app.query_one(WasmPane).records  # nothing was queued
    assert said["100001"].startswith("Not a number of copies from 1 to 100,000: '100001' (at most 100,000).")
    assert said["0"].startswith("Not a number of copies from 1 to 100,000: '0'.")


async def test_a_bad_host_url_is_refused_by_the_add_host_form_and_berth_hosts_add_alike(
    offline_config: Config,
) -> None:
    assert offline_config.path is not None
    save_config(offline_config, offline_config.path)
    done = berth(offline_config.path, "hosts", "add", "web-10", "ops@10.0.0.10")
    assert done.returncode == 2, done.stderr
    sentence = done.stderr.partition("Invalid value for 'URL': ")[2].strip()
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"host add", "enter")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, FormScreen)
        await pilot.press(*"web-10", "enter", *"ops@10.0.0.10", "enter", "enter", "enter")
        await pilot.pause()
        assert app.screen is form and form_error(app) == f"URL: {sentence}"
        error = form.query_one("#form-error")  # all of it on screen: wrapped inside the dialog, not cut
        assert error.region.right <= form.query_one(".dialog").content_region.right
        assert wrapped_text(error) == f"URL: {sentence}"
        from backends.parse_addresses import HOST_URL  # (here, so the check above runs on old code)

        assert form.query_one("#field-url", Input).placeholder == HOST_URL.example
    assert sentence.startswith("Not a host URL: expected local or ssh://user@host[:port], got 'ops@")
    assert load_config(offline_config.path).host("web-10") is None


@pytest.mark.engines
async def test_pasted_keys_with_a_comment_and_a_blank_line_add_only_the_keys(
    lxd: LxdEngine,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    name = new_instance(client, made, "k")
    first, second = keygen(tmp_path / "alice", "alice@laptop"), keygen(tmp_path / "phone", "alice@phone")
    pasted = f"# alice's laptop\n{first} alice@laptop\n\n# her phone\n{second} alice@phone\n"
    bad = tmp_path / "bad.pub"
    bad.write_text(f"# a comment\n{first} fine\nssh-ed25519 not-a-key me\n")
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        keys = await open_details(pilot, app, name, "k", KeysScreen)
        assert not keys.table.rows

        # As a terminal pastes: one Paste event, newlines and all, into the focused field.
        await pilot.press("a")
        await pilot.pause()
        field = app.screen.query_one("#field-key")
        assert app.focused is field
        app.post_message(events.Paste(pasted))
        await pilot.pause()
        loads = keys.loads
        await pilot.press("enter")
        await wait(pilot, app, lambda: keys.loads > loads and len(keys.table.rows) == 2, what="2 keys listed")
        assert "2 keys added" in " ".join(toasts(app))
        written = client.instances.get(name).files.get("/root/.ssh/authorized_keys").decode()
        assert written == f"{first} alice@laptop\n{second} alice@phone\n"

        # A file whose third line is no key: refused, naming that line and the file.
        await pilot.press("a")
        await pilot.pause()
        field = app.screen.query_one("#field-key", TextArea)
        from backends.parse_keys import KEYS  # (here, so the check above runs on old code)

        assert field.placeholder == KEYS.example and field.text == ""
        await type_into(pilot, app, "key", str(bad))
        await pilot.press("enter")
        await pilot.pause()
        refusal = form_error(app)
        assert refusal.startswith(f"Public keys: Not an SSH public key on line 3 of {bad}: "), refusal

        # A host port out of range: the forward form and berth member forward say the same.
        await pilot.press("escape", "escape")
        await pilot.pause()
        await pilot.press("f")
        await wait(pilot, app, lambda: isinstance(app.screen, ForwardsScreen) and app.screen.loads > 0)
        await pilot.press("a")
        await pilot.pause()
        await fill_form(pilot, app, host_port="70000", port="22")
        port_refusal = form_error(app)

    # The command line refuses the same file with the same sentence (the field's name aside).
    done = berth(inventory, "member", "keys", name, "--add", str(bad))
    assert (done.returncode, done.stderr) == (2, f"berth: {refusal.removeprefix('Public keys: ')}\n")
    done = berth(inventory, "member", "forward", name, "70000", "22")
    assert done.returncode == 2, done.stderr
    said = done.stderr.partition("Invalid value for 'HOSTPORT': ")[2].strip()
    assert port_refusal == f"Host port: {said}" and said.startswith("Not a port number: '70000'.")
    assert not client.instances.get(name).devices  # no forward was made


@pytest.mark.engines
async def test_a_bad_memory_limit_or_no_member_is_refused_by_the_form_and_berth_member_create_alike(
    lxd: LxdEngine,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    name = f"carol-{uuid.uuid4().hex[:6]}"
    made.append(name)
    create = ("member", "create", name, "--image", "busybox")
    done = berth(inventory, *create, "--member", "carol", "--memory", "64M")
    assert done.returncode == 2, done.stderr
    said = done.stderr.partition("Invalid value for '--memory': ")[2].strip()
    assert said.startswith("Not a memory limit: '64M'. Write it like 512MiB, 2GiB or 50%")
    done = berth(inventory, *create, "--member", "")
    assert (done.returncode, done.stderr) == (2, "berth: The member is required.\n")
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        await wait(pilot, app, lambda: pane(app).reads > 0, what="the first list")
        await pilot.press("n")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, FormScreen)
        await fill_form(pilot, app, name=name, member="carol", image="busybox", memory="64M")
        assert app.screen is form and form_error(app) == f"Memory: {said}"
        await fill_form(pilot, app, member="", memory="")
        assert app.screen is form and form_error(app) == "The member is required."
        from backends.units import MEMORY_LIMIT  # (here, so the checks above run on old code)

        assert form.query_one("#field-memory", Input).placeholder == MEMORY_LIMIT.example
        await pilot.press("escape")
        await pilot.pause()
    assert not client.instances.exists(name)  # nothing was made, by either


@pytest.mark.engines
async def test_a_bad_listen_address_and_a_maybe_are_refused_by_the_member_forms(
    lxd: LxdEngine,
    client: pylxd.Client,  # noqa: F811
    made: list[str],  # noqa: F811
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    name = new_instance(client, made, "f")
    done = berth(inventory, "member", "forward", name, "8080", "22", "--listen", "999.1.1.1")
    assert done.returncode == 2, done.stderr
    said = done.stderr.partition("Invalid value for '--listen': ")[2].strip()
    assert said == "Not an IP address: '999.1.1.1'. Write it like 0.0.0.0, 127.0.0.1 or ::1."
    app = members_app(lxd, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await open_details(pilot, app, name, "f", ForwardsScreen)
        await pilot.press("a")
        await pilot.pause()
        form = app.screen
        await fill_form(pilot, app, host_port="8080", port="22", listen="999.1.1.1")
        assert app.screen is form and form_error(app) == f"Listen address on the host: {said}"
        await pilot.press("escape", "escape")
        await pilot.pause()

        # The snapshot form's Stateful takes y, yes, n or no; "maybe" was taken as no.
        await pilot.press("z")
        await wait(pilot, app, lambda: isinstance(app.screen, SnapshotsScreen) and app.screen.loads > 0)
        await pilot.press("c")
        await pilot.pause()
        form = app.screen
        await fill_form(pilot, app, name="before", stateful="maybe")
        assert app.screen is form and form_error(app) == (
            "Stateful: Not a yes/no answer: 'maybe'. Write it like y, yes, n or no."
        )
        await pilot.press("escape")
        await pilot.pause()
    instance = client.instances.get(name)
    assert not instance.devices and not instance.snapshots.all()  # no forward, no snapshot


async def test_a_bad_host_name_is_refused_by_the_add_host_form_and_berth_hosts_add_alike(
    offline_config: Config, tmp_path: Path
) -> None:
    assert offline_config.path is not None
    save_config(offline_config, offline_config.path)
    before = offline_config.path.read_text()
    done = berth(offline_config.path, "hosts", "add", "", "local")
    assert done.returncode == 2, done.stderr
    said = done.stderr.partition("Invalid value for 'NAME': ")[2].strip()
    assert said.startswith("Not a host name: '' (expected letters, digits, '.', '_' or '-'")
    app = BerthApp(offline_config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("colon", *"host add", "enter")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, FormScreen)
        await pilot.press("enter", *"local", "enter", "enter", "enter")
        await pilot.pause()
        assert app.screen is form and form_error(app) == f"Name: {said}"
    assert offline_config.path.read_text() == before  # no host was added
    # A config file's bad name is still named by its place in the file.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[hosts]]\nname = "-web"\nurl = "local"\n')
    with pytest.raises(Invalid, match=r"line 2: hosts\[0\]\.name: expected letters, digits"):
        load_config(bad)
