"""kpy's errors, one tree; each kind carries the exit code the CLI returns for it.

    KpyError
     +-- UsageError          2  bad arguments or a bad file (file, line and field in the message)
     +-- EnvironmentProblem  4  the machine cannot run kpy (not root, no BPF, no libbpf, ...)

Exit codes: 0 passed, 1 tests failed, 2 usage or bad files, 3 re-record needed,
4 environment, 70 a bug in kpy (with a traceback), 130 interrupted (^C), 143 terminated.
"""

from __future__ import annotations


class KpyError(Exception):
    exit_code = 1


class UsageError(KpyError):
    exit_code = 2


class EnvironmentProblem(KpyError):
    exit_code = 4


class Terminated(BaseException):
    """SIGTERM, raised like ^C so every ``finally`` and context manager runs."""
