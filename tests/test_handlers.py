"""Handlers (tfao/sandbox/lua: handlers.lua, handlers-utils.lua, Utils.matchesSpec) inside a running process."""

from __future__ import annotations

import pytest

from test_aos import STRANGER, Aos

# the apm client's reply handlers, added when the process library loads (as in aos)
APM_HANDLERS = ["APM.DownloadResponse", "APM.SearchResponse", "APM.InfoResponse", "APM.UpdateResponse"]


@pytest.fixture
def aos():
    session = Aos()
    # patterns built with Always(code) only match the test's messages (tagged Test), never the Evals
    session.eval("Calls = {}\n"
                 "function Record(label) return function(msg) table.insert(Calls, label) end end\n"
                 "function Always(code) return function(msg) if msg.Test then return code end return 0 end end")
    return session


def calls(aos: Aos, tag_pairs=(), data: str = " ", **kwargs) -> list[str]:
    """Sends a message and returns the labels of the handlers it ran (plus 'inbox' for _default)."""
    aos.eval("Calls = {}")
    before = aos.value("#Inbox")
    aos.send([*tag_pairs, ("Test", "yes")], data, **kwargs)
    ran = aos.value("Calls")
    return ran + (["inbox"] if aos.value("#Inbox") > before else [])


def add(aos: Aos, lua_args: str, method: str = "add") -> None:
    result = aos.eval(f"Handlers.{method}({lua_args})")
    assert "Error" not in result, result


# --------------------------------------------------------------------------------- patterns


def test_action_string_pattern(aos):
    add(aos, '"ping", "Ping", Record("ping")')
    assert calls(aos, [("Action", "Ping")]) == ["ping"]
    assert calls(aos, [("Action", "Pong")]) == ["inbox"]


def test_two_argument_form_uses_name_as_action(aos):
    add(aos, '"Ping", Record("ping")')
    assert calls(aos, [("Action", "Ping")]) == ["ping"]


def test_function_pattern(aos):
    add(aos, '"big", function(msg) return tonumber(msg.Amount) > 10 end, Record("big")')
    assert calls(aos, [("Amount", "11")]) == ["big"]
    assert calls(aos, [("Amount", "3")]) == ["inbox"]


def test_table_spec_every_key_must_match(aos):
    add(aos, '"t", { Action = "Transfer", Recipient = "_" }, Record("t")')
    assert calls(aos, [("Action", "Transfer"), ("Recipient", "bob")]) == ["t"]
    assert calls(aos, [("Action", "Transfer")]) == ["inbox"]


def test_table_spec_strings_are_case_insensitive(aos):
    add(aos, '"t", { Action = "transfer" }, Record("t")')
    assert calls(aos, [("Action", "TRANSFER")]) == ["t"]


def test_table_spec_lua_pattern(aos):
    add(aos, '"p", { Action = "^Get%-%a+$" }, Record("p")')
    assert calls(aos, [("Action", "Get-Balance")]) == ["p"]
    assert calls(aos, [("Action", "get-info")]) == ["p"]
    assert calls(aos, [("Action", "Get-1")]) == ["inbox"]


def test_table_spec_function_gets_value_and_message(aos):
    add(aos, '"f", { Quantity = function(v, msg) return tonumber(v) == 5 and msg.Action == "Pay" end }, Record("f")')
    assert calls(aos, [("Action", "Pay"), ("Quantity", "5")]) == ["f"]
    assert calls(aos, [("Action", "Pay"), ("Quantity", "6")]) == ["inbox"]


def test_table_spec_alternatives(aos):
    add(aos, '"alt", { Action = { "Buy", "Sell" } }, Record("alt")')
    assert calls(aos, [("Action", "sell")]) == ["alt"]
    assert calls(aos, [("Action", "Hold")]) == ["inbox"]


def test_table_spec_matches_root_fields(aos):
    add(aos, f'"from", {{ From = "{STRANGER}" }}, Record("from")')
    assert calls(aos, owner=STRANGER) == ["from"]
    assert calls(aos) == ["inbox"]


@pytest.mark.parametrize("code", ["true", "-1", '"break"'])
def test_break_codes_stop_evaluation(aos, code):
    add(aos, f'"first", Always({code}), Record("first")')
    add(aos, '"second", Always(true), Record("second")')
    assert calls(aos) == ["first"]


@pytest.mark.parametrize("code", ["1", '"continue"'])
def test_continue_codes_run_and_go_on(aos, code):
    add(aos, f'"first", Always({code}), Record("first")')
    add(aos, '"second", Always(1), Record("second")')
    assert calls(aos) == ["first", "second", "inbox"]


@pytest.mark.parametrize("code", ["false", "0", '"skip"', '"anything else"'])
def test_skip_codes(aos, code):
    add(aos, f'"first", Always({code}), Record("first")')
    assert calls(aos) == ["inbox"]


def test_invalid_pattern_result_is_an_error(aos):
    add(aos, '"bad", Always({}), Record("bad")')
    assert "Pattern result is not valid" in aos.send([("Test", "yes")])["Error"]


