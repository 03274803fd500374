"""Every verb of the console, declared once: its id, default keys, action, footer label, help
sentence, where it lives, what it acts on, whether it changes state or destroys something.

Everything else is derived from here: each class's `BINDINGS` (`bindings(owner)`), the read-only
list (`tui.read_only`), the palette's pane-level verbs (`tui.palette`), the keymap's destructive
check (`tui.keymap`), the `?` help sentences and which of the Containers pane's views a verb works
on. Adding a verb is one entry here and one `action_` method on its owner.

No Textual at module level: the CLI imports this (through `tui.read_only`) and must start fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass, replace
from typing import TYPE_CHECKING, Final, Literal

from tui.panes import PANES

if TYPE_CHECKING:
    from textual.binding import BindingType

HOST: Final = "host"
"""A verb that acts on an inventory host's engines: refused there when the host is read-only."""
CONSOLE: Final = "console"
"""A verb that acts on berth's own task pool or broker: refused only when all of berth is read-only."""
Scope = Literal["host", "console"]

ROW: Final = "row"
"""A verb that acts on the row under the cursor (or the marked rows): the palette offers it per row."""
WHOLE: Final = "whole"
"""A verb that acts on its pane, screen or widget as a whole: the palette offers it once."""
Level = Literal["row", "whole"]

CONTAINERS_VIEW = "containers"
"""The Containers pane's view of containers (`v` goes on to the images, volumes, networks): a verb
of the pane may work on it only."""


@dataclass(frozen=True)
class Verb:
    """One verb: a key binding with everything the console needs to know about it."""

    id: str
    """The binding id users' keymaps name (`containers.stop`): never change one."""
    keys: str
    """The default keys, comma-separated Textual key names."""
    action: str
    """The action run on the owner (`act('stop')` runs `action_act('stop')`)."""
    label: str
    """The footer's and help's short label."""
    level: Level = WHOLE
    """ROW or WHOLE: what it acts on."""
    changes: Scope | None = None
    """HOST or CONSOLE when the verb changes something (refused read-only, written to the audit log)."""
    _: KW_ONLY
    help: str
    """One sentence for `?`, the palette and the footer's tooltip."""
    destroys: bool = False
    """It destroys or replaces something: it may not sit on a key used to move around."""
    show: bool = True
    """Shown in the footer."""
    priority: bool = False
    """Taken as the key arrives, before focus moves (a prompt must open before the next keys)."""
    view: str | None = None
    """The owner's view the verb works on (the Containers pane's); None: every view."""
    also: tuple[tuple[str, str], ...] = ()
    """Other owners that bind the verb too, each with its label there: (owner, label). The images
    view's `v` goes on to the volumes, so it says so (the pane's `v` says Images)."""
    owner: str = ""
    """Where it lives: the name the owning class passes to `bindings()`; set by `_owned`."""

    def label_in(self, owner: str) -> str:
        """The footer's label of the verb where `owner` binds it."""
        return dict(self.also).get(owner, self.label)

    @property
    def action_name(self) -> str:
        """The action's name without its arguments (`act` for `act('stop')`)."""
        return self.action.split("(", 1)[0]


def _owned(owner: str, *verbs: Verb) -> tuple[Verb, ...]:
    return tuple(replace(verb, owner=owner) for verb in verbs)


