"""Bounded evaluation: every runaway message ends in an Error in bounded time and the process goes on.

Each attack runs on a fresh node whose wall-clock limit is short; then the attacked process still
answers, and a bystander process answers quickly.
"""

import os
import signal
import threading
import time

import pytest

from tfao.node.node import Node, NodeBusy

TIMEOUT = 3.0  # the node's wall-clock limit per message in these tests
SMALL_BUDGET = [("Compute-Limit", "20000000")]  # instructions: a fraction of a second


@pytest.fixture
def node(wallets):
    with Node(wallet=wallets[3], eval_timeout=TIMEOUT) as node:
        yield node


def output(result):
    return result["Output"]["data"] if isinstance(result["Output"], dict) else result["Output"]


def assert_still_answers(process, owner, bystander):
    assert output(process.eval("1 + 1", wallet=owner)) == "2"
    started = time.monotonic()
    assert output(bystander.eval("'here'", wallet=owner)) == "here"
    assert time.monotonic() - started < 5


def timed_eval(process, code, owner):
    started = time.monotonic()
    result = process.eval(code, wallet=owner, timeout=30)
    return result, time.monotonic() - started


@pytest.mark.parametrize("code", [
    "while true do end",
    # the message handler of an xpcall runs unhooked after the budget error, also after a plain error()
    "xpcall(function() while true do end end, function() while true do end end)",
    "xpcall(function() error('plain') end, function() while true do end end)",
    "local ok = pcall(function() while true do end end); while true do end",
], ids=["loop", "xpcall-after-budget", "xpcall-after-error", "pcall-swallow"])
def test_instruction_budget_ends_runaway_code(node, wallets, code):
    owner = wallets[0]
    process, bystander = node.spawn(wallet=owner, tags=SMALL_BUDGET), node.spawn(wallet=owner)
    result = process.eval(code, wallet=owner, timeout=30)
    assert "compute limit exceeded" in result["Error"]  # the deterministic budget, not the clock, ended it
    assert_still_answers(process, owner, bystander)


def test_a_looping_finalizer_is_stopped_and_the_message_goes_on(node, wallets):
    owner = wallets[0]
    process, bystander = node.spawn(wallet=owner, tags=SMALL_BUDGET), node.spawn(wallet=owner)
    code = ("Finalized = 0; setmetatable({}, {__gc = function() Finalized = Finalized + 1; while true do end end}); "
            "for i = 1, 200000 do local garbage = {i} end; return Finalized")
    result = process.eval(code, wallet=owner, timeout=30)
    assert output(result) == "1"
    assert output(process.eval("for i = 1, 200000 do local garbage = {i} end; return Finalized", wallet=owner)) == "1"
    assert_still_answers(process, owner, bystander)


@pytest.mark.parametrize("code", [
    'string.find(string.rep("a", 1e5), "(.-)*b")',  # backtracking: no instruction runs, the clock ends it
    # a finalizer replaced after setmetatable escapes the metering: the clock ends it too
    "local mt = {__gc = function() end}; setmetatable({}, mt); mt.__gc = function() while true do end end; "
    "for i = 1, 1e6 do local garbage = {i} end",
], ids=["pattern", "late-finalizer"])
def test_the_wall_clock_ends_what_the_budget_cannot_see(node, wallets, code):
    owner = wallets[0]
    process, bystander = node.spawn(wallet=owner), node.spawn(wallet=owner)
    result, took = timed_eval(process, code, owner)
    assert result["Error"] == f"evaluation timed out: it ran longer than this node's limit of {TIMEOUT:g} s"
    assert TIMEOUT <= took < TIMEOUT + 10
    assert_still_answers(process, owner, bystander)


def test_a_self_nested_prompt_is_refused_before_the_host_expands_it(node, wallets):
    owner = wallets[0]
    process, bystander = node.spawn(wallet=owner), node.spawn(wallet=owner)
    code = ("local t = {'x'}; for i = 1, 22 do t = {t, t} end; "
            "local ok, err = pcall(require('transformers').bert.encode_text, {model = 'none', prompt = t}); return err")
    result = process.eval(code, wallet=owner, timeout=30)
    assert "too large to pass to the host" in output(result)
    assert_still_answers(process, owner, bystander)


def test_a_timed_out_message_gives_the_same_error_after_a_restart(tmp_path, wallets):
    owner = wallets[0]
    with Node(tmp_path, wallet=wallets[3], eval_timeout=TIMEOUT) as node:
        process = node.spawn(wallet=owner)
        process.eval("Kept = 'yes'", wallet=owner)
        looping = process.message("Eval", data="while true do end", wallet=owner)
        first = process.result(looping, timeout=30)["Error"]
    started = time.monotonic()
    with Node(tmp_path, wallet=wallets[3], eval_timeout=TIMEOUT) as node:
        process = node.process(process.id)
        assert process.result(looping)["Error"] == first
        assert output(process.eval("Kept", wallet=owner)) == "yes"
    assert time.monotonic() - started < 20


def test_dry_runs_are_bounded_too(node, wallets):
    owner = wallets[0]
    process = node.spawn(wallet=owner)
    process.eval("Handlers.add('Spin', function() while true do end end)", wallet=owner)
    started = time.monotonic()
    result = process.dryrun("Spin")
    assert "timed out" in result["Error"]
    assert time.monotonic() - started < TIMEOUT + 5
    assert output(process.eval("1 + 1", wallet=owner)) == "2"


def test_the_node_caps_dry_runs_running_at_once(wallets, monkeypatch):
    monkeypatch.setattr("tfao.node.node.DRYRUN_QUEUE_WAIT", 0.2)
    owner = wallets[0]
    with Node(wallet=wallets[3], eval_timeout=TIMEOUT, max_dryruns=1) as node:
        process = node.spawn(wallet=owner)
        process.eval("Handlers.add('Spin', function() while true do end end)", wallet=owner)
        spinning = threading.Thread(target=process.dryrun, args=("Spin",))
        spinning.start()
        time.sleep(0.3)
        with pytest.raises(NodeBusy, match="1 dry-runs are already running"):
            process.dryrun("Spin")
        spinning.join()
        assert "Error" not in process.dryrun("Other")


def descendants(pid):
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            children += [int(child) for child in listing.read().split()]
    return children + [grandchild for child in children for grandchild in descendants(child)]


def test_a_killed_process_host_gives_an_error_and_is_rebuilt(node, wallets):
    owner = wallets[0]
    process = node.spawn(wallet=owner)
    process.eval("Kept = 'yes'", wallet=owner)
    slow = process.message("Eval", data="local t = os.clock(); while os.clock() - t < 1 do end", wallet=owner)
    time.sleep(0.5)
    for pid in descendants(node.zygote.proc.pid):  # the holder and the child evaluating the message
        os.kill(pid, signal.SIGKILL)
    assert "the process host stopped during the evaluation" in process.result(slow, timeout=20)["Error"]
    assert output(process.eval("Kept", wallet=owner)) == "yes"  # rebuilt from the log
