"""The blueprints shipped with tfao (token, chat, staking, voting) and the ways to load them and local
files: ProcessHandle.load_blueprint, `tfao eval --blueprint`, the REPL's .load bundling."""

import json

import pytest

from tfao.cli.repl import bundle_lua
from tfao.sandbox.aos import blueprint, blueprint_names
from test_cli import make_home, tfao
from test_repl import answer_to, repl, tmux_available  # noqa: F401  (tmux_available is a fixture)

CHAT_ROUTER = "8MGp9kOU4JYxAlPT1AyL7O3cedd97y-w8X4ciBsf_Xo"
GETTING_STARTED = "6I1JBBc9SOMtqFxlX7OoYgsMh7QeZk2fFwUCHTUqshg"


def tag_map(message: dict) -> dict:
    return {tag["name"]: tag["value"] for tag in message["Tags"]} | {"Target": message.get("Target")}


def test_shipped_blueprints_and_unknown_names():
    assert {"token", "chat", "voting", "staking"} <= set(blueprint_names())
    with pytest.raises(ValueError, match="no blueprint named 'nope'"):
        blueprint("nope")


def test_chat_registers_once_and_talks_to_rooms(ao_process, wallets):
    owner = wallets[0]
    loaded = ao_process.load_blueprint("chat", wallet=owner)
    assert "Welcome to ao DevChat v0.1!" in loaded["Output"]["data"]
    register = tag_map(loaded["Messages"][0])
    assert (register["Target"], register["Action"], register["Nickname"]) == (GETTING_STARTED, "Register", ao_process.id)
    assert ao_process.load_blueprint("chat", wallet=owner)["Messages"] == []  # registered only once

    said = ao_process.eval('return Say("hi all")', wallet=owner)
    assert "Broadcasting to \x1b[34mGetting-Started" in said["Output"]["data"]
    assert (tag_map(said["Messages"][0])["Action"], said["Messages"][0]["Data"]) == ("Broadcast", "hi all")
    listed = ao_process.eval("return List()", wallet=owner)
    get_list = tag_map(listed["Messages"][0])
    assert (get_list["Target"], get_list["Action"]) == (CHAT_ROUTER, "Get-List")


def test_staking_and_voting_weigh_votes_by_stake(ao_process, wallets):
    owner = wallets[0]
    for name in ("token", "staking", "voting"):
        assert "Error" not in ao_process.load_blueprint(name, wallet=owner)
    ao_process.eval(f'Balances["{owner.address}"] = "100"', wallet=owner)
    staked = ao_process.send("Stake", tags={"Quantity": "40"}, wallet=owner)
    assert staked["Messages"][0]["Data"] == "Successfully Staked 40"
    stakers = json.loads(ao_process.send("Stakers", wallet=owner)["Messages"][0]["Data"])
    assert stakers[owner.address]["amount"] == "40"
    assert ao_process.eval(f'return Balances["{owner.address}"]', wallet=owner)["Output"]["data"] == "60"

    ao_process.send("Vote", tags={"Target": "proposal", "Side": "yay", "Deadline": "1000"}, wallet=owner)
    assert ao_process.eval("return Votes.proposal.yay", wallet=owner)["Output"]["data"] == "40"
    refused = ao_process.send("Vote", tags={"Target": "proposal", "Side": "nay", "Deadline": "1"}, wallet=wallets[1])
    assert "No staked tokens to vote" in refused["Error"]


def test_load_bundles_the_local_files_a_script_requires(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "main.lua").write_text('local greet = require("lib.greet")\n-- require("commented.out")\n'
                                       'local json = require("json")\nreturn greet.hello("ao")\n')
    (tmp_path / "lib" / "greet.lua").write_text(
        "local util = require('lib.util')\nreturn { hello = function(n) return util.wrap('hello ' .. n) end }\n")
    (tmp_path / "lib" / "util.lua").write_text("return { wrap = function(s) return '[' .. s .. ']' end }\n")
    code, files = bundle_lua(tmp_path / "main.lua")
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["lib/util.lua", "lib/greet.lua", "main.lua"]
    assert code.index('_G.package.loaded["lib.util"]') < code.index('_G.package.loaded["lib.greet"]')
    assert "commented" not in code.split("-- module")[0]

    from test_aos import Aos
    result = Aos().eval(code)
    assert result["Output"]["data"] == "[hello ao]"


def test_tfao_eval_loads_a_blueprint(tmp_path):
    home = make_home(tmp_path / "home")
    pid = tfao(home, "spawn", "--name", "bp").stdout.split()[0]
    tfao(home, "eval", "--process", pid, "--blueprint", "token")
    assert tfao(home, "eval", "--process", pid, "return Ticker").stdout.strip() == "PNTS"
    both = tfao(home, "eval", "--process", pid, "--blueprint", "token", "1", check=False)
    assert both.returncode != 0 and "one of them" in both.stderr


def test_repl_loads_blueprints_and_bundled_files(tmux_available, tmp_path):  # noqa: F811
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "words.lua").write_text("return { shout = function(s) return s:upper() .. '!' end }\n")
    (tmp_path / "main.lua").write_text("Words = require('lib.words')\n")
    term = repl(make_home(tmp_path / "home"), "--name", "bp-repl", "--poll", "0.3")
    try:
        term.wait_for(r"bp-repl@.*\[Inbox:1\]>$")
        term.type(".load-blueprint token")
        term.wait_for(r"Loading blueprint token")
        answer_to(term, "return Ticker", r"PNTS\n")
        term.type(".load-blueprint nope")
        term.wait_for(r"\.load-blueprint needs one of: ")
        term.type(f".load {tmp_path / 'main.lua'}")
        term.wait_for(r"with lib/words\.lua")
        answer_to(term, "return Words.shout('hey')", r"HEY!\n")
    finally:
        term.close()