VERBS: tuple[Verb, ...] = (
    # The app: its keys answer wherever a widget does not take the key first.
    *_owned(
        "app",
        Verb("app.quit", "q", "quit", "Quit",
             help="Quit berth (asks first while jobs run)."),
        Verb("app.help", "question_mark", "help", "Help",
             help="List every key and `:` command."),
        # Priority, so the prompt takes focus before the keys typed right after ':' are routed:
        # otherwise a fast typist's (or a paste's) first letters go to the pane and are lost.
        Verb("app.command", "colon", "command_line", "Command", priority=True,
             help="Open the `:` prompt."),
        Verb("app.host", "H", "pick_host", "Host",
             help="Choose the host to look at, or all of them."),
        # The same race as ':' for '/' in tables and logs: the prompt must open before the keys
        # typed after it are routed, or "t" of a name would open `top`.
        Verb("app.find", "slash", "find", "Find", priority=True,
             help="Filter the table or search the log in focus."),
    ),
    # The main frame: moving between the panes.
    *_owned(
        "main",
        *(
            Verb(f"pane.{p.id}", p.key, f"show_pane('{p.id}')", p.title, show=False,
                 help=f"Show the {p.title} pane.")
            for p in PANES
        ),
        Verb("pane.next", "tab", "cycle_pane(1)", "Next pane", show=False,
             help="Show the next pane."),
        Verb("pane.previous", "shift+tab", "cycle_pane(-1)", "Previous pane", show=False,
             help="Show the previous pane."),
    ),
    # The Containers pane; `view`: the verbs that work on one of its two views only.
    *_owned(
        "containers",
        Verb("containers.logs", "l", "logs", "Logs", ROW, view=CONTAINERS_VIEW,
             help="Follow the log of the container under the cursor."),
        Verb("containers.stop", "s", "act('stop')", "Stop", ROW, HOST, view=CONTAINERS_VIEW,
             help="Stop the marked containers, or the one under the cursor."),
        Verb("containers.start", "S", "act('start')", "Start", ROW, HOST, view=CONTAINERS_VIEW,
             help="Start the marked containers, or the one under the cursor."),
        Verb("containers.restart", "r", "restart", "Restart", ROW, HOST, view=CONTAINERS_VIEW,
             help="Restart the containers (on a project header, the project)."),
        Verb("containers.pause", "p", "pause", "Pause", ROW, HOST, view=CONTAINERS_VIEW,
             help="Pause running containers, unpause paused ones."),
        Verb("containers.remove", "d", "remove", "Remove", ROW, HOST, destroys=True,
             help="Remove the containers or images, after asking."),
        Verb("containers.exec", "e", "exec", "Shell", ROW, HOST, view=CONTAINERS_VIEW,
             help="Open a shell in the container (it can change anything there)."),
        Verb("containers.inspect", "i", "inspect", "Inspect", ROW, view=CONTAINERS_VIEW,
             help="Show the container's full inspect document."),
        Verb("containers.top", "t", "top", "Top", ROW, view=CONTAINERS_VIEW,
             help="Show the processes of the container under the cursor."),
        Verb("containers.up", "U", "compose('up')", "Project up", ROW, HOST, show=False, view=CONTAINERS_VIEW,
             help="Bring the compose project under the cursor up."),
        Verb("containers.down", "D", "compose('down')", "Project down", ROW, HOST, show=False,
             destroys=True, view=CONTAINERS_VIEW,
             help="Take the compose project under the cursor down (its containers are removed)."),
        Verb("containers.update", "u", "update", "Update", ROW, HOST, destroys=True, view=CONTAINERS_VIEW,
             help="Pull the containers' images and recreate those whose image changed, same settings."),
        Verb("containers.view", "v", "switch_view", "Images", view=CONTAINERS_VIEW,
             also=(("images", "Volumes"), ("volumes", "Networks"), ("networks", "Containers")),
             help="Show the next view: containers, images, volumes, networks."),
    ),
    # The Containers pane's images view (tui/panes/images_view.py): ids as when the pane held them.
    *_owned(
        "images",
        Verb("images.inspect", "i", "inspect", "Inspect", ROW,
             help="Show the image's full inspect document (enter too)."),
        Verb("containers.move", "m", "move", "Move to host", ROW, HOST,
             help="Stream the images to another host of the inventory."),
        Verb("containers.prune", "P", "prune", "Prune dangling", WHOLE, HOST, destroys=True,
             help="Remove the host's dangling images, after asking."),
        Verb("images.run", "n", "run", "Run", ROW, HOST,
             help="Run a container from the image under the cursor, from a form, on its host."),
        Verb("images.pull", "p", "pull", "Pull", WHOLE, HOST,
             help="Pull an image by its reference, with progress in :jobs, on the host under the cursor."),
    ),
    # The Containers pane's volumes view (tui/panes/volumes_view.py).
    *_owned(
        "volumes",
        Verb("volumes.inspect", "i", "inspect", "Inspect", ROW,
             help="Show the volume's full inspect document."),
        Verb("volumes.remove", "d", "remove", "Remove", ROW, HOST, destroys=True,
             help="Remove the volumes, after asking (refused while a container uses one, unless forced)."),
        Verb("volumes.prune", "P", "prune", "Prune unused", WHOLE, HOST, destroys=True,
             help="Remove the host's unused volumes, after listing them with their sizes."),
        Verb("volumes.reload", "r", "reload", "Reload",
             also=(("images", "Reload"), ("networks", "Reload")),
             help="Read the view again from every host (what changed outside berth shows)."),
    ),
    # The disk usage screen (`:df`, tui/screens/disk_usage.py).
    *_owned(
        "disk",
        Verb("disk.close", "escape,q", "close", "Back",
             help="Back to the panes."),
        Verb("disk.reload", "r", "reload", "Reload",
             help="Read the disk usage again."),
        Verb("disk.prune", "P", "prune", "Prune", ROW, HOST, destroys=True,
             help="Prune the kind under the cursor, after listing exactly what goes with its sizes."),
    ),
    # The Containers pane's networks view (tui/panes/networks_view.py).
    *_owned(
        "networks",
        Verb("networks.inspect", "i", "inspect", "Inspect", ROW,
             help="Show the network's full inspect document (enter too)."),
        Verb("networks.create", "n", "create", "New network", WHOLE, HOST,
             help="Make a network from a form: name, driver, subnet, gateway."),
        Verb("networks.remove", "d", "remove", "Remove", ROW, HOST, destroys=True,
             help="Remove the networks, after asking (refused while containers are attached)."),
        Verb("networks.connect", "c", "connect", "Connect", ROW, HOST,
             help="Attach the containers marked in the containers view (or one picked) to the network."),
        Verb("networks.disconnect", "x", "disconnect", "Disconnect", ROW, HOST,
             help="Detach the marked containers (or one picked) from the network, after asking."),
        Verb("networks.prune", "P", "prune", "Prune unused", WHOLE, HOST, destroys=True,
             help="Remove the host's unused networks, after listing exactly those."),
    ),
    # The Members pane (a backup makes an LXD backup on the host; a shell can change anything).
    *_owned(
        "members",
        Verb("members.new", "n", "new", "New member", WHOLE, HOST,
             help="Make a new member from a form."),
        Verb("members.stop", "s", "act('stop')", "Stop", ROW, HOST,
             help="Stop the marked members, or the one under the cursor."),
        Verb("members.start", "S", "act('start')", "Start", ROW, HOST,
             help="Start the marked members, or the one under the cursor."),
        Verb("members.restart", "r", "act('restart')", "Restart", ROW, HOST,
             help="Restart the marked members, or the one under the cursor."),
        Verb("members.freeze", "p", "freeze", "Freeze", ROW, HOST,
             help="Freeze running members, unfreeze frozen ones."),
        Verb("members.delete", "d", "delete", "Delete", ROW, HOST, destroys=True,
             help="Delete the members and their snapshots, after asking."),
        Verb("members.keys", "k", "details('keys')", "Keys", ROW,
             help="Show the member's SSH keys."),
        Verb("members.forwards", "f", "details('forwards')", "Forwards", ROW,
             help="Show the member's port forwards."),
        Verb("members.snapshots", "z", "details('snapshots')", "Snapshots", ROW,
             help="Show the member's snapshots."),
        Verb("members.backup", "b", "backup", "Backup", ROW, HOST,
             help="Export the member under the cursor to a backup file."),
        Verb("members.import", "I", "import_backup", "Import", WHOLE, HOST, show=False,
             help="Make a member from a backup file."),
        Verb("members.shell", "e", "shell", "Shell", ROW, HOST,
             help="Open a shell in the member (it can change anything there)."),
        Verb("members.logs", "l", "logs", "Console log", ROW,
             help="Show the member's console log and LXD's log of it."),
        Verb("members.copy", "c", "copy", "Copy files", ROW,
             help="Copy files in or out of the member from a form (in is refused on a read-only host)."),
    ),
    # The Wasm tasks pane: tasks run in berth's own pool (or go to the broker) and change its history.
    *_owned(
        "wasm",
        Verb("wasm.new", "n", "new", "New task", WHOLE, CONSOLE,
             help="Queue a new task from a form, here or on the broker."),
        Verb("wasm.output", "l", "output", "Output", ROW,
             help="Show the output of the task under the cursor."),
        Verb("wasm.rerun", "R", "rerun", "Re-run", ROW, CONSOLE,
             help="Run the tasks again with the same spec."),
        Verb("wasm.cancel", "c", "cancel", "Cancel", ROW, CONSOLE,
             help="Cancel the queued or running tasks."),
        Verb("wasm.drop", "d", "drop", "Drop", ROW, CONSOLE, destroys=True,
             help="Remove the finished tasks from the history, after asking."),
    ),
    # The Providers pane: the broker's pairings and connections; `P` starts a process on the host.
    *_owned(
        "providers",
        Verb("providers.approve", "a", "approve", "Approve", ROW, CONSOLE,
             help="Pair the waiting key under the cursor, after naming it."),
        Verb("providers.drain", "D", "drain", "Drain", ROW, CONSOLE,
             help="Let the providers finish what they run and take nothing new."),
        Verb("providers.disconnect", "x", "disconnect", "Disconnect", ROW, CONSOLE, destroys=True,
             help="Close the providers' connections, after asking."),
        Verb("providers.unpair", "u", "unpair", "Unpair", ROW, CONSOLE, destroys=True,
             help="Revoke the providers' keys, after asking."),
        Verb("providers.log", "l", "log", "Log", ROW,
             help="Follow the log of the provider under the cursor."),
        Verb("providers.start", "P", "start_provider", "Start on host", WHOLE, HOST,
             help="Start `berth provider` on the current host."),
    ),
    # The member detail screens: a Close key for all, and each one's verbs.
    *_owned("detail", Verb("detail.close", "escape,q", "close", "Close",
                           help="Back to the Members pane.")),
    *_owned(
        "keys",
        Verb("keys.add", "a", "add", "Add key", WHOLE, HOST,
             help="Add an SSH key, pasted or read from a .pub file."),
        Verb("keys.remove", "d", "remove", "Remove key", ROW, HOST, destroys=True,
             help="Remove the keys, after asking."),
    ),
    *_owned(
        "forwards",
        Verb("forwards.add", "a", "add", "Add forward", WHOLE, HOST,
             help="Forward a port of the host to the member."),
        Verb("forwards.remove", "d", "remove", "Remove forward", ROW, HOST, destroys=True,
             help="Remove the forwards, after asking."),
    ),
    *_owned(
        "snapshots",
        Verb("snapshots.take", "c", "take", "Snapshot now", WHOLE, HOST,
             help="Take a snapshot of the member now."),
        Verb("snapshots.restore", "R", "restore", "Restore", ROW, HOST, destroys=True,
             help="Restore the snapshot under the cursor, after asking."),
        Verb("snapshots.delete", "d", "remove", "Delete", ROW, HOST, destroys=True,
             help="Delete the snapshots, after asking."),
        Verb("snapshots.schedule", "S", "schedule", "Schedule", WHOLE, HOST,
             help="Set when snapshots are taken and how long they stay."),
    ),
    # The container detail screen (`enter` on a container, tui/screens/container_detail.py).
    *_owned(
        "container_detail",
        Verb("container_detail.close", "escape,q", "close", "Back",
             help="Back to the Containers pane."),
        Verb("container_detail.previous_tab", "left_square_bracket", "previous_tab", "Prev tab",
             help="Show the previous tab."),
        Verb("container_detail.next_tab", "right_square_bracket", "next_tab", "Next tab",
             help="Show the next tab (1-9 show one)."),
        *(
            Verb(f"container_detail.tab_{tab}", str(number), f"show_tab('{tab}')", title, show=False,
                 help=f"Show the {title} tab.")
            for number, (tab, title) in enumerate(
                (("summary", "Summary"), ("env", "Env"), ("labels", "Labels"), ("mounts", "Mounts"),
                 ("ports", "Ports"), ("networks", "Networks"), ("health", "Health"),
                 ("resources", "Resources"), ("raw", "Raw")),
                1,
            )
        ),
        Verb("container_detail.reload", "r", "reload", "Reload",
             help="Read the container's inspect document again."),
        Verb("container_detail.secrets", "s", "toggle_secrets", "Secrets",
             help="Show the values of env variables named like *PASSWORD*, *TOKEN*, *SECRET*, *KEY*, "
                  "or hide them again."),
        Verb("container_detail.limits", "e", "edit_limits", "Edit limits", WHOLE, HOST,
             help="Change the restart policy and limits from a form (docker update)."),
        Verb("container_detail.copy", "c", "copy", "Copy files",
             help="Copy files in or out of the container from a form (in is refused on a read-only host)."),
        # Priority, as app.command: the prompt must open before the letters typed after ':' are
        # routed, or they act as this screen's keys (`o` would sort the tab).
        Verb("container_detail.command", "colon", "command_line", "Command", show=False, priority=True,
             help="Open the `:` prompt over this screen (`:jobs`, `:help`, `:q`...)."),
    ),
    # The other screens and dialogs.
    *_owned(
        "audit",
        Verb("audit.close", "escape,q", "close", "Back",
             help="Back to the console."),
        Verb("audit.reload", "r", "reload", "Reload",
             help="Read the audit log again."),
    ),
    *_owned(
        "confirm",
        Verb("confirm.no", "escape,n", "answer(False)", "Cancel",
             help="Answer no: nothing is done."),
        Verb("confirm.yes", "y", "answer(True)", "Confirm",
             help="Answer yes: do what was asked."),
    ),
    *_owned(
        "form",
        Verb("form.cancel", "escape", "cancel", "Cancel",
             help="Close the form without doing anything."),
        # Priority: acted on as the key arrives, before the keys typed after it are routed, so a
        # fast typist's (or a paste's) next letters land in the field it moves to. Handled by the
        # field, the keys behind it would already be on their way to the field it leaves.
        Verb("form.next", "tab", "app.focus_next", "Next field", show=False, priority=True,
             help="Move to the next field."),
        Verb("form.previous", "shift+tab", "app.focus_previous", "Previous field", show=False, priority=True,
             help="Move to the previous field."),
        Verb("form.enter", "enter", "enter", "Next field, or submit", show=False, priority=True,
             help="Move to the next field; submit from the last."),
    ),
    *_owned(
        "help.table",
        Verb("help.top", "home,g", "scroll_top", "First row", show=False,
             help="Go to the first row."),
        Verb("help.bottom", "end,G", "scroll_bottom", "Last row", show=False,
             help="Go to the last row."),
    ),
    *_owned("help", Verb("help.close", "escape,q,question_mark", "close", "Close",
                         help="Back to where you were.")),
    *_owned(
        "jobs",
        Verb("jobs.close", "escape,q", "close", "Back",
             help="Back to the panes."),
        Verb("jobs.cancel", "c", "cancel_jobs", "Cancel job",
             help="Cancel the running jobs, after asking."),
    ),
    *_owned("logs", Verb("logs.close", "escape,q", "close", "Back",
                         help="Stop reading the log and go back.")),
    *_owned("picker", Verb("picker.cancel", "escape", "cancel", "Cancel",
                           help="Close without choosing.")),
    *_owned("top", Verb("top.close", "escape,q", "close", "Back",
                        help="Back to the pane.")),
    # Widgets.
    *_owned(
        "command_line",
        Verb("command_line.close", "escape", "dismiss", "Close",
             help="Clear and close the `:` prompt."),
        Verb("command_line.complete", "tab", "complete", "Complete", show=False,
             help="Accept the suggested completion."),
    ),
    *_owned("log.prompt", Verb("log.prompt.close", "escape", "dismiss", "Close",
                               help="Close the prompt without acting.")),
    *_owned(
        "log",
        Verb("log.search", "slash", "open_search", "Search",
             help="Search: text, or ~regex."),
        Verb("log.next", "n", "next_match", "Next",
             help="Go to the next match."),
        Verb("log.previous", "N", "previous_match", "Prev",
             help="Go to the previous match."),
        Verb("log.filter", "f", "toggle_filter", "Filter",
             help="Show only matches, or all."),
        Verb("log.timestamps", "t", "toggle_timestamps", "Times",
             help="Show or hide timestamps."),
        Verb("log.wrap", "w", "toggle_wrap", "Wrap",
             help="Wrap long lines, or scroll sideways."),
        Verb("log.colours", "c", "toggle_colours", "Colours",
             help="Keep or strip ANSI colours."),
        Verb("log.save", "ctrl+s", "open_save", "Save",
             help="Save the lines to a file."),
        Verb("log.marker", "m", "marker", "Marker",
             help="Add a marker line with the time."),
        Verb("log.range", "s", "pick_range", "Range",
             help="Show another range: tail or since."),
        Verb("log.follow", "end,G", "follow", "Follow",
             help="Jump to the end and follow."),
        Verb("log.copy", "y", "copy", "Copy",
             help="Copy the match, else the screen."),
    ),
    *_owned("table.filter", Verb("table.filter_cancel", "escape", "cancel", "Cancel filter",
                                 help="Close the prompt and put the filter back as it was.")),
    *_owned(
        "table",
        Verb("table.filter", "slash", "open_filter", "Filter",
             help="Filter: text, ~regex, !not"),
        Verb("table.clear_filter", "escape", "clear_filter", "Clear filter",
             help="Show every row"),
        Verb("table.mark", "space", "toggle_mark", "Mark", ROW,
             help="Mark or unmark the row"),
        Verb("table.mark_all", "ctrl+a", "mark_all", "Mark all", show=False,
             help="Mark every row on show"),
        Verb("table.clear_marks", "ctrl+u", "clear_marks", "Unmark", show=False,
             help="Unmark every row"),
        Verb("table.sort_next", "o", "sort_next", "Sort",
             help="Sort by the next column"),
        Verb("table.copy", "y", "copy", "Copy", ROW, show=False,
             help="Copy the ids"),
        Verb("table.sort_reverse", "O", "sort_reverse", "Reverse", show=False,
             help="Reverse the sort"),
        Verb("table.group", "g", "toggle_group", "Group", show=False,
             help="Group rows by project"),
    ),
)
"""The registry, owner by owner in the order their keys are listed (footer and `?`)."""


