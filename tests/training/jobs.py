"""Training jobs in processes of their own, started together: wait for them, release them, collect them."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def wait_for(check, seconds: float, what: str, procs=()) -> None:
    """Poll ``check()`` until it holds; AssertionError naming ``what`` on a timeout, or with the stderr of
    any of ``procs`` that exited meanwhile."""
    deadline = time.monotonic() + seconds
    while not check():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"job exited while waiting for {what}: {proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def release_together(procs: list[subprocess.Popen], ready: list[Path], go: Path, start_s: float,
                     run_s: float) -> list[tuple[str, str]]:
    """Wait until every job has written its ``ready`` file (imports done), touch ``go`` so that they start at
    the same moment, and return each one's (stdout, stderr); every job is killed whatever happens."""
    try:
        wait_for(lambda: all(p.exists() for p in ready), start_s, "the jobs to start", procs)
        go.touch()
        return [proc.communicate(timeout=run_s) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
