"""A file written whole or not at all: through a temporary file beside it, then renamed,
so a reader (or a CI step after a kill) never sees half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kpy_ci.store.owner import give_back, missing_parents


def write_file(path: Path, data: bytes) -> None:
    made = missing_parents(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, 0o644)
        give_back([*made, Path(temporary)])
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
