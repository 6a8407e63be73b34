"""The ``tfao`` command, run as a user runs it: a subprocess on a node home."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tfao.node.node import Node
from weavedrive.wallet import premade_wallets

COMMAND_TIMEOUT = 120


def make_home(path):
    """A node home whose wallet is a premade one (generating an RSA-4096 key takes a second)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "wallet.json").write_text(json.dumps(premade_wallets()[0].jwk))
    return path


def tfao(home, *args, check=True):
    env = dict(os.environ, TFAO_HOME=str(home), TFAO_COLOR="never")
    done = subprocess.run([sys.executable, "-m", "tfao.cli", *args], capture_output=True, text=True, env=env,
                          timeout=COMMAND_TIMEOUT)
    assert "Traceback" not in done.stderr, done.stderr
    if check:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("tfao-home"))


@pytest.fixture(scope="module")
def pid(home):
    done = tfao(home, "spawn", "--name", "cli-test", "--tag", "Color=blue")
    lines = done.stdout.split()
    assert len(lines) == 1 and re.fullmatch(r"[A-Za-z0-9_-]{43}", lines[0])
    return lines[0]


def test_eval_prints_the_value(home, pid):
    assert tfao(home, "eval", "--process", pid, "1 + 41").stdout.strip() == "42"


def test_send_runs_a_handler_and_shows_its_output_and_reply(home, pid):
    tfao(home, "eval", "--process", pid,
         'Handlers.add("Greet", function(msg) print("greeted by " .. msg.Data); msg.reply({Data = "hi " .. msg.Data}) end)')
    lines = tfao(home, "send", "--process", pid, "--action", "Greet", "--data", "ada").stdout.splitlines()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", lines[0])  # the message id first
    assert lines[1] == "greeted by ada"
    assert lines[2].startswith("-> ") and 'Data="hi ada"' in lines[2]


def test_dry_run_changes_nothing(home, pid):
    assert tfao(home, "eval", "--process", pid, "--dry-run", "Counter = 7; return Counter").stdout.strip() == "7"
    assert tfao(home, "eval", "--process", pid, "return Counter == nil").stdout.strip() == "true"


def test_eval_of_a_file(home, pid, tmp_path):
    script = tmp_path / "script.lua"
    script.write_text("local words = {}\nfor w in ('a b c'):gmatch('%a') do words[#words + 1] = w end\n"
                      "return table.concat(words, '-')\n")
    assert tfao(home, "eval", "--process", pid, str(script)).stdout.strip() == "a-b-c"


def test_error_shows_its_line_and_fails(home, pid):
    done = tfao(home, "eval", "--process", pid, 'print("before")\nlocal x = 1\nerror("it broke")', check=False)
    assert done.returncode == 1
    assert "error on line 3: it broke" in done.stderr
    assert 'error("it broke")' in done.stderr  # the line itself is shown
    assert "before" in done.stderr  # what was printed before the error


def test_compile_error_has_a_line_number(home, pid):
    done = tfao(home, "eval", "--process", pid, "local a = 1\nlocal = 2", check=False)
    assert done.returncode == 1 and "error on line 2:" in done.stderr


def test_ps_lists_the_process_under_a_header(home, pid):
    header, *rows = tfao(home, "ps").stdout.splitlines()
    assert header.split() == ["ID", "NAME", "OWNER", "MESSAGES"]
    line = next(line for line in rows if line.startswith(pid))
    assert "cli-test" in line and premade_wallets()[0].address in line
    assert re.search(r"\s\d+$", line)


def test_results_show_one_block_per_message(home, pid):
    tfao(home, "eval", "--process", pid, "return 'marker-' .. 6 * 7")
    out = tfao(home, "results", pid, "--sort", "DESC", "--limit", "1").stdout
    assert re.match(r"-- message \d+ --\nmarker-42\n", out)
    everything = tfao(home, "results", pid, "--limit", "100").stdout
    assert "-- message 0 --" in everything and "marker-42" in everything


