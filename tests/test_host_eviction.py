"""Idle process hosts are evicted and rebuilt from the log on demand, so a node holds many processes.

A host costs an OS process (about 10 MiB of private memory) and three descriptors; a node runs at
most ``max_live_hosts`` at once and evicts hosts unused for ``idle_host_seconds``. An evicted
process is indistinguishable from one that never stopped: its next message, dry-run or result sees
the state its log leads to.
"""

from __future__ import annotations

import gc
import os
import time

import tfao.node.node as node_module
from tfao.node.node import Node

KEEP = 'Handlers.add("Get", "Get", function (msg) msg.reply({ Data = tostring(Value) }) end)'


def live_hosts_settle(node, most: int) -> bool:
    """Eviction runs after a batch, beside the caller: wait for it."""
    deadline = time.monotonic() + 30
    while len(node.hosts) > most and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(node.hosts) <= most


def evicted(node, process) -> bool:
    """Evict idle hosts until the process's is gone (its last batch ends just after its result)."""
    deadline = time.monotonic() + 30
    while process.id in node.hosts and time.monotonic() < deadline:
        node.evict_idle(0)
        time.sleep(0.01)
    return process.id not in node.hosts


def value(process) -> str:
    return process.send("Get")["Messages"][0]["Data"]


def test_at_most_max_live_hosts_run_and_evicted_processes_keep_their_state(tmp_path):
    with Node(tmp_path / "node", max_live_hosts=2) as node:
        processes = [node.spawn() for _ in range(4)]
        for number, process in enumerate(processes):
            process.eval(f"Value = {number}\n{KEEP}")
            assert live_hosts_settle(node, 2)
        assert [value(process) for process in processes] == ["0", "1", "2", "3"]
        assert [process.dryrun("Get")["Messages"][0]["Data"] for process in processes] == ["0", "1", "2", "3"]
        assert live_hosts_settle(node, 2)


def test_idle_hosts_are_evicted_and_come_back_on_demand(ao_node):
    process = ao_node.spawn()
    process.eval(f"Value = 41\n{KEEP}")
    process.eval("Value = Value + 1")
    assert evicted(ao_node, process)
    assert process.dryrun("Get")["Messages"][0]["Data"] == "42"
    assert evicted(ao_node, process)
    assert value(process) == "42"


def test_a_busy_host_is_not_evicted(ao_node):
    process = ao_node.spawn()
    process.eval(f"Value = 1\n{KEEP}")
    busy = process.message("Eval", data="local x = 0 for i = 1, 20000000 do x = x + i end Value = 2")
    ao_node.evict_idle(0)
    assert "Error" not in process.result(busy)
    assert value(process) == "2"


def test_replay_reads_the_log_in_pages(tmp_path, monkeypatch):
    monkeypatch.setattr(node_module, "REPLAY_BATCH", 3)
    with Node(tmp_path / "node") as node:
        process = node.spawn()
        process.eval(f"Value = 0\n{KEEP}")
        for _ in range(7):
            process.eval("Value = Value + 1")
        process.eval("error('not replayed')")
        assert evicted(node, process)
        assert value(process) == "7"


def test_evicting_and_rebuilding_hosts_leaks_no_descriptors(tmp_path):
    def descriptors_after_a_round() -> int:
        for process in processes:
            assert value(process) == "1"
        assert live_hosts_settle(node, 2)
        gc.collect()  # an evaluation thread's database connection goes with the thread
        return len(os.listdir("/proc/self/fd"))

    with Node(tmp_path / "node", max_live_hosts=2) as node:
        processes = [node.spawn() for _ in range(5)]
        for process in processes:
            process.eval(f"Value = 1\n{KEEP}")
        first = descriptors_after_a_round()
        assert max(descriptors_after_a_round() for _ in range(3)) <= first + 2
