"""A process cannot be wedged by its outbox: an entry the node cannot deliver is refused in the result.

Each attack is an ordinary message; then the message has a result that says which entry was refused
and why, the process answers the next message (also after a restart), and a bystander answers.
"""

import time

import pytest

from tfao.node.node import Node

UNKNOWN_MODULE = "U" * 43


def output(result):
    return result["Output"]["data"] if isinstance(result["Output"], dict) else result["Output"]


@pytest.mark.parametrize("code, kind, reason", [
    ('Send({Target = ao.id, Big = string.rep("a", 4000)})', "Messages", "tags too large"),
    ('table.insert(ao.outbox.Messages, "x")', "Messages", "must be a table, not a string"),
    (f'Spawn("{UNKNOWN_MODULE}", {{}})', "Spawns", f"module {UNKNOWN_MODULE} not found"),
    ('table.insert(ao.outbox.Spawns, {Tags = "none"})', "Spawns", "not a valid message"),
], ids=["tags-too-large", "not-a-table", "unknown-module", "malformed-spawn"])
def test_an_undeliverable_outbox_entry_is_refused_in_the_result(ao_node, wallets, code, kind, reason):
    owner = wallets[0]
    process, bystander = ao_node.spawn(wallet=owner), ao_node.spawn(wallet=owner)
    result = process.eval(code, wallet=owner, timeout=20)
    assert "Error" not in result
    [refusal] = result["Refused"]
    assert (refusal["Kind"], refusal["Index"]) == (kind, 1)
    assert reason in refusal["Error"]
    assert output(process.eval("1 + 1", wallet=owner)) == "2"
    assert output(bystander.eval("'here'", wallet=owner)) == "here"


def test_a_spawn_of_an_unknown_module_comes_back_in_spawns_and_creates_no_process(ao_node, wallets):
    owner = wallets[0]
    process = ao_node.spawn(wallet=owner)
    before = len(ao_node.processes())
    result = process.eval(f'Spawn("{UNKNOWN_MODULE}", {{Data = "x"}}); Send({{Target = ao.id, Action = "Ok"}})',
                          wallet=owner)
    assert result["Spawns"][0]["Tags"] and any(t["value"] == UNKNOWN_MODULE for t in result["Spawns"][0]["Tags"])
    assert [r["Kind"] for r in result["Refused"]] == ["Spawns"]
    assert len(ao_node.processes()) == before  # no process, and no Spawned notice
    time.sleep(0.5)
    actions = output(process.eval("local a = {} for _, m in ipairs(Inbox) do a[#a + 1] = m.Action end "
                                  "return table.concat(a, ',')", wallet=owner))
    assert "Ok" in actions and "Spawned" not in actions


def test_a_relay_forwarding_a_message_that_fills_the_tag_limit_goes_on(ao_node, wallets):
    owner = wallets[0]
    relay, sink = ao_node.spawn(wallet=owner), ao_node.spawn(wallet=owner)
    relay.eval(f'Handlers.add("relay", "Relay", function(msg) msg.forward("{sink.id}") end)', wallet=owner)
    # a valid message whose tags come close to the 4096-byte limit: the forwarded copy cannot fit
    filler = [("Filler", "f" * 3000), ("Padding", "p" * 900)]
    result = relay.send("Relay", tags=filler, wallet=wallets[1])
    assert "Error" not in result
    assert result["Refused"][0]["Kind"] == "Messages"
    assert "tags" in result["Refused"][0]["Error"]
    assert "Refused" not in relay.send("Relay", wallet=wallets[1])
    assert output(relay.eval("1 + 1", wallet=owner)) == "2"


def test_a_refused_entry_does_not_wedge_the_process_after_a_restart(tmp_path, wallets):
    owner = wallets[0]
    with Node(tmp_path, wallet=wallets[3]) as node:
        process = node.spawn(wallet=owner)
        process.eval("Count = 1", wallet=owner)
        bad = process.message("Eval", data='Count = 2; table.insert(ao.outbox.Messages, "x")', wallet=owner)
        assert process.result(bad)["Refused"]
    with Node(tmp_path, wallet=wallets[3]) as node:
        process = node.process(process.id)
        assert output(process.eval("Count", wallet=owner)) == "2"  # the refused entry's message kept its state
