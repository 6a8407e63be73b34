"""Node scale: cost against the number of processes and against the length of their logs.

    python bench/scale.py [--processes 10 100 1000] [--log-lengths 1000 10000 100000]

Processes: a node spawns N processes (each a host: an OS process and its spare, three descriptors, two threads),
then every one of them answers a Ping. Printed: the OS processes, RSS and PSS summed over them, the
node's descriptors and threads, idle and after the Pings, and the Pings' round trips; past the
node's ``max_live_hosts`` the least recently used idle hosts are evicted, so a Ping may rebuild its
process from the log.

Log length: a home holds a process with L messages and a small one. Printed: how long the node
takes to open, the first round trip to the small process, and the first round trip to the long one
(which replays its log).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import machine  # noqa: E402
from memory import descendants, memory_kib  # noqa: E402

from tfao.node.node import Node  # noqa: E402
from weavedrive.wallet import Ed25519Signer  # noqa: E402

PING = 'Handlers.add("Ping", "Ping", function (msg) Count = (Count or 0) + 1 msg.reply({ Data = "Pong" }) end)'
SENDERS = 4


def footprint(node: Node) -> dict:
    pids = descendants(os.getpid())
    rss, pss = memory_kib(pids)
    return {"os": len(pids), "rss": rss / 1024, "pss": pss / 1024, "fds": len(os.listdir("/proc/self/fd")),
            "threads": threading.active_count(), "live": len(node.hosts)}


def ping(process) -> float:
    start = time.perf_counter()
    result = process.send("Ping", timeout=600)
    assert result["Messages"][0]["Data"] == "Pong", result
    return time.perf_counter() - start


def processes_row(count: int) -> list[str]:
    with tempfile.TemporaryDirectory() as home, Node(home) as node:
        with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
            start = time.perf_counter()
            processes = list(pool.map(lambda _: node.spawn(), range(count)))
            list(pool.map(lambda p: p.eval(PING, timeout=600), processes))
            spawned = time.perf_counter() - start
            idle = footprint(node)
            trips = sorted(pool.map(ping, processes))
            active = footprint(node)
        warm = sorted(ping(processes[-1]) for _ in range(20))
    p95 = trips[int(len(trips) * 0.95) - 1] if len(trips) > 1 else trips[0]
    return [f"{count}", f"{spawned:.1f}", f"{idle['os']}", f"{idle['rss']:.0f}", f"{idle['pss']:.0f}",
            f"{idle['fds']}", f"{idle['threads']}", f"{active['live']}", f"{active['pss']:.0f}",
            f"{active['fds']}", f"{active['threads']}", f"{statistics.median(trips) * 1000:.1f}",
            f"{p95 * 1000:.1f}", f"{statistics.median(warm) * 1000:.1f}"]


def log_row(length: int) -> list[str]:
    sender = Ed25519Signer.generate()  # cheap to sign with, so building the log is quick (its signatures
    # are deterministic: each message has data of its own, or they would be one message)
    with tempfile.TemporaryDirectory() as home:
        with Node(home) as node:
            long, small = node.spawn(), node.spawn()
            long.eval(PING)
            small.eval(PING)
            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(SENDERS) as pool:
                ids = list(pool.map(lambda i: long.message("Ping", data=str(i), wallet=sender), range(length)))
            for id in ids:
                long.result(id, timeout=3600)
            built = time.perf_counter() - start
        start = time.perf_counter()
        with Node(home) as node:
            opened = time.perf_counter() - start
            first_small = ping(node.process(small.id))
            first_long = ping(node.process(long.id))
            count = node.process(long.id).dryrun("Eval", data="Count")["Output"]["data"]
            assert int(count) == length + 1, count
    return [f"{length}", f"{built:.0f}", f"{opened * 1000:.0f}", f"{first_small * 1000:.0f}",
            f"{first_long:.2f}"]


def print_rows(title: str, header: list[str], rows) -> None:
    print(f"\n{title}\n| {' | '.join(header)} |\n|{'---|' * len(header)}", flush=True)
    for row in rows:
        print(f"| {' | '.join(row)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--log-lengths", type=int, nargs="*", default=[1000, 10_000, 100_000])
    args = parser.parse_args()
    info = machine()
    print(f"machine: {info['cpu']}, {os.cpu_count()} cores")
    print_rows("Processes on one node (MiB; idle, then after a Ping to each)",
               ["processes", "spawn s", "OS processes", "RSS", "PSS", "fds", "threads", "live hosts",
                "PSS active", "fds active", "threads active", "Ping p50 ms", "Ping p95 ms", "warm Ping p50 ms"],
               (processes_row(count) for count in args.processes))
    print_rows("Restart against log length (one process with L messages, one with 1)",
               ["messages", "build s", "node open ms", "first Ping, small process ms", "first Ping, long process s"],
               (log_row(length) for length in args.log_lengths))


if __name__ == "__main__":
    main()
