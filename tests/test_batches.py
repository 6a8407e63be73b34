"""Messages waiting for a process are evaluated as one batch, in one fork of its host.

A batch must leave exactly what one evaluation per message would have: every failed message rolled
back on its own, the messages after a failure evaluated against the right state, each message
under its own wall-clock limit. Dry-runs see every result already stored (read your writes), and a
repeated dry-run against an unchanged state is answered from the node's cache.
"""

from __future__ import annotations

import json
import os
import signal
import time

from tfao.node.node import Node
from weavedrive.ans104 import DataItem

COUNTER = """
Count = Count or 0
Handlers.add("Bump", "Bump", function (msg)
  Count = Count + 1
  if msg.Data == "fail" then error("refused " .. Count) end
  if msg.Data == "spin" then while true do end end
  if msg.Data == "slow" then local x = 0 for i = 1, 30000000 do x = x + i end end
  msg.reply({ Data = tostring(Count) })
end)
Handlers.add("Busy", "Busy", function (msg)
  local x = 0
  for i = 1, tonumber(msg.Data) do x = x + i end
  msg.reply({ Data = tostring(x) })
end)
Handlers.add("Get", "Get", function (msg) msg.reply({ Data = tostring(Count) }) end)
"""


def queue_behind_a_busy_message(process, wallet, datas: list[str]) -> list[str]:
    """Send a message that keeps the host busy and wait until its batch has started, then send ``datas`` at
    once, so they wait as one batch (however slowly the machine signs them)."""
    host = process.node.hosts[process.id]
    started = host.batches
    process.message("Busy", data="20000000", wallet=wallet)
    deadline = time.monotonic() + 60
    while host.batches == started and time.monotonic() < deadline:
        time.sleep(0.001)
    return [process.message("Bump", data=data, wallet=wallet) for data in datas]


def reply(result: dict) -> str | None:
    return result["Messages"][0]["Data"] if result.get("Messages") else None


