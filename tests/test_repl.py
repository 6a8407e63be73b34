"""``tfao repl`` in a real terminal (tmux), typed into as a person would; and its printing rules."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tfao.cli.repl import ChunkChecker, error_text, output_text, parse_error, prompt_of
from test_cli import make_home, tfao

WAIT_SECONDS = 60
PROMPT = r"[^\n]*\[Inbox:\d+\]> ?"  # a prompt line


# --------------------------------------------------------------------------------------- printing rules


def test_chunk_checker_continues_only_open_blocks():
    checker = ChunkChecker()
    for open_chunk in ["function f(a)", "if x then", "for i = 1, 3 do\n  print(i)", "t = {", "s = [[long"]:
        assert checker.needs_more(open_chunk), open_chunk
    for done_chunk in ["1 + 1", "function f() end", "x = 'unclosed", "end", "local = 1", "{a = 1}"]:
        assert not checker.needs_more(done_chunk), done_chunk


def test_output_shapes_print_as_aos_prints_them():
    assert output_text({"Output": {"data": "42", "prompt": "p> "}}) == "42"
    assert output_text({"Output": {"data": {"output": "7", "prompt": "p> "}}}) == "7"  # aos 1.x Eval
    assert output_text({"Output": {"data": {"prompt": "p> "}}}) == ""
    assert output_text({"Output": "plain"}) == "plain"
    assert prompt_of({"Output": {"data": {"output": "7", "prompt": "one> "}}}) == "one> "
    assert prompt_of({"Output": {"data": "7", "prompt": "two> "}}) == "two> "


def test_errors_keep_printed_lines_line_number_and_message():
    error = 'hello\n\n\x1b[31merror:\n\x1b[0m[string "aos"]:3: attempt to call a nil value (global \'f\')'
    parsed = parse_error(error)
    assert (parsed.printed, parsed.line) == ("hello", 3)
    assert parsed.message == "attempt to call a nil value (global 'f')"
    shown = error_text(error, "local a\nlocal b\nf()")
    assert "\x1b[31merror on line 3:\x1b[0m attempt to call" in shown and shown.endswith("f()")
    assert error_text("plain failure") == "\x1b[31merror:\x1b[0m plain failure"


# --------------------------------------------------------------------------------------- the terminal


class Tmux:
    """A tmux session running one command; type into it and read its screen."""

    def __init__(self, command: list[str], env: dict):
        self.name = "tfao-test-" + uuid.uuid4().hex[:8]
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        shell_command = f"cd {os.getcwd()} && env {exports} " + " ".join(command)
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", shell_command],
                       check=True)

    def type(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def screen(self, colours: bool = False) -> str:
        args = ["tmux", "capture-pane", "-p", "-S", "-", "-t", self.name] + (["-e"] if colours else [])
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout

    def wait_for(self, pattern: str, colours: bool = False) -> str:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            screen = self.screen(colours).rstrip()  # tmux pads the screen with empty lines
            if re.search(pattern, screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never appeared; the screen shows:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture(scope="module")
def tmux_available():
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is needed for the terminal tests")
        pytest.skip("tmux is not installed")


def repl(home, *args) -> Tmux:
    # the tmux server has its own environment: pass on what finds the package
    passed_on = {name: os.environ[name] for name in ("PYTHONPATH",) if name in os.environ}
    return Tmux([sys.executable, "-m", "tfao.cli", "repl", *args], {"TFAO_HOME": str(home), **passed_on})


@pytest.fixture(scope="module")
def terminal(tmux_available, tmp_path_factory):
    term = repl(make_home(tmp_path_factory.mktemp("repl-home")), "--name", "repl-test", "--poll", "0.3")
    term.wait_for(r"repl-test@.*\[Inbox:1\]>$")
    yield term
    term.close()


def answer_to(term: Tmux, code: str, expected: str) -> str:
    term.type(code)
    return term.wait_for(re.escape(code) + r"\n" + expected)


def test_evaluates_and_shows_the_process_prompt(terminal):
    screen = answer_to(terminal, "1 + 1", r"2\n" + PROMPT)
    coloured = terminal.screen(colours=True)
    assert "\x1b[32mrepl-test" in coloured  # the prompt keeps the process's colours
    assert screen.count("\n2\n") == 1


def test_open_block_continues_on_the_next_line(terminal):
    for line in ["function twice(x)", "  local y = x * 2", "  return y"]:
        terminal.type(line)
    terminal.type("end")
    terminal.wait_for(r"\.\.\.  end\n" + PROMPT)
    answer_to(terminal, "twice(21)", r"42\n")


def test_dryrun_mode_changes_nothing(terminal):
    terminal.type(".dryrun")
    terminal.wait_for(r"Dry-run mode on")
    answer_to(terminal, "Scratch = 'kept?'; return Scratch", r"kept\?\n\*")  # prompt marked with *
    terminal.type(".dryrun")
    terminal.wait_for(r"Dry-run mode off")
    answer_to(terminal, "return Scratch == nil", r"true\n")


def test_load_sends_a_file(terminal, tmp_path):
    script = tmp_path / "lib.lua"
    script.write_text("Loaded = {}\nfunction Loaded.hello(name)\n  return 'hello ' .. name\nend\n")
    terminal.type(f".load {script}")
    terminal.wait_for(r"Loading " + re.escape(str(script)))
    answer_to(terminal, "Loaded.hello('file')", r"hello file\n")


def test_error_shows_its_line_number_in_red(terminal):
    terminal.type(".editor")
    terminal.wait_for(r"editor mode")
    for line in ["local a = 1", "local b = nil", "return a + b", ".done"]:
        terminal.type(line)
    terminal.wait_for(r"error on line 3: attempt to perform arithmetic on a nil value")
    coloured = terminal.screen(colours=True)
    assert "\x1b[31merror on line 3:" in coloured


def test_incoming_message_printed_live(tmux_available, tmp_path):
    home = make_home(tmp_path / "served")
    server = subprocess.Popen([sys.executable, "-m", "tfao.cli", "serve", "--port", "0"],
                              env=dict(os.environ, TFAO_HOME=str(home)), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    term = None
    try:
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)
        pid = tfao(home, "spawn", "--url", url, "--name", "live").stdout.strip()
        term = repl(home, pid, "--url", url, "--poll", "0.3")
        term.wait_for(r"live@.*>$")
        term.type('Handlers.add("Hello", function(msg) print("hello from the other side: " .. msg.Data) end)')
        term.wait_for(r"\n\d+\n" + PROMPT + "$")
        subprocess.run(["tmux", "send-keys", "-t", term.name, "-l", "half-typed"], check=True)
        tfao(home, "send", "--url", url, "--process", pid, "--action", "Hello", "--data", "ping")
        # the message is printed above the prompt, and what was being typed is kept
        term.wait_for(r"hello from the other side: ping\n" + PROMPT + "half-typed")
    finally:
        if term is not None:
            term.close()
        server.terminate()
        server.wait(timeout=30)
