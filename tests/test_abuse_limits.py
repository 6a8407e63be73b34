"""Limits that are limits: nonsensical Memory-Limit/Compute-Limit are refused, every process is capped
at the node's maximum, and a message's result has a size limit (an Error beyond it)."""

import os
import time

import pytest

from tfao.node.node import Node, NodeError
from tfao.sandbox.host import MAX_RESULT_BYTES


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def output(result):
    return result["Output"]["data"] if isinstance(result["Output"], dict) else result["Output"]


@pytest.mark.parametrize("name, value", [
    ("Memory-Limit", "0"), ("Memory-Limit", "-1"), ("Memory-Limit", "0-mb"), ("Memory-Limit", "lots"),
    ("Compute-Limit", "0"), ("Compute-Limit", "-5"), ("Compute-Limit", "1e9"), ("Compute-Limit", "many"),
])
def test_a_limit_that_is_no_limit_is_refused_at_spawn(ao_node, wallets, name, value):
    with pytest.raises(NodeError, match=f"invalid {name}"):
        ao_node.spawn(wallet=wallets[0], tags=[(name, value)])


def test_a_process_spawning_with_a_nonsensical_limit_gets_a_refusal(ao_node, wallets):
    parent = ao_node.spawn(wallet=wallets[0])
    result = parent.eval('Spawn(ao.env.Module.Id, {["Memory-Limit"] = "0"})', wallet=wallets[0])
    assert "invalid Memory-Limit" in result["Refused"][0]["Error"]


@pytest.mark.parametrize("value", ["1-gb", "512mb", "1073741824", "2-GiB"])
def test_sizes_as_aos_writes_them_are_accepted(ao_node, wallets, value):
    assert ao_node.spawn(wallet=wallets[0], tags=[("Memory-Limit", value)]).id


def test_every_process_is_capped_at_the_node_maximum(wallets):
    with Node(wallet=wallets[3], max_memory_limit=64 * 2**20, max_compute_limit=10_000_000) as node:
        process = node.spawn(wallet=wallets[0], tags=[("Memory-Limit", "16-gb"), ("Compute-Limit", "9" * 15)])
        memory = process.eval("local t = {} for i = 1, 100 do t[i] = string.rep('x', 2^20) .. i end", wallet=wallets[0])
        assert "not enough memory" in memory["Error"]
        compute = process.eval("while true do end", wallet=wallets[0])
        assert "compute limit exceeded" in compute["Error"]
        assert output(process.eval("1 + 1", wallet=wallets[0])) == "2"


def test_an_oversized_result_is_an_error_and_the_process_goes_on(ao_node, wallets):
    owner = wallets[0]
    process, bystander = ao_node.spawn(wallet=owner), ao_node.spawn(wallet=owner)
    process.eval("Before = 1", wallet=owner)
    started, baseline = time.monotonic(), resident_bytes()
    result = process.eval(f"Before = 2; print(string.rep('a', {MAX_RESULT_BYTES + 1}))", wallet=owner)
    assert f"more than this node's limit of {MAX_RESULT_BYTES}" in result["Error"]
    assert time.monotonic() - started < 25
    assert resident_bytes() - baseline < MAX_RESULT_BYTES  # the node never held the output
    assert output(process.eval("Before", wallet=owner)) == "1"  # rolled back
    assert output(bystander.eval("'here'", wallet=owner)) == "here"
