"""Runtime benchmark: Ping throughput, Eval and dry-run latency, restart time of a long log.

Every message is signed, scheduled (with a signed assignment), evaluated in a fork and stored.
Usage: python bench/runtime.py [--messages 300] [--restart-messages 10000]
"""

import argparse
import statistics
import tempfile
import threading
import time

from tfao.node.node import Node
from weavedrive.wallet import premade_wallets

PING = 'Handlers.add("Ping", function(msg) msg.reply({Data = "Pong"}) end)'


def percentiles(samples):
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


def timed(fn, n):
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--restart-messages", type=int, default=10_000)
    args = parser.parse_args()
    owner, user, _, node_wallet = premade_wallets()

    with tempfile.TemporaryDirectory() as home:
        with Node(home, wallet=node_wallet) as node:
            p = node.spawn(wallet=owner)
            p.eval(PING, wallet=owner)

            samples = timed(lambda: p.send("Ping", wallet=user), args.messages)
            p50, p95 = percentiles(samples)
            print(f"Ping round trip, sequential: {len(samples) / sum(samples):.1f} msg/s, p50 {p50:.1f} ms, p95 {p95:.1f} ms")

            ids, lock = [], threading.Lock()

            def sender(count):
                for _ in range(count):
                    mid = p.message("Ping", wallet=user)
                    with lock:
                        ids.append(mid)

            start = time.perf_counter()
            threads = [threading.Thread(target=sender, args=(args.messages // 4,)) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for mid in ids:
                p.result(mid)
            print(f"Ping, 4 concurrent senders: {len(ids) / (time.perf_counter() - start):.1f} msg/s")

            p50, p95 = percentiles(timed(lambda: p.eval("1 + 41", wallet=owner), 100))
            print(f"Eval 1+41: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
            p50, p95 = percentiles(timed(lambda: p.dryrun("Ping", owner=user.address), 100))
            print(f"dry-run Ping: p50 {p50:.1f} ms, p95 {p95:.1f} ms")

            long = node.spawn(wallet=owner)
            long.eval(PING, wallet=owner)
            start = time.perf_counter()
            last = [long.message("Ping", wallet=user) for _ in range(args.restart_messages)][-1]
            long.result(last, timeout=None)
            fill = time.perf_counter() - start
            print(f"{args.restart_messages} messages scheduled and evaluated in {fill:.1f} s")
            pid = long.id

        start = time.perf_counter()
        with Node(home, wallet=node_wallet) as node:
            node.process(pid).eval("1", wallet=owner)
            print(f"restart + replay of {args.restart_messages} messages + one Eval: "
                  f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
