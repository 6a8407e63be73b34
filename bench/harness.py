"""Side-by-side timing with each side in its own process.

torch and numpy's OpenBLAS in one process compete for the cores (torch measured up to 10x slower there
than alone), so every side of a comparison runs in a child process of its own, and the parent asks the
sides in turn to run one repetition of a workload: the sides alternate, only one computes at a time,
and the medians are comparable.

A benchmark script defines its sides as functions that build the workloads (name -> callable) and calls
``serve_side`` when started with ``--side NAME``; the parent calls ``compare``.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


# a pause before each timed run: thread pools spin on the cores for a while after their last call (OpenMP's
# block time, OpenBLAS's idle workers), and would otherwise slow the next side down
SETTLE_SECONDS = 0.3


def serve_side(build: Callable[[], dict[str, Callable[[], object]]], warm: bool = True) -> None:
    """Child loop: build the workloads, warm each once (unless the build warmed them more cheaply), then
    run and time one per request line."""
    workloads = build()
    for run in workloads.values() if warm else ():
        run()
    print(json.dumps({"ready": sorted(workloads), "machine": machine()}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        start = time.perf_counter()
        workloads[name]()
        print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


class Side:
    """One side of a comparison, running in its own process (``script --side NAME``)."""

    def __init__(self, script: str, name: str, *args: str, env: dict | None = None):
        self.name = name
        self.child = subprocess.Popen([sys.executable, script, "--side", name, *args], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=env)
        hello = json.loads(self.child.stdout.readline())
        self.workloads, self.machine = hello["ready"], hello["machine"]

    def time(self, workload: str) -> float:
        self.child.stdin.write(workload + "\n")
        self.child.stdin.flush()
        return json.loads(self.child.stdout.readline())["seconds"]

    def close(self) -> None:
        self.child.stdin.close()
        self.child.wait(timeout=60)


def compare(sides: list[Side], workloads: list[str], repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds per side and workload, the sides alternating on every repetition."""
    times = {side.name: {w: [] for w in workloads} for side in sides}
    for _ in range(repeats):
        for workload in workloads:
            for side in sides:
                if workload in side.workloads:
                    time.sleep(SETTLE_SECONDS)
                    times[side.name][workload].append(side.time(workload))
    return {side: {w: statistics.median(t) for w, t in by_workload.items() if t}
            for side, by_workload in times.items()}


def measure(script: str, names: list[str], workloads: list[str], repeats: int, *args: str,
            env: dict | None = None) -> tuple[dict[str, dict[str, float]], dict[str, dict]]:
    """Start the named sides of ``script``, time the workloads alternating, close the sides: the medians and
    each side's machine."""
    sides = [Side(script, name, *args, env=env) for name in names]
    try:
        return compare(sides, workloads, repeats), {side.name: side.machine for side in sides}
    finally:
        for side in sides:
            side.close()


def print_machines(machines: dict[str, dict]) -> None:
    for name, machine in machines.items():
        print(f"{name}: {machine['cpu']}; BLAS {', '.join(machine['blas']) or '-'}")


def print_profile(run: Callable[[], object], runs: int, title: str, top: int = 14) -> None:
    """The functions that take the most time of their own over ``runs`` calls of ``run``, on one core: the
    profiler sees one thread only, and with BLAS on one thread the pieces a call would spread over the
    cores run one after another on it."""
    import cProfile
    import pstats

    from threadpoolctl import threadpool_limits

    profile = cProfile.Profile()
    with threadpool_limits(limits=1, user_api="blas"):
        profile.runcall(lambda: [run() for _ in range(runs)])
    print(f"\n{title}, {runs} run(s) on one core, top functions by own time:")
    pstats.Stats(profile).sort_stats("tottime").print_stats(top)


def machine() -> dict:
    """The CPU and the BLAS kernel this process runs on (OpenBLAS's choice depends on OPENBLAS_CORETYPE)."""
    from threadpoolctl import threadpool_info

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), cpu)
    except OSError:
        pass
    blas = [f"{pool.get('internal_api')} {pool.get('version')} {pool.get('architecture')} x{pool.get('num_threads')}"
            for pool in threadpool_info() if pool.get("user_api") == "blas"]
    return {"cpu": cpu, "blas": blas}


def print_table(title: str, medians: dict[str, dict[str, float]], reference: str, workloads: list[str]) -> None:
    """Milliseconds per side and the ratio of each side's time to the reference's."""
    print(f"\n{title}")
    others = [side for side in medians if side != reference]
    first = max(12, len(reference) + 5)
    ratio = max(14, len(reference) + 10)  # room for "<side>/<reference>" and a gap
    print(f"{'workload':<24}{reference + ' ms':>{first}}"
          + "".join(f"{s + ' ms':>14}{s + '/' + reference:>{ratio}}" for s in others))
    for workload in workloads:
        base = medians[reference].get(workload)
        row = f"{workload:<24}{base * 1e3 if base else float('nan'):>{first}.1f}"
        for side in others:
            value = medians[side].get(workload)
            row += f"{value * 1e3 if value else float('nan'):>14.1f}"
            row += f"{value / base if value and base else float('nan'):>{ratio}.2f}"
        print(row)
