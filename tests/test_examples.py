"""Every program in examples/ runs as a user would run it, and does what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tfao.http.server import ServerProcess
from test_aoconnect import aoconnect_installed  # noqa: F401 (a fixture)
from test_cli import make_home

EXAMPLES = Path(__file__).parent.parent / "examples"
TIMEOUT = 300


def run_example(*command: str, cwd: Path = EXAMPLES, env: dict | None = None) -> str:
    path = os.pathsep.join([str(EXAMPLES.parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, **(env or {})}
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def test_a_process_with_a_handler_driven_from_python():
    lines = run_example(sys.executable, "process_with_handler.py").splitlines()
    assert re.fullmatch(r"spawned [A-Za-z0-9_-]{43}", lines[0])
    assert lines[1].endswith("says: 1 items: milk") and lines[2].endswith("says: 2 items: milk, bread")
    assert lines[3] == "dry-run: 2 items"


def test_the_fixtures_example_passes():
    out = run_example(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_my_process.py")
    assert "3 passed" in out


def test_similarity_search_in_a_process():
    lines = run_example(sys.executable, "similarity_search.py").splitlines()
    assert lines[0] == "indexed 5 documents"
    cat, economy = lines.index("Where is the cat resting?"), lines.index("What happened to the economy?")
    assert {line.split(None, 1)[1] for line in lines[cat + 1:cat + 3]} == {
        "The cat sleeps on the warm windowsill.", "A kitten is napping in the sun."}
    assert {line.split(None, 1)[1] for line in lines[economy + 1:economy + 3]} == {
        "The central bank raised interest rates.", "Stock markets fell sharply on Monday."}


def test_aoconnect_against_tfao_serve(aoconnect_installed, tmp_path):  # noqa: F811
    # the example as a user has it after npm install: its folder with aoconnect in node_modules
    (tmp_path / "hello.mjs").write_text((EXAMPLES / "aoconnect" / "hello.mjs").read_text())
    (tmp_path / "node_modules").symlink_to(aoconnect_installed / "node_modules")
    home = make_home(tmp_path / "home")
    with ServerProcess(home) as server:
        out = run_example("node", "hello.mjs", cwd=tmp_path,
                          env={"TFAO_URL": server.url, "TFAO_MODULE": server.module_id, "TFAO_HOME": str(home)})
    assert re.match(r"spawned [A-Za-z0-9_-]{43}\neval: 42\nreply: Hello, aoconnect!\nhandlers: \d+\n$", out), out


def test_the_readme_fixture_example_passes_as_written(tmp_path):
    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme[readme.index("## Testing your processes with pytest"):]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    (tmp_path / "test_readme.py").write_text(code)
    out = run_example(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme.py", cwd=tmp_path)
    assert "1 passed" in out
