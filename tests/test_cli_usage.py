"""The ``tfao`` command as a script and a new user meet it: JSON output, wallets, help, and errors
that say what to do."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys

import httpx
import pytest

from tfao.cli.main import build_parser
from tfao.cli.repl import error_text
from tfao.http.server import ServerProcess
from test_cli import make_home, tfao
from weavedrive.wallet import premade_wallets

ID = r"[A-Za-z0-9_-]{43}"


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("usage-home"))


@pytest.fixture(scope="module")
def pid(home):
    return json.loads(tfao(home, "spawn", "--json", "--name", "usage").stdout)["process"]


def test_json_output_of_spawn_send_eval_results_and_ps(home, pid):
    spawned = json.loads(tfao(home, "spawn", "--json").stdout)
    assert re.fullmatch(ID, spawned["process"]) and "Output" in spawned["result"]
    ping = 'Handlers.add("Ping", function(msg) msg.reply({Data = "Pong"}) end); return 6 * 7'
    evaluated = json.loads(tfao(home, "eval", "--json", "--process", pid, ping).stdout)
    assert re.fullmatch(ID, evaluated["message"]) and evaluated["result"]["Output"]["data"] == "42"
    dry = json.loads(tfao(home, "eval", "--json", "--dry-run", "--process", pid, "return 1").stdout)
    assert dry["message"] is None and dry["result"]["Output"]["data"] == "1"
    sent = json.loads(tfao(home, "send", "--json", "--process", pid, "--action", "Ping").stdout)
    assert sent["result"]["Messages"][0]["Data"] == "Pong"
    page = json.loads(tfao(home, "results", "--json", pid, "--sort", "DESC", "--limit", "1").stdout)
    assert page["edges"][0]["node"]["Messages"][0]["Data"] == "Pong"
    listed = {p["id"]: p for p in json.loads(tfao(home, "ps", "--json").stdout)}
    assert listed[pid]["name"] == "usage" and listed[pid]["messages"] >= 3


def test_an_error_result_in_json_still_exits_1(home, pid):
    done = tfao(home, "eval", "--json", "--process", pid, "error('no')", check=False)
    assert done.returncode == 1 and "no" in json.loads(done.stdout)["result"]["Error"]


def test_wallet_signs_as_another_user(home, pid, tmp_path):
    stranger = premade_wallets()[1]
    (tmp_path / "stranger.json").write_text(json.dumps(stranger.jwk))
    wallet = ("--wallet", str(tmp_path / "stranger.json"))
    tfao(home, "eval", "--process", pid, 'Handlers.add("Who", function(msg) msg.reply({Data = msg.From}) end)')
    sent = json.loads(tfao(home, "send", *wallet, "--json", "--process", pid, "--action", "Who").stdout)
    assert sent["result"]["Messages"][0]["Data"] == stranger.address
    # a stranger's Eval lands in the Inbox and changes nothing
    tfao(home, "eval", *wallet, "--process", pid, "Taken = true")
    assert tfao(home, "eval", "--process", pid, "return tostring(Taken)").stdout.strip() == "nil"
    spawned = json.loads(tfao(home, "spawn", *wallet, "--json", "--name", "theirs").stdout)["process"]
    assert {p["id"]: p for p in json.loads(tfao(home, "ps", "--json").stdout)}[spawned]["owner"] == stranger.address


def test_version(home):
    done = tfao(home, "--version")
    assert re.fullmatch(r"tfao \S+\n", done.stdout)


def every_parser(parser: argparse.ArgumentParser, name="tfao"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from every_parser(sub, f"{name} {sub_name}")


def test_every_command_and_option_has_help():
    for name, parser in every_parser(build_parser()):
        assert parser.description, f"{name} has no description"
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {'/'.join(action.option_strings) or action.dest} has no help"


def test_a_missing_file_is_an_error_not_lua(home, pid):
    done = tfao(home, "eval", "--process", pid, "./missing.lua", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: ./missing.lua: no such file (CODE_OR_FILE is a Lua file, or Lua code"
                                   " such as 'return 1 + 1')")
    assert tfao(home, "eval", "--process", pid, "1/2").stdout.strip() == "0.5"  # code with a slash is code


def test_a_model_that_is_not_one_says_what_a_model_is(home, pid):
    done = tfao(home, "eval", "--process", pid,
                'return require("transformers").bert.encode_text({model = "garbage", prompt = "x"})', check=False)
    assert done.returncode == 1
    assert "opts.model is not a model manifest" in done.stderr
    assert "bytes, base64, a weave id or a reference" in done.stderr


def test_an_unattested_id_points_to_weave_attest(home, pid, tmp_path):
    (tmp_path / "note.txt").write_text("hello")
    item = tfao(home, "weave", "add", str(tmp_path / "note.txt")).stdout.strip()
    read = f"return require('weavedrive').getData('{item}')"
    done = tfao(home, "eval", "--process", pid, read, check=False)
    assert done.returncode == 1 and "not admissible" in done.stderr
    assert f"tfao weave attest {item}" in done.stderr
    tfao(home, "weave", "attest", item)
    assert tfao(home, "eval", "--process", pid, read).stdout.strip() == "hello"


def test_the_terminal_gives_the_same_hint():
    item = "A" * 43
    shown = error_text(f"HALT: FILE NOT FOUND: {item} is not admissible for process {'P' * 43} at block 3")
    assert shown.endswith(f"tfao weave attest {item}\x1b[0m")


def test_a_timeout_says_what_becomes_of_the_message(home, pid):
    done = tfao(home, "eval", "--timeout", "0.2", "--process", pid,
                "local x = 0; for i = 1, 2e8 do x = x + i end; return 'slow ' .. x", check=False)  # about 1 s
    assert done.returncode == 1
    assert re.search(rf"no result for message {ID} within 0.2 s \(--timeout\): it is scheduled", done.stderr)
    assert "the next time it opens the home" in done.stderr
    # and so it is: a later message's result comes after it
    assert tfao(home, "eval", "--process", pid, "return 'after'").stdout.strip() == "after"
    page = json.loads(tfao(home, "results", "--json", pid, "--sort", "DESC", "--limit", "2").stdout)
    assert page["edges"][1]["node"]["Output"]["data"] == "slow 20000000100000000"


def test_a_served_home(tmp_path):
    home = make_home(tmp_path / "served")
    with ServerProcess(home) as server:
        busy = tfao(home, "ps", check=False)
        assert busy.returncode == 1
        assert f"in use by tfao serve at {server.url}: talk to it with --url {server.url}" in busy.stderr
        pid = tfao(home, "spawn", "--url", server.url, "--name", "served").stdout.split()[0]
        header, *rows = tfao(home, "ps", "--url", server.url).stdout.splitlines()
        assert header.split() == ["ID", "NAME", "OWNER", "MESSAGES"]
        assert any(row.startswith(pid) and "served" in row for row in rows)
        port = server.url.rsplit(":", 1)[1]
        taken = tfao(home / "other", "serve", "--port", port, check=False)
        assert taken.returncode == 1
        assert taken.stderr.strip() == (f"error: 127.0.0.1:{port} is already in use (another tfao serve?): stop"
                                        " what listens there, or choose another port with --port (0: any free port)")
    assert tfao(home, "ps").returncode == 0  # the server is gone, and so is its claim on the home


def test_serve_logs_requests_at_info(tmp_path):
    env = dict(os.environ, TFAO_HOME=str(make_home(tmp_path / "logged")))
    server = subprocess.Popen([sys.executable, "-m", "tfao.cli", "serve", "--port", "0", "--log-level", "info"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"listening on (\S+)", server.stdout.readline()).group(1)
        assert httpx.get(url + "/timestamp").status_code == 200
        assert httpx.get(url + "/result/" + "x" * 43).status_code == 400
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    assert re.search(r"INFO tfao.http.requests: GET /timestamp 200 \d+\.\d ms", log), log
    assert re.search(r"GET /result/x{43} 400 \d+\.\d ms", log), log


def test_weave_import_and_attest_in_json(home, tmp_path):
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    imported = json.loads(tfao(home, "weave", "import", "--json", str(folder)).stdout)
    assert imported["name"] == "tiny-model"
    assert sorted(f["path"] for f in imported["files"]) == ["config.json", "vocab.txt"]
    attested = json.loads(tfao(home, "weave", "attest", "--json", imported["manifest"]).stdout)
    assert {a["attests"] for a in attested} == {imported["manifest"], *(f["id"] for f in imported["files"])}
    assert all(re.fullmatch(ID, a["id"]) for a in attested)
    missing = tfao(home, "weave", "import", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 1 and "is not a folder (nor a model installed from PyPI" in missing.stderr
