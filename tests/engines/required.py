"""Whether a missing engine skips a test or fails it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def engines_required() -> bool:
    """True when engines must run: ``CI=true`` or ``BERTH_REQUIRE_ENGINES=1``."""
    return os.environ.get("CI") == "true" or os.environ.get("BERTH_REQUIRE_ENGINES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it when :func:`engines_required` says so."""
    if engines_required():
        pytest.fail(
            f"engine required (CI/BERTH_REQUIRE_ENGINES) but unavailable: {reason}",
            pytrace=False,
        )
    pytest.skip(reason)
