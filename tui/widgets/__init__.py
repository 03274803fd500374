"""Widgets shared by berth's screens and panes."""
