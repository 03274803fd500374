"""berth's engine: Docker, LXD, wasm and broker backends, config and hosts. No UI code here."""

__version__ = "0.1.0"