def test_a_batch_with_failures_leaves_what_one_fork_per_message_would(ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    datas = ["ok", "ok", "fail", "fail", "ok", "ok", "ok", "fail", "ok", "ok", "ok", "fail"]
    ids = queue_behind_a_busy_message(ao_process, wallets[0], datas)
    results = [ao_process.result(id) for id in ids]
    expected, count = [], 0
    for data in datas:
        if data == "fail":
            expected.append(f"refused {count + 1}")  # the failed increment is rolled back
        else:
            count += 1
            expected.append(str(count))
    assert [reply(r) or r["Error"].rsplit(": ", 1)[-1] for r in results] == expected
    assert reply(ao_process.send("Get", wallet=wallets[0])) == str(count)


def test_a_message_that_times_out_inside_a_batch_ends_alone(tmp_path, wallets):
    with Node(tmp_path / "node", eval_timeout=1.0) as node:
        process = node.spawn(wallet=wallets[0])
        process.eval(COUNTER, wallet=wallets[0])
        ids = queue_behind_a_busy_message(process, wallets[0], ["ok", "ok", "spin", "ok"])
        results = [process.result(id, timeout=60) for id in ids]
        assert [reply(r) for r in results[:2]] == ["1", "2"]
        assert "timed out" in results[2]["Error"]
        assert reply(results[3]) == "3"
        assert reply(process.send("Get", wallet=wallets[0])) == "3"


def test_a_batch_survives_a_restart_with_the_same_results(tmp_path, wallets):
    with Node(tmp_path / "node") as node:
        process = node.spawn(wallet=wallets[0])
        process.eval(COUNTER, wallet=wallets[0])
        ids = queue_behind_a_busy_message(process, wallets[0], ["ok", "fail", "ok", "ok"])
        before = [process.result(id) for id in ids]
        pid = process.id
    with Node(tmp_path / "node") as node:
        process = node.process(pid)
        assert [process.result(id) for id in ids] == before
        assert reply(process.send("Get", wallet=wallets[0])) == "3"


def test_dryruns_see_every_stored_result(ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    ids = queue_behind_a_busy_message(ao_process, wallets[0], ["ok"] * 12)
    for number, id in enumerate(ids, start=1):
        ao_process.result(id)
        assert int(reply(ao_process.dryrun("Get"))) >= number


def test_a_repeated_dryrun_is_answered_from_the_cache_until_the_state_changes(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    ao_process.send("Bump", wallet=wallets[0])
    host = ao_node.hosts[ao_process.id]
    calls = []
    evaluate = host.dryrun
    host.dryrun = lambda msg, env: calls.append(msg) or evaluate(msg, env)
    assert [reply(ao_process.dryrun("Get")) for _ in range(5)] == ["1"] * 5
    assert len(calls) == 1
    ao_process.send("Bump", wallet=wallets[0])
    assert reply(ao_process.dryrun("Get")) == "2" and len(calls) == 2
    assert reply(ao_process.dryrun("Get", tags={"Other": "tag"})) == "2" and len(calls) == 3


def test_a_cached_dryrun_is_found_without_blocking_only_for_the_latest_state(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    ao_process.send("Bump", wallet=wallets[0])
    message = {"Owner": wallets[0].address, "Tags": [{"name": "Action", "value": "Get"}]}
    assert ao_node.cached_dryrun(ao_process.id, message) is None  # never answered
    answer = ao_node.dryrun(ao_process.id, message)
    assert json.loads(ao_node.cached_dryrun(ao_process.id, message)) == answer
    assert ao_node.cached_dryrun(ao_process.id, dict(message, Data="other")) is None
    ao_process.send("Bump", wallet=wallets[0])
    assert ao_node.cached_dryrun(ao_process.id, message) is None  # the state has changed
    assert reply(ao_node.dryrun(ao_process.id, message)) == "2"
    assert reply(json.loads(ao_node.cached_dryrun(ao_process.id, message))) == "2"


def test_dryruns_that_fail_are_evaluated_every_time(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    host = ao_node.hosts[ao_process.id]
    calls = []
    evaluate = host.dryrun
    host.dryrun = lambda msg, env: calls.append(msg) or evaluate(msg, env)
    for _ in range(3):
        assert "refused" in ao_process.dryrun("Bump", data="fail")["Error"]
    assert len(calls) == 3


def test_assignments_are_signed_by_the_scheduler_key(tmp_path, wallets):
    with Node(tmp_path / "ed25519", wallet=wallets[3]) as node:
        process = node.spawn(wallet=wallets[0])
        assignment = DataItem.parse(node.scheduled(process.id, 0).assignment)
        assert assignment.verify() and assignment.signature_type == 2
        assert assignment.owner_address == node.assignment_signer.address != node.address
    with Node(tmp_path / "ed25519", wallet=wallets[3]) as node:  # the same key after a restart
        assert node.assignment_signer.address == assignment.owner_address
    with Node(tmp_path / "rsa", wallet=wallets[3], wallet_signs_assignments=True) as node:
        process = node.spawn(wallet=wallets[0])
        assignment = DataItem.parse(node.scheduled(process.id, 0).assignment)
        assert assignment.verify() and assignment.owner_address == node.address


def test_a_batch_forms_when_messages_wait(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    host = ao_node.hosts[ao_process.id]
    sizes = []
    evaluate = host.evaluate
    host.evaluate = lambda batch: sizes.append(len(batch)) or evaluate(batch)
    start = time.monotonic()
    ids = queue_behind_a_busy_message(ao_process, wallets[0], ["ok"] * 10)
    assert reply(ao_process.result(ids[-1])) == "10"
    assert max(sizes) > 1, f"batches {sizes} after {time.monotonic() - start:.2f} s"


def test_a_batch_takes_no_new_message_after_its_time_slice(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    host = ao_node.hosts[ao_process.id]
    offered = []  # the message ids of each batch the node sends
    evaluate = host.evaluate
    host.evaluate = lambda batch: offered.append([msg["Id"] for msg, _ in batch]) or evaluate(batch)
    ids = queue_behind_a_busy_message(ao_process, wallets[0], ["ok", "slow", "ok", "ok"])
    assert [reply(ao_process.result(id)) for id in ids] == ["1", "2", "3", "4"]
    with_slow = next(batch for batch in offered if ids[1] in batch)
    assert ids[3] in with_slow, f"batches {offered}: the messages were not waiting together"
    assert sum(ids[3] in batch for batch in offered) >= 2, "the messages after the slow one were sent again"


def host_processes(node) -> dict[int, int]:
    """pid -> parent pid of the live processes the node's zygote started (its session), zygote included."""
    found = {}
    for entry in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if int(fields[3]) == node.zygote.proc.pid and fields[0] != "Z":  # session, state
            found[int(entry)] = int(fields[1])
    return found


def spares(node) -> list[int]:
    """Each holder's spare is its child; holders are the zygote's children (or orphans it adopted)."""
    return [pid for pid, parent in host_processes(node).items() if parent not in (node.zygote.proc.pid, 1)
            and parent in host_processes(node)]


def steady_spares(node) -> list[int]:
    """The spares, once the same ones have been there for a while: just after a batch the new holder is still
    its old holder's child for a moment, and looks like a spare until the old one has exited."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        seen = sorted(spares(node))
        time.sleep(0.2)
        if len(seen) == len(node.hosts) and sorted(spares(node)) == seen:
            return seen
    raise AssertionError("the process hosts did not settle")


def settles(check) -> bool:
    deadline = time.monotonic() + 30
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_an_idle_host_keeps_one_spare_and_evicted_hosts_leave_no_process(ao_node, wallets):
    processes = [ao_node.spawn(wallet=wallets[0]) for _ in range(3)]
    for process in processes:
        process.eval(COUNTER, wallet=wallets[0])
        process.send("Bump", wallet=wallets[0])
    assert settles(lambda: len(spares(ao_node)) == len(ao_node.hosts))
    assert settles(lambda: ao_node.evict_idle(0) or not ao_node.hosts)
    assert settles(lambda: list(host_processes(ao_node)) == [ao_node.zygote.proc.pid])


def test_a_spare_killed_from_outside_is_replaced(ao_node, ao_process, wallets):
    ao_process.eval(COUNTER, wallet=wallets[0])
    assert reply(ao_process.send("Bump", wallet=wallets[0])) == "1"
    host = ao_node.hosts[ao_process.id]
    killed = steady_spares(ao_node)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    # dead, its ends closed: a spare that dies after taking the batch is a crash of that batch instead
    assert settles(lambda: not set(killed) & set(host_processes(ao_node)))
    assert reply(ao_process.send("Bump", wallet=wallets[0])) == "2"
    assert reply(ao_process.send("Bump", data="fail", wallet=wallets[0])) is None
    assert reply(ao_process.send("Bump", wallet=wallets[0])) == "3"
    assert ao_node.hosts[ao_process.id] is host  # the host went on: not rebuilt from the log


def test_a_restarted_node_answers_repeated_dryruns_from_the_cache(tmp_path, wallets):
    message = {"Owner": wallets[0].address, "Tags": [{"name": "Action", "value": "Get"}]}
    with Node(tmp_path / "node", wallet=wallets[3]) as node:
        process = node.spawn(wallet=wallets[0])
        node.result(process.id, node.message(process.id, data=COUNTER, tags=[("Action", "Eval")], wallet=wallets[0]))
    with Node(tmp_path / "node", wallet=wallets[3]) as node:  # nothing new is stored after the restart
        answer = node.dryrun(process.id, message)
        assert json.loads(node.cached_dryrun(process.id, message)) == answer
