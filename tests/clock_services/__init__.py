"""Services whose answers depend on the wall clock, the same in Python and in Node.js: a
token that expires LIFETIME seconds after it is issued, checked against the clock."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
LIFETIME = 3
SERVICES = {
    "python": [sys.executable, str(HERE / "tokens.py")],
    "node": ["node", str(HERE / "tokens.js")],
}
TRAFFIC = f"{sys.executable} {HERE / 'traffic.py'}"