def test_user_errors_are_one_line_and_exit_1(home, pid):
    unknown = tfao(home, "eval", "--process", "x" * 43, "1", check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines()[-1] == f"error: process {'x' * 43} not found on this node"
    bad_tag = tfao(home, "send", "--process", pid, "--action", "A", "--tag", "novalue", check=False)
    assert bad_tag.returncode == 1 and "bad tag 'novalue'" in bad_tag.stderr


def test_busy_home_says_who_holds_it(tmp_path):
    home = make_home(tmp_path / "busy")
    with Node(home):
        done = tfao(home, "ps", check=False)
    assert done.returncode == 1
    assert "in use by another tfao command" in done.stderr and "wait for it to end" in done.stderr


def test_demo_tells_what_happens(tmp_path):
    out = tfao(make_home(tmp_path / "demo"), "demo").stdout
    assert "the process answers: 42" in out and "Hello, world!" in out


def test_commands_against_a_served_node(tmp_path):
    home = make_home(tmp_path / "served")
    env = dict(os.environ, TFAO_HOME=str(home))
    server = subprocess.Popen([sys.executable, "-m", "tfao.cli", "serve", "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)
        remote = ("--url", url)
        pid = tfao(home, "spawn", *remote, "--name", "remote").stdout.strip()
        assert tfao(home, "eval", *remote, "--process", pid, "1 + 41").stdout.strip() == "42"
        assert tfao(home, "eval", *remote, "--process", pid, "--dry-run", "Z = 1; return Z").stdout.strip() == "1"
        assert tfao(home, "eval", *remote, "--process", pid, "return Z == nil").stdout.strip() == "true"
        failed = tfao(home, "eval", *remote, "--process", pid, "\nerror('remote')", check=False)
        assert failed.returncode == 1 and "error on line 2: remote" in failed.stderr
        assert "-- message 0 --" in tfao(home, "results", *remote, pid).stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


DASH_ID = "-AYq" + "x" * 39  # about one id in 64 starts with "-": argparse must not take it for an option


@pytest.mark.parametrize("argv, attribute", [
    (["send", "--process", DASH_ID, "--action", "Ping"], "process"),
    (["eval", "--process", DASH_ID, "return 1"], "process"),
    (["eval", "return 1", "--process", DASH_ID], "process"),
    (["results", DASH_ID], "process"),
    (["results", DASH_ID, "--limit", "3"], "process"),
    (["repl", DASH_ID], "process"),
    (["spawn", "--module", DASH_ID], "module"),
    (["spawn", "--scheduler", DASH_ID, "--url", "http://127.0.0.1:1"], "scheduler"),
    (["spawn", "--data", DASH_ID], "data"),
    (["weave", "get", DASH_ID], "id"),
    (["weave", "get", "-o", "out.bin", DASH_ID], "id"),
    (["weave", "attest", DASH_ID], "id"),
    (["weave", "avail", DASH_ID, "B" * 43, DASH_ID], "ids"),
    (["weave", "verify", DASH_ID], "ids"),
])
def test_ids_that_start_with_a_dash_are_read_in_any_position(argv, attribute):
    from tfao.cli.main import build_parser
    from weavedrive.cli import parse_args

    value = getattr(parse_args(build_parser(), argv), attribute)
    assert value == DASH_ID or (isinstance(value, list) and DASH_ID in value and " " + DASH_ID not in value)


def test_a_dash_id_reaches_the_command(home):
    done = tfao(home, "results", DASH_ID, check=False)
    assert done.returncode == 1 and "expected one argument" not in done.stderr
    assert "error:" in done.stderr and DASH_ID in done.stderr
    done = tfao(home, "weave", "get", DASH_ID, check=False)
    assert done.returncode == 1 and "error:" in done.stderr and "usage" not in done.stderr
