"""The node as the emulator library: scheduling, rollback, dry-runs, limits, outbox, restart."""

import threading
import time

import pytest

from tfao.node.node import Node, NotFound
from weavedrive.ans104 import DataItem, InvalidDataItem, sign_data_item

COUNTER = """
Count = Count or 0
Handlers.add("Inc", function(msg) Count = Count + 1; msg.reply({Data = tostring(Count)}) end)
return Count
"""


def output(result):
    data = result["Output"]["data"] if isinstance(result["Output"], dict) else result["Output"]
    return data


def test_eval_returns_the_value(ao_process, wallets):
    result = ao_process.eval("1 + 41", wallet=wallets[0])
    assert "Error" not in result
    assert output(result) == "42"
    assert "aos" in result["Output"]["prompt"]


def test_handler_replies_through_msg_reply(ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    result = ao_process.send("Inc", wallet=wallets[1])
    reply = result["Messages"][0]
    assert reply["Target"] == wallets[1].address
    assert reply["Data"] == "1"


def test_error_rolls_back_every_change(ao_process, wallets):
    owner = wallets[0]
    ao_process.eval("A = 1; B = {x = 1}; Handlers.add('Break', function() A = 2; B.x = 2; C = 3; "
                    "Inbox[#Inbox + 1] = 'junk'; error('boom') end)", wallet=owner)
    inbox_before = output(ao_process.eval("#Inbox", wallet=owner))
    result = ao_process.send("Break", wallet=owner)
    assert "boom" in result["Error"]
    assert output(ao_process.eval("A .. ',' .. B.x .. ',' .. tostring(C)", wallet=owner)) == "1,1,nil"
    assert output(ao_process.eval("#Inbox", wallet=owner)) == inbox_before


def test_eval_error_reports_the_line(ao_process, wallets):
    result = ao_process.eval("local x = 1\nlocal y = 2\nerror('third line')", wallet=wallets[0])
    assert '[string "aos"]:3:' in result["Error"]
    syntax = ao_process.eval("local = 1", wallet=wallets[0])
    assert "Error" in syntax


def test_only_the_owner_may_eval(ao_process, wallets):
    ao_process.eval("Secret = 'kept'", wallet=wallets[0])
    ao_process.eval("Secret = 'stolen'", wallet=wallets[1])
    assert output(ao_process.eval("Secret", wallet=wallets[0])) == "kept"


def test_dryrun_sees_state_and_changes_nothing(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    ao_process.send("Inc", wallet=wallets[1])
    count = ao_node.store.message_count(ao_process.id)
    dry = ao_process.dryrun("Inc", owner=wallets[1].address)
    assert dry["Messages"][0]["Data"] == "2"
    assert ao_process.dryrun("Eval", data="Count", owner=wallets[0].address)["Output"]["data"] == "1"
    assert ao_node.store.message_count(ao_process.id) == count
    assert output(ao_process.eval("Count", wallet=wallets[0])) == "1"


def test_dryrun_does_not_wait_for_a_running_message(ao_process, wallets):
    ao_process.eval("Handlers.add('Slow', function() local t = os.time() local x = 0 "
                    "for i = 1, 3e7 do x = x + i end end)", wallet=wallets[0])
    slow = ao_process.message("Slow", wallet=wallets[0])
    time.sleep(0.2)
    started = time.monotonic()
    ao_process.dryrun("Eval", data="1", owner=wallets[0].address)
    dry_time = time.monotonic() - started
    ao_process.result(slow)
    slow_total = time.monotonic() - started
    assert dry_time < slow_total


def test_infinite_loop_and_memory_bomb_give_errors_and_the_process_goes_on(ao_node, wallets):
    p = ao_node.spawn(wallet=wallets[0], tags={"Compute-Limit": "5000000", "Memory-Limit": "64-mb"})
    loop = p.eval("while true do end", wallet=wallets[0])
    assert "compute limit" in loop["Error"].lower()
    bomb = p.eval("local t = {} for i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end", wallet=wallets[0])
    assert "memory" in bomb["Error"].lower()
    assert output(p.eval("1 + 1", wallet=wallets[0])) == "2"


def test_messages_between_local_processes_are_delivered(ao_node, wallets):
    receiver = ao_node.spawn(wallet=wallets[0])
    receiver.eval("Got = nil; Handlers.add('Hello', function(msg) Got = msg.From .. ':' .. msg.Data end)",
                  wallet=wallets[0])
    sender = ao_node.spawn(wallet=wallets[0])
    sender.eval(f"Send({{Target = '{receiver.id}', Action = 'Hello', Data = 'hi'}})", wallet=wallets[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = output(receiver.eval("tostring(Got)", wallet=wallets[0]))
        if got != "nil":
            break
        time.sleep(0.1)
    assert got == f"{sender.id}:hi"


def test_spawn_from_a_process_sends_spawned_back(ao_node, wallets):
    parent = ao_node.spawn(wallet=wallets[0])
    parent.eval("Children = {}; Handlers.add('Spawned', function(msg) table.insert(Children, msg.Process) end); "
                "Spawn(ao._module, {Data = 'child', Tags = {Name = 'kid'}})", wallet=wallets[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and output(parent.eval("#Children", wallet=wallets[0])) != "1":
        time.sleep(0.1)
    child = output(parent.eval("Children[1]", wallet=wallets[0]))
    assert any(p["id"] == child and p["name"] == "kid" for p in ao_node.processes())


def test_forged_and_unknown_items_are_refused(ao_node, ao_process, wallets):
    item = sign_data_item(wallets[1], b"x", target=ao_process.id,
                          tags=[("Data-Protocol", "ao"), ("Type", "Message"), ("Action", "Eval")])
    raw = bytearray(item.to_bytes())
    raw[-1] ^= 1
    with pytest.raises(InvalidDataItem):
        ao_node.submit(bytes(raw))
    with pytest.raises(InvalidDataItem):
        ao_node.submit(b"\x01\x00garbage")
    stray = sign_data_item(wallets[1], b"x", target="A" * 43, tags=[("Data-Protocol", "ao"), ("Type", "Message")])
    with pytest.raises(NotFound):
        ao_node.submit(stray)


def test_results_pages_with_cursors(ao_process, wallets):
    for i in range(5):
        ao_process.eval(str(i), wallet=wallets[0])
    first = ao_process.results(limit=3)
    assert len(first["edges"]) == 3 and first["pageInfo"]["hasNextPage"]
    rest = ao_process.results(from_=first["edges"][-1]["cursor"], limit=10)
    assert [output(e["node"]) for e in rest["edges"]] == ["2", "3", "4"]
    newest = ao_process.results(sort="DESC", limit=1)
    assert output(newest["edges"][0]["node"]) == "4"


def test_restart_restores_state_without_changing_results(tmp_path, wallets):
    with Node(tmp_path, wallet=wallets[3]) as node:
        p = node.spawn(wallet=wallets[0])
        p.eval(COUNTER, wallet=wallets[0])
        ids = [p.message("Inc", wallet=wallets[1]) for _ in range(5)]
        before = [p.result(i) for i in ids]
        p.eval("error('not kept')", wallet=wallets[0])
        pid = p.id
    with Node(tmp_path, wallet=wallets[3]) as node:
        p = node.process(pid)
        assert [p.result(i) for i in ids] == before
        assert output(p.eval("Count", wallet=wallets[0])) == "5"


def test_one_node_per_home(tmp_path, wallets):
    with Node(tmp_path, wallet=wallets[3]):
        with pytest.raises(Exception, match="in use"):
            Node(tmp_path, wallet=wallets[3])


def test_concurrent_senders_get_their_own_results(ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    replies = []

    def send():
        replies.append(int(ao_process.send("Inc", wallet=wallets[1])["Messages"][0]["Data"]))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(replies) == [1, 2, 3, 4, 5, 6]


def test_process_message_is_the_first_evaluated(ao_node, ao_process, wallets):
    first = ao_node.store.message(ao_process.id, 0)
    assert DataItem.parse(first.item).id == ao_process.id
    assert output(ao_process.eval("Owner", wallet=wallets[0])) == wallets[0].address


def test_assign_delivers_a_message_to_another_process_once(ao_node, wallets):
    owner = wallets[0]
    first = ao_node.spawn(wallet=owner)
    other = ao_node.spawn(wallet=owner)
    other.eval("Seen = 0; ao.addAssignable('any', function() return true end); "
               "Handlers.add('Note', function() Seen = Seen + 1 end)", wallet=owner)
    note = first.message("Note", wallet=owner)
    first.result(note)
    assignment = ao_node.assign(other.id, note)
    assert ao_node.assign(other.id, note) == assignment
    assert output(other.result(note)) is not None
    assert output(other.eval("Seen", wallet=owner)) == "1"


def test_cron_messages_follow_the_interval(ao_node, wallets):
    owner = wallets[0]
    p = ao_node.spawn(wallet=owner, tags={"Cron-Interval": "1-second", "Cron-Tag-Action": "Tick"})
    p.eval("Ticks = 0; Handlers.add('Tick', function() Ticks = Ticks + 1 end)", wallet=owner)
    ao_node.monitor(p.id)
    time.sleep(3.5)
    ao_node.monitor(p.id, enabled=False)
    assert int(output(p.eval("Ticks", wallet=owner))) >= 2
    with pytest.raises(Exception, match="Cron-Interval"):
        ao_node.monitor(ao_node.spawn(wallet=owner).id)
