"""Node memory with N processes using one model: RSS and PSS summed over the node's OS processes.

Each process runs the model on an input of its own (so none is answered from the inference memo) and keeps
its loaded model. PSS splits shared pages between the processes that map them, so weights memory-mapped
from the weave and prepared exact weights shared through the node home show up as PSS well below RSS.

``--model minilm`` (default) embeds a sentence; ``--model sd`` draws a 64 px image in one step with a
real-size, random-weight SD1.5 (built from the real configs once into ``--cache``, as ``bench/sd.py`` does;
it needs several GB of memory). ``--math`` picks the processes' math mode: exact (default) prepares and
shares quantized float64 copies of every dense layer (twice the fp32 size, written once under the node home).

    python bench/memory.py --processes 1 4
    python bench/memory.py --model sd --math fast --processes 1 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tfao.cli.demo import import_minilm  # noqa: E402
from tfao.node.node import Node  # noqa: E402
from weavedrive.admission import attest_with_files  # noqa: E402
from weavedrive.manifest import import_model  # noqa: E402


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


def minilm_calls(node: Node, cache: Path):
    """The Lua of process ``i`` embedding a sentence of its own, and what it returns."""
    model = import_minilm(node)
    return lambda i: (f'V = require("transformers").bert.encode_text({{model = "{model}", prompt = "sentence number {i}"}})'
                      " return #V", "384")


def sd_calls(node: Node, cache: Path):
    """The Lua of process ``i`` drawing a picture of its own with the random-weight SD1.5, and what it returns."""
    folder = cache / "folder"
    if not (folder / "model_index.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(Path(__file__).with_name("sd.py")), "--prepare", "--cache", str(cache)],
                       check=True)
    manifest, _ = import_model(node.weave, folder, node.wallet, name="sd15-random")
    attest_with_files(node.weave, node.wallet, manifest.id)
    return lambda i: (f'IMAGE = require("transformers").sd.txt2img{{model = "{manifest.id}", prompt = "picture number {i}",'
                      ' steps = 1, height = 64, width = 64, store = true} return #IMAGE', "43")


MODELS = {"minilm": minilm_calls, "sd": sd_calls}


def measure(count: int, model: str, math: str, cache: Path) -> tuple[int, int, int]:
    with tempfile.TemporaryDirectory() as home, Node(home, eval_timeout=3600) as node:
        call = MODELS[model](node, cache)
        processes = [node.spawn(name=f"user-{i}", tags=[("Math-Mode", math)]) for i in range(count)]
        for i, process in enumerate(processes):
            code, expected = call(i)
            result = process.eval(code, timeout=3600)
            assert result.get("Output", {}).get("data") == expected, result
        pids = descendants(os.getpid())
        rss, pss = memory_kib(pids)
        return len(pids), rss, pss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--model", choices=sorted(MODELS), default="minilm")
    parser.add_argument("--math", choices=("exact", "fast"), default="exact", help="the processes' math mode")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tfao-sd15-bench",
                        help="where the random SD1.5 is built once (shared with bench/sd.py)")
    args = parser.parse_args()
    if args.model == "sd":  # a node serving SD keeps it loaded: its weights exceed the model cache's default budget
        os.environ.setdefault("TFAO_MODEL_CACHE_BYTES", str(64 * 2**30))
    print(f"{args.model}, {args.math} math")
    print(f"{'processes':>9}  {'OS processes':>12}  {'RSS MiB':>8}  {'PSS MiB':>8}  {'PSS / first':>11}")
    first = None
    for count in args.processes:
        os_processes, rss, pss = measure(count, args.model, args.math, args.cache)
        first = first or pss
        print(f"{count:>9}  {os_processes:>12}  {rss / 1024:>8.0f}  {pss / 1024:>8.0f}  {pss / first:>11.2f}")


if __name__ == "__main__":
    main()
