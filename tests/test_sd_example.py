"""examples/image_in_a_process.py makes a PNG through a process on a real node, the same bytes every run."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

EXAMPLE = Path(__file__).parent.parent / "examples" / "image_in_a_process.py"


@pytest.mark.slow
def test_the_example_draws_the_same_png_twice(tmp_path):
    hashes = []
    for run in range(2):
        out = tmp_path / f"drawing-{run}.png"
        done = subprocess.run([sys.executable, str(EXAMPLE), "-o", str(out), "--steps", "2"], capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        assert out.read_bytes().startswith(b"\x89PNG")
        hashes.append(hashlib.sha256(out.read_bytes()).hexdigest())
        assert f"sha256 {hashes[-1]}" in done.stdout
    assert hashes[0] == hashes[1]
