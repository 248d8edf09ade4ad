"""The guard: a small process beside kpy that removes the service's cgroup when kpy is gone.

kpy holds the write end of the guard's stdin. However kpy ends, SIGKILL included, the kernel
closes that pipe; the guard then kills every process in the cgroup (grandchildren too,
which PR_SET_PDEATHSIG alone would miss) and removes it. The BPF links need no guard: they
are file descriptors of kpy's, and the kernel detaches them when kpy's last fd closes.

Run as ``python -m kpy_ci.ebpf.guard CGROUP_DIR``.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from kpy_ci.ebpf import cgroup


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C is kpy's to handle, not ours
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path = Path(argv[0])
    while sys.stdin.buffer.read(4096):
        pass
    cgroup.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
