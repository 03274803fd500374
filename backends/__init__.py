"""berth's engine: Docker, LXD, wasm and broker backends, config and hosts. No UI code here."""

import warnings

__version__ = "0.1.0"

# asyncssh 2.24 names DSA key types as it loads, which cryptography >= 48 warns of: five lines on a
# command's stderr before berth's own sentence, wherever asyncssh is first imported (SSH hosts,
# key checks). Only that warning, only from asyncssh's own modules.
warnings.filterwarnings("ignore", "DSA is deprecated", module=r"asyncssh\.")
