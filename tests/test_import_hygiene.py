"""backends/ is the engine and must never pull in the UI toolkits (DESIGN: rules of the house)."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import backends

ROOT = Path(__file__).resolve().parent.parent


def all_backend_modules() -> list[str]:
    return ["backends"] + [m.name for m in pkgutil.walk_packages(backends.__path__, prefix="backends.")]


def test_every_backend_module_imports_without_textual_or_rich() -> None:
    modules = all_backend_modules()
    assert "backends.config" in modules and "backends.errors" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"backends loaded UI modules: {result.stdout.strip()}"
