"""Textual-free models the panes draw: what a host's engine holds and how it is kept current.

Nothing here imports Textual or Rich: a model is driven by asyncio alone, so it can be tested
against a real engine without a screen, and any number of views can share its shape.
"""
