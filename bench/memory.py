"""Node memory with N processes embedding with MiniLM: RSS and PSS summed over the node's OS processes.

Each process embeds a sentence of its own (so none is answered from the inference memo) and keeps its
loaded model. PSS splits shared pages between the processes that map them, so prepared exact weights
shared through the node home show up as PSS well below RSS.

    python bench/memory.py --processes 1 4
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfao.cli.demo import import_minilm  # noqa: E402
from tfao.node.node import Node  # noqa: E402


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory_kib(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in KiB summed over ``pids`` from /proc/PID/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(":")
            if name == "Rss":
                rss += int(value.split()[0])
            elif name == "Pss":
                pss += int(value.split()[0])
    return rss, pss


def measure(count: int) -> tuple[int, int, int]:
    with tempfile.TemporaryDirectory() as home, Node(home) as node:
        model = import_minilm(node)
        processes = [node.spawn(name=f"embedder-{i}") for i in range(count)]
        for i, process in enumerate(processes):
            code = f'V = require("transformers").bert.encode_text({{model = "{model}", prompt = "sentence number {i}"}}) return #V'
            result = process.eval(code, timeout=600)
            assert result.get("Output", {}).get("data") == "384", result
        pids = descendants(os.getpid())
        rss, pss = memory_kib(pids)
        return len(pids), rss, pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    print(f"{'processes':>9}  {'OS processes':>12}  {'RSS MiB':>8}  {'PSS MiB':>8}")
    for count in args.processes:
        os_processes, rss, pss = measure(count)
        print(f"{count:>9}  {os_processes:>12}  {rss / 1024:>8.0f}  {pss / 1024:>8.0f}")


if __name__ == "__main__":
    main()
