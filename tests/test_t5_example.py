"""examples/summarize.py summarises and samples through a process, as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sentencepiece")

from test_t5_pipelines import tiny_t5_folder  # noqa: E402
from tfao.models.pipelines import pipeline  # noqa: E402

EXAMPLE = Path(__file__).parent.parent / "examples" / "summarize.py"


def test_summaries_through_a_process(tmp_path):
    folder = tmp_path / "tiny-t5"
    folder.mkdir()
    tiny_t5_folder(folder)
    text = "the quick brown fox jumps over the lazy dog"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE.parent.parent), os.environ.get("PYTHONPATH", "")]),
           "TFAO_HOME": str(tmp_path / "home")}
    run = [sys.executable, str(EXAMPLE), str(folder), text]
    done = subprocess.run(run, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    expected = pipeline("summarization", folder)(text, max_new_tokens=60)[0]["summary_text"]
    assert lines[0] == f"summary: {expected}"
    assert lines[1].startswith("continued: ")
    again = subprocess.run(run, capture_output=True, text=True, env=env, timeout=600)
    assert again.stdout.splitlines()[0] == lines[0]
