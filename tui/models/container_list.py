"""The containers a view shows, every host's, by row key: each with its host, and the action under
way on it until the engine reports the state that action was waiting for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backends.docker_models import ContainerChange, ContainerInfo

PENDING_LABELS = {"stop": "stopping…", "start": "starting…", "restart": "restarting…"}
"""What a row says while its action is under way, until the engine reports the new state."""


@dataclass
class Pending:
    """An action under way on one container: what its row says meanwhile, and its state before."""

    verb: str
    before: ContainerInfo

    @property
    def label(self) -> str:
        """What the STATE cell says meanwhile ("restarting…")."""
        return PENDING_LABELS[self.verb]

    def reached(self, now: ContainerInfo) -> bool:
        """Whether `now` is the state the action was waiting for."""
        if self.verb == "stop":
            return now.state not in ("running", "paused", "restarting")
        if self.verb == "start":
            return now.state == "running"
        # A restart is done when it runs with a new start time (unknown before: the engine's answer says).
        before = self.before.started_at
        return now.state == "running" and bool(before) and now.started_at != before


class ContainerList:
    """Every container of the hosts on show by row key (`key(host, id)`), with its host and the
    action under way on it."""

    def __init__(self, key: Callable[[str, str], str]) -> None:
        self.key = key
        self.containers: dict[str, ContainerInfo] = {}
        self.where: dict[str, str] = {}
        """Row key -> host name."""
        self.pending: dict[str, Pending] = {}
        """Row key -> the action under way there."""

    def apply(self, host: str, change: ContainerChange) -> list[str]:
        """Bring `host`'s containers in line with `change` (a whole list replaces what it had);
        the keys forgotten (a whole list forgets every key first, and upserts those it names)."""
        forgotten = [k for k, h in self.where.items() if h == host] if change.full else []
        for key in forgotten:
            self._forget(key)
        for cid, container in change.upserts.items():
            key = self.key(host, cid)
            self.containers[key] = container
            self.where[key] = host
            pending = self.pending.get(key)
            if pending is not None and pending.reached(container):
                del self.pending[key]
        for cid in change.removed:
            key = self.key(host, cid)
            if self._forget(key):
                forgotten.append(key)
        return forgotten

    def of_host(self, host: str) -> list[ContainerInfo]:
        """`host`'s containers."""
        return [c for k, c in self.containers.items() if self.where[k] == host]

    def begin(self, verb: str, targets: dict[str, ContainerInfo]) -> bool:
        """`verb` goes to the containers `targets` names by key: whether their rows now say so
        (a verb with nothing to wait for, such as pause, changes no row before its event)."""
        if verb not in PENDING_LABELS:
            return False
        self.pending.update({key: Pending(verb, c) for key, c in targets.items()})
        return True

    def settle(self, key: str, *, failed: bool = False) -> Pending | None:
        """The engine answered the action under way on `key`: None when that ended it (it failed,
        the container went, or its new state came first); else the action, still waiting for
        its event."""
        pending = self.pending.get(key)
        container = self.containers.get(key)
        if pending is None or failed or container is None or pending.reached(container):
            self.pending.pop(key, None)
            return None
        return pending

    def give_up(self, key: str, pending: Pending) -> bool:
        """Stop waiting for `pending` on `key` (its event never came): whether it was still waited for."""
        if self.pending.get(key) is not pending:
            return False
        del self.pending[key]
        return True

    def _forget(self, key: str) -> bool:
        self.where.pop(key, None)
        self.pending.pop(key, None)
        return self.containers.pop(key, None) is not None