class Registry:
    """The verbs, looked up by id and by owner; ids are unique."""

    def __init__(self, verbs: Iterable[Verb]) -> None:
        self.verbs = tuple(verbs)
        self.by_id = {verb.id: verb for verb in self.verbs}
        if len(self.by_id) != len(self.verbs):
            raise ValueError("two verbs share an id")
        if nameless := [verb.id for verb in self.verbs if not verb.owner]:
            raise ValueError(f"verbs without an owner: {nameless}")


REGISTRY = Registry(VERBS)
"""The console's registry. Read through the functions below, so a test can put its own in place."""


def find(verb_id: str | None) -> Verb | None:
    """The verb with binding id `verb_id`, or None."""
    return REGISTRY.by_id.get(verb_id or "")


def all_verbs() -> tuple[Verb, ...]:
    """Every verb, in registry order."""
    return REGISTRY.verbs


def owned_by(owner: str) -> tuple[Verb, ...]:
    """The verbs of `owner`, in footer order."""
    return tuple(verb for verb in REGISTRY.verbs if verb.owner == owner)


def bound_by(owner: str) -> tuple[Verb, ...]:
    """The verbs the class that is `owner` binds: those it owns and those it binds `also`."""
    return tuple(verb for verb in REGISTRY.verbs if verb.owner == owner or owner in dict(verb.also))


def bindings(owner: str) -> list[BindingType]:
    """The `BINDINGS` of the class that is `owner`: one Binding per verb it binds."""
    from textual.binding import Binding  # here: the module itself must not load Textual

    return [
        Binding(
            verb.keys,
            verb.action,
            verb.label_in(owner),
            show=verb.show,
            priority=verb.priority,
            tooltip=verb.help,
            id=verb.id,
        )
        for verb in bound_by(owner)
    ]


def action_views(owner: str) -> dict[str, str]:
    """Action name -> the one view of `owner` its verbs work on (verbs for every view: absent)."""
    return {verb.action_name: verb.view for verb in owned_by(owner) if verb.view}