def test_invalid_arguments_are_rejected(aos):
    assert "Invalid arguments" in aos.eval('Handlers.add("x", 42, function() end)')["Error"]


# ----------------------------------------------------------------------- list management


def test_add_appends_prepend_puts_first(aos):
    add(aos, '"a", Always(1), Record("a")')
    add(aos, '"b", Always(1), Record("b")', method="append")
    add(aos, '"c", Always(1), Record("c")', method="prepend")
    assert calls(aos) == ["c", "a", "b", "inbox"]
    # _default sits wherever it was first added: it always runs last anyway
    assert aos.value("Utils.map(function(h) return h.name end, Handlers.list)") == [
        "c", *APM_HANDLERS, "_eval", "_default", "a", "b"]


def test_add_returns_list_length(aos):
    # apm's four, _eval, _default, n
    assert aos.eval('Handlers.add("n", "N", function() end)')["Output"]["data"] == "7"


def test_same_name_replaces_in_place(aos):
    add(aos, '"a", Always(1), Record("a")')
    add(aos, '"b", Always(1), Record("b")')
    add(aos, '"a", Always(1), Record("a2")')
    assert calls(aos) == ["a2", "b", "inbox"]
    assert aos.value("#Handlers.list") == len(APM_HANDLERS) + 4


def test_before_and_after(aos):
    add(aos, '"middle", Always(1), Record("middle")')
    add(aos, '"before", Always(1), Record("before")', method='before("middle").add')
    add(aos, '"after", Always(1), Record("after")', method='after("middle").add')
    assert calls(aos) == ["before", "middle", "after", "inbox"]


def test_remove(aos):
    add(aos, '"gone", Always(1), Record("gone")')
    aos.eval('Handlers.remove("gone")')
    assert calls(aos) == ["inbox"]
    assert "Error" not in aos.eval('Handlers.remove("never added")')


def test_once_runs_once_and_first(aos):
    add(aos, '"always", Always(1), Record("always")')
    add(aos, '"Ping", Record("once")', method="once")
    assert calls(aos, [("Action", "Ping")]) == ["once"]
    assert calls(aos, [("Action", "Ping")]) == ["always", "inbox"]


def test_unnamed_once_gets_a_nonce_name(aos):
    add(aos, 'Always(1), Record("x")', method="once")
    assert aos.value("Handlers.list[1].name") == "_once_0"


def test_max_runs(aos):
    add(aos, '"twice", "Ping", Record("twice"), 2')
    assert [calls(aos, [("Action", "Ping")]) for _ in range(3)] == [["twice"], ["twice"], ["inbox"]]


def test_handler_removing_another_stops_it_this_message(aos):
    add(aos, '"first", Always(1), function() Handlers.remove("second") end')
    add(aos, '"second", Always(1), Record("second")')
    assert calls(aos) == ["inbox"]


# -------------------------------------------------------------------------------- resolvers


def test_resolver_runs_first_matching_entry(aos):
    add(aos, '"r", { Action = "Op" }, { [{ Kind = "a" }] = Record("a"), [{ Kind = "b" }] = Record("b") }')
    assert calls(aos, [("Action", "Op"), ("Kind", "b")]) == ["b"]
    assert calls(aos, [("Action", "Op"), ("Kind", "c")]) == []


def test_resolver_keyed_by_action_names(aos):
    add(aos, '"r", function() return true end, { Zed = Record("zed"), Alpha = Record("alpha") }')
    assert calls(aos, [("Action", "Zed")]) == ["zed"]


# ---------------------------------------------------------------------------- Handlers.utils


def test_has_matching_tag(aos):
    add(aos, '"t", Handlers.utils.hasMatchingTag("Action", "Ping"), Record("t")')
    assert calls(aos, [("Action", "Ping")]) == ["t"]
    assert calls(aos, [("Action", "ping")]) == ["inbox"]


def test_has_matching_tag_of(aos):
    add(aos, '"t", Handlers.utils.hasMatchingTagOf("Action", { "A", "B" }), Record("t")')
    assert calls(aos, [("Action", "B")]) == ["t"]
    assert calls(aos, [("Action", "C")]) == ["inbox"]


def test_has_matching_data(aos):
    add(aos, '"d", Handlers.utils.hasMatchingData("hello"), Record("d")')
    assert calls(aos, data="hello") == ["d"]
    assert calls(aos, data="bye") == ["inbox"]


def test_continue_wrapper(aos):
    add(aos, '"c", Handlers.utils.continue({ Action = "Ping" }), Record("c")')
    add(aos, '"p", "Ping", Record("p")')
    assert calls(aos, [("Action", "Ping")]) == ["c", "p"]


def test_reply_util_with_table(aos):
    add(aos, '"r", "Ping", Handlers.utils.reply({ Action = "Pong", Data = "ok" })')
    [reply] = aos.send([("Action", "Ping")])["Messages"]
    assert reply["Data"] == "ok" and {"name": "Action", "value": "Pong"} in reply["Tags"]
