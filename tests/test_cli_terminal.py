"""Long work shows progress on a terminal (driven through tmux), and none when the output is not one."""

from __future__ import annotations

import os
import re
import shlex
import sys

import pytest

from test_cli import make_home, tfao
from test_repl import Tmux, tmux_available  # noqa: F401 (a fixture)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SLOW_EVAL = "local x = 0; for i = 1, 4e8 do x = x + i end; return 'summed'"  # a few seconds: past the 1 s before progress shows


def terminal_running(home, *args) -> Tmux:
    """``tfao ARGS`` in a terminal that stays open after the command ends, so its last screen can be read."""
    passed_on = {name: os.environ[name] for name in ("PYTHONPATH",) if name in os.environ}
    command = [shlex.quote(word) for word in (sys.executable, "-m", "tfao.cli", *args)]
    return Tmux([*command, "; sleep 600"], {"TFAO_HOME": str(home), **passed_on})


@pytest.fixture
def home(tmp_path):
    return make_home(tmp_path / "home")


def test_model_import_shows_a_progress_bar(tmux_available, home):
    term = terminal_running(home, "weave", "import", MINILM)
    try:
        screen = term.wait_for(rf"importing {re.escape(MINILM)}: 100%\|.*\| 91\.6M/91\.6M.*\n[A-Za-z0-9_-]{{43}}$")
        assert "error" not in screen
    finally:
        term.close()


def test_no_progress_bar_when_the_output_is_not_a_terminal(home):
    done = tfao(home, "weave", "import", MINILM)
    assert done.stderr == "" and re.fullmatch(r"[A-Za-z0-9_-]{43}\n", done.stdout)


def test_a_long_wait_shows_the_time_it_takes(tmux_available, home):
    pid = tfao(home, "spawn").stdout.split()[0]
    term = terminal_running(home, "eval", "--process", pid, SLOW_EVAL)
    try:
        term.wait_for(r"waiting for the result of [A-Za-z0-9_-]{43} 00:0\d")
        screen = term.wait_for(r"summed$")
        assert "waiting for the result" not in screen  # the line is gone once the result is in
    finally:
        term.close()
