"""Real processes killed at chosen moments: the helpers of the SIGKILL tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def repo_env(**extra: str) -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH (subprocesses import it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def kill_when(cmd: list[str], ready: Callable[[], bool], *, delay: float = 0.0,
              timeout: float = 120, poll: float = 0.01) -> bool:
    """Start ``cmd``; once ``ready()`` holds (or ``timeout`` passed), wait ``delay`` seconds
    and SIGKILL it.

    Returns:
        True if the process was killed, False if it had already finished (successfully;
        a failure raises with the end of its stderr).
    """
    proc = subprocess.Popen(cmd, env=repo_env(), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(poll)
    time.sleep(delay)
    if proc.poll() is not None:
        err = proc.stderr.read().decode() if proc.stderr else ""
        assert proc.returncode == 0, err[-2000:]
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True
