"""Stats of the containers a view shows: sampled every few seconds, a bounded history each.

The view says which containers to sample (those on screen that run, typically) as a list of
`StatsTarget`s; the schedule samples exactly those, each host's together in one round, never all
containers and never a stream each.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from backends.docker_models import StatsPoint
from backends.errors import BerthError
from tui.models.host_feed import HostFeed

STATS_SECONDS = 2.0
"""Seconds between the end of one round of samples and the start of the next."""
STATS_HISTORY = 60
"""Samples kept per container (the strip's sparklines draw them)."""
STATS_MAX_ROWS = 60
"""The most containers sampled in one round."""


class StatsBackend(Protocol):
    """An engine that samples several containers' stats at once (`DockerBackend` does)."""

    async def stats_many(self, containers: Iterable[str], concurrency: int = 8) -> dict[str, StatsPoint]:
        """A sample of each of `containers` that could be read."""
        ...


@dataclass(frozen=True)
class StatsTarget:
    """One container to sample: the view's key for it, the feed of its host, its id there."""

    key: str
    feed: HostFeed[Any, Any]
    container: str


class StatsSchedule:
    """The stats history of the containers a view names, by the view's key."""

    def __init__(self, history: int = STATS_HISTORY, most: int = STATS_MAX_ROWS) -> None:
        self.history: dict[str, deque[StatsPoint]] = {}
        self.most = most
        self._length = history
        self._in_flight: set[str] = set()

    def last(self, key: str) -> StatsPoint | None:
        """The latest sample of `key`, if any."""
        points = self.history.get(key)
        return points[-1] if points else None

    def forget(self, key: str) -> None:
        """Drop `key`'s history (its container is gone); a sample of it under way is not kept."""
        self.history.pop(key, None)
        self._in_flight.discard(key)

    async def sample(self, targets: Sequence[StatsTarget]) -> set[str]:
        """One round over the first `most` of `targets` (each host's at once, the hosts side by
        side); the keys that got a new sample. A host that cannot be read gives none."""
        chosen = list(targets)[: self.most]
        self._in_flight = {t.key for t in chosen}
        by_feed: dict[int, list[StatsTarget]] = {}
        for target in chosen:
            by_feed.setdefault(id(target.feed), []).append(target)
        rounds = await asyncio.gather(*(self._sample_host(group) for group in by_feed.values()))
        sampled: set[str] = set()
        for points in rounds:
            for key, point in points.items():
                if key in self._in_flight:  # not forgotten meanwhile
                    self.history.setdefault(key, deque(maxlen=self._length)).append(point)
                    sampled.add(key)
        return sampled

    async def run(
        self, targets: Callable[[], Sequence[StatsTarget]], sampled: Callable[[set[str]], None]
    ) -> None:
        """For ever: sample what `targets()` names now, tell `sampled(keys)`, pause."""
        while True:
            sampled(await self.sample(targets()))
            await asyncio.sleep(STATS_SECONDS)

    @staticmethod
    async def _sample_host(targets: list[StatsTarget]) -> dict[str, StatsPoint]:
        backend: StatsBackend | None = targets[0].feed.backend
        if backend is None:
            return {}
        keys = {t.container: t.key for t in targets}
        try:
            points = await backend.stats_many(list(keys))
        except BerthError:
            return {}
        return {keys[cid]: point for cid, point in points.items() if cid in keys}
