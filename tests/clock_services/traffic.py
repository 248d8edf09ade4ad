"""Logs in, then checks the token at once: what kpy records of a token service."""

from __future__ import annotations

import json
import os
import urllib.request

base = os.environ["BASE_URL"]  # kpy record's address for the service
with urllib.request.urlopen(urllib.request.Request(f"{base}/login", b"{}", method="POST")) as r:
    token = json.load(r)["token"]
check = urllib.request.Request(f"{base}/check", headers={"X-Token": token})
with urllib.request.urlopen(check) as r:
    assert json.load(r) == {"ok": True}
