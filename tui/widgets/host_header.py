"""The top line: which host berth is pointed at and the state of its engines."""

from __future__ import annotations

from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget

from backends.hosts import EngineState, HostState

_DOT = {
    "online": "$success",
    "offline": "$error",
    "refused": "$error",
    "untrusted": "$warning",
    "connecting": "$text-muted",
    "reconnecting": "$warning",
}
_ENGINE = {"up": "$success", "down": "$error", "absent": "$text-muted"}


def _engine_text(engine: EngineState) -> str:
    colour = _ENGINE.get(engine.state, "$text-muted")
    latency = f" {engine.latency_ms:g} ms" if engine.latency_ms is not None else ""
    return f"[{colour}]{engine.engine} {engine.state}{latency}[/]"


def _dot(state: str, label: str) -> str:
    """`● label` in the colour of `state`."""
    return f"[{_DOT.get(state, '$text-muted')}]● {escape(label)}[/]"


class HostHeader(Widget):
    """One line: the app's name, the current host with its state, and each engine's state.

    In the all-hosts view (`fleet` set) it shows every host with a dot in its state's colour.
    """

    host_name: reactive[str] = reactive("")
    host_url: reactive[str] = reactive("")
    state: reactive[HostState | None] = reactive(None)
    fleet: reactive[tuple[HostState, ...] | None] = reactive(None)

    def render(self) -> str:
        """Compose the line from the current host and its last probe."""
        if self.fleet is not None:
            up = sum(1 for s in self.fleet if s.state == "online")
            hosts = "  ".join(_dot(s.state, s.name) for s in self.fleet)
            return f"[b]⚓ berth[/b]  [b]all hosts[/b] [dim]{up}/{len(self.fleet)} online[/dim]  {hosts}"
        parts = [f"[b]⚓ berth[/b]  host [b]{escape(self.host_name)}[/b] [dim]{escape(self.host_url)}[/dim]"]
        state = self.state
        if state is None or state.name != self.host_name:
            parts.append("[$text-muted]● probing…[/]")
        else:
            parts.append(_dot(state.state, state.state))
            parts.extend(_engine_text(e) for e in state.engines)
            if state.detail:
                parts.append(f"[dim]{escape(state.detail)}[/dim]")
        return "  ".join(parts)
