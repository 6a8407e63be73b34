"""Every program in examples/ runs as a user would run it, and does what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"
TIMEOUT = 300


def run_example(*command: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLES.parent), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(command, cwd=EXAMPLES, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done


def test_the_fixtures_example_passes():
    done = run_example(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_process.py")
    assert "3 passed" in done.stdout
