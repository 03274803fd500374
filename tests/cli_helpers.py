"""Running the installed `berth` command in tests, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

BERTH = str(Path(sys.executable).parent / "berth")
"""The console script pip installed next to the interpreter running the tests."""


def berth(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `berth --config CONFIG ARGS...` in the test's environment (its own HOME and ~/.ssh)."""
    return subprocess.run(
        [BERTH, "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=timeout,
    )
