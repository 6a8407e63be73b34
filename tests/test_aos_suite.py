"""Cases of aos's own process/test suite, fed the same messages the way ao-loader feeds them there
(a boot message without Type, then bare messages), with aos's expected results."""

import pytest

from tfao.sandbox.aos import AosProcess

ENV = {"Process": {"Id": "AOS", "Owner": "FOOBAR", "Tags": [{"name": "Name", "value": "Thomas"}]}}
BOOT = {"Target": "AOS", "From": "FOOBAR", "Owner": "FOOBAR", "Block-Height": "999", "Id": "AOS",
        "Module": "WOOPAWOOPA", "Tags": [{"name": "Name", "value": "Thomas"}]}
EVAL = {"Target": "AOS", "From": "FOOBAR", "Owner": "FOOBAR", "Block-Height": "1000", "Id": "1234xyxfoo",
        "Module": "WOOPAWOOPA", "Tags": [{"name": "Action", "value": "Eval"}]}
FRED = {"Target": "AOS", "From": "FRED", "Owner": "FRED", "Tags": [], "Data": "ping"}


@pytest.fixture
def handle():
    process = AosProcess()
    process.handle(BOOT, ENV)
    return lambda msg: process.handle(msg, ENV)


def eval_msg(code: str) -> dict:
    return dict(EVAL, Data=code)


def test_multi_print(handle):
    assert handle(eval_msg('\nprint("one") \nprint("two")\n'))["Output"]["data"] == "one\ntwo"


def test_handler_pipeline(handle):
    handle(eval_msg("""
Handlers.add("one", function (Msg) return "continue" end, function (Msg) print("one") end)
Handlers.add("two", function (Msg) return "continue" end, function (Msg) print("two") end)
Handlers.add("three", function (Msg) return "skip" end, function (Msg) print("three") end)"""))
    assert handle(FRED)["Output"]["data"] == (
        "one\ntwo\n\x1b[90mNew Message From \x1b[32mFRE...RED\x1b[90m: \x1b[90mData = \x1b[34mping\x1b[0m")


def test_resolvers_once(handle):
    handle(eval_msg('Handlers.once("onetime", { Action = "ping", Data = "ping" }, function (Msg) print("pong") end)'))
    ping = dict(FRED, Tags=[{"name": "Action", "value": "ping"}])
    assert handle(ping)["Output"]["data"] == "pong"
    assert "pong" not in handle(ping)["Output"]["data"]  # handled once


def test_print_errors_in_handlers(handle):
    handle(eval_msg('Handlers.add("ping", Handlers.utils.hasMatchingData("ping"), '
                    'function (m) print(m.Data); print("pong" .. x) end)'))
    assert "handling message" in handle(dict(EVAL, Tags=[], Data="ping"))["Error"]


def test_run_evaluate_action_unsuccessfully(handle):
    assert "attempt to compare number with nil" in handle(eval_msg("100 < undefined"))["Error"]


def test_capitalize(handle):
    assert "Foo-bar" in handle(eval_msg("return require('.utils').capitalize(\"foo-bar\")"))["Output"]["data"]


def test_magic_table_sends_table_data_as_json(handle):
    sent = handle(eval_msg('Send({ Target = "AOS", Data = { foo = "bar" }})'))
    assert sent["Messages"][0]["Data"] == '{"foo":"bar"}'
    handle(dict(EVAL, **sent["Messages"][0]))
    assert handle(eval_msg("Inbox[2].Data.foo"))["Output"]["data"] == "bar"


def test_random(handle):
    assert handle(eval_msg("math.random(10)"))["Output"]["data"] == "2"
