"""Development and load-test tools for rawpost: seed, bench, contracts, sql check, rehearse.

They import `service` and are never imported by it; `rawpost` finds them through the
`rawpost.commands` entry point when this package is installed (a development checkout).
"""

from __future__ import annotations

import socket
from pathlib import Path

# The source checkout these tools work on (bench/ scripts, service/generated/).
CHECKOUT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for a server this process starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
