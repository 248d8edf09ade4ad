"""The service's output: passed through to kpy's stderr, each line marked as the service's,
and its last lines kept for error messages (and reports)."""

from __future__ import annotations

import collections
import threading
from typing import IO

TAIL_LINES = 400


class ServiceLog:
    """Reads a pipe in a thread until it closes: ``start(proc.stdout)``."""

    def __init__(self, out: IO[str] | None, prefix: str = "service | ") -> None:
        self.out = out
        self.prefix = prefix
        self.lines: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.count = 0  # lines read so far
        self._thread: threading.Thread | None = None

    def start(self, pipe: IO[bytes]) -> None:
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: IO[bytes]) -> None:
        for raw in pipe:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.count += 1
            if self.out is not None:
                self.out.write(f"{self.prefix}{line}\n")  # one write: kpy prints too
                self.out.flush()
        pipe.close()

    def wait(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def tail(self, count: int = 20) -> str:
        lines = list(self.lines)[-count:]
        return "\n".join(f"  | {line}" for line in lines) or "  | (nothing)"

    def since(self, count: int) -> str:
        """The lines read after the first ``count`` (those still kept)."""
        lines = list(self.lines)
        return "\n".join(lines[max(len(lines) - (self.count - count), 0) :])
