"""What live sources yield: log lines shared by every pane that streams (containers, instances, tasks)."""

from __future__ import annotations

from typing import NamedTuple


class LogLine(NamedTuple):
    """One line of a log stream (a tuple: a flood makes millions, and tuples are the cheapest).

    `timestamp` is the engine's own RFC 3339 text (kept as text: parsing every line of a flood
    would cost more than showing it); `stream` is "stdout", "stderr" or "system" for lines berth
    adds itself (a reconnect, a marker).
    """

    text: str
    stream: str = "stdout"
    timestamp: str | None = None
