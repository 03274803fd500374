"""Scrollbars whose thumbs start and end on whole cells.

Textual draws the ends of a scrollbar's thumb with partial-block glyphs (`▁▂▃▄▅▆▇`, `▉▊▋▌▍▎▏`)
for a smoother look. Where colour does not come through (NO_COLOR, a copy of the screen's text,
`tmux capture-pane`, a snapshot) those are stray characters: a `▅▅` at the right edge of the log
view, inspect, the help dialog and every long table, which reads like a sparkline leaking out.
With whole cells a thumb is blanks in reverse video, and nothing but the thumb shows.
"""

from __future__ import annotations

from typing import ClassVar

from textual.scrollbar import ScrollBar, ScrollBarRender


class WholeCellScrollBarRender(ScrollBarRender):
    """Textual's scrollbar with no partial glyph at the thumb's ends (see the module docstring)."""

    VERTICAL_BARS: ClassVar[list[str]] = [" "] * len(ScrollBarRender.VERTICAL_BARS)
    HORIZONTAL_BARS: ClassVar[list[str]] = [" "] * len(ScrollBarRender.HORIZONTAL_BARS)


def use_whole_cell_scrollbars() -> None:
    """Draw every scrollbar of the app with `WholeCellScrollBarRender` (Textual's documented hook:
    `ScrollBar.renderer`)."""
    ScrollBar.renderer = WholeCellScrollBarRender
