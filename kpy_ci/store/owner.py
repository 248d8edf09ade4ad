"""Who owns what kpy writes. kpy runs as root (eBPF), often through sudo in a CI job whose
later steps run as the user who called sudo: they must be able to read, commit, upload and
delete the test-sets and reports, so each file kpy writes is given back to ``SUDO_UID`` /
``SUDO_GID`` (as git and pip do for the files they write under sudo)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def sudo_owner(environ: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The user and group sudo was called by, when kpy runs as root under sudo."""
    env = os.environ if environ is None else environ
    uid, gid = env.get("SUDO_UID", ""), env.get("SUDO_GID", "")
    if os.geteuid() != 0 or not uid.isdigit() or not gid.isdigit() or uid == "0":
        return None
    return int(uid), int(gid)


def give_back(paths: Iterable[Path], environ: Mapping[str, str] | None = None) -> None:
    """Each path, and everything below a directory, owned by the user who called sudo."""
    owner = sudo_owner(environ)
    if owner is None:
        return
    for path in paths:
        for p in (path, *path.rglob("*")) if path.is_dir() else (path,):
            os.lchown(p, *owner)


def missing_parents(path: Path) -> list[Path]:
    """The directories ``mkdir(parents=True)`` would make for ``path``, outermost first."""
    made = []
    for p in (path, *path.parents):
        if p.exists():
            break
        made.append(p)
    return made[::-1]
