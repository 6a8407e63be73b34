"""WeaveDrive benchmark: add/verify a large file, map a large safetensors through /data/ID, gateway fetch.

    python bench/weave.py [--size-mb 2048] [--workdir DIR]

Each phase runs in its own Python process so its peak RSS (VmHWM) is its own. "Anon" is the
process's private memory (RssAnon), the part that is not the mapped file's page cache.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

TENSOR_MB = 32


def proc_status(field: str) -> int:
    """A /proc/self/status memory field in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def write_safetensors(path: Path, size_mb: int) -> None:
    """A safetensors file of float32 tensors of TENSOR_MB each, written without holding it in memory."""
    count = max(1, size_mb // TENSOR_MB)
    elements = TENSOR_MB * 1024 * 1024 // 4
    header = {
        f"layer.{i}.weight": {"dtype": "F32", "shape": [elements], "data_offsets": [i * elements * 4, (i + 1) * elements * 4]}
        for i in range(count)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw)
        for _ in range(count):
            f.write(rng.standard_normal(elements, dtype=np.float32).tobytes())


def mapped_tensors(path: Path):
    """(mmap, {name: (start, end)}) for a safetensors file; tensors are read in place, never copied."""
    f = open(path, "rb")
    mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    header_size = int.from_bytes(mm[:8], "little")
    header = json.loads(mm[8 : 8 + header_size])
    base = 8 + header_size
    spans = {
        name: (base + meta["data_offsets"][0], base + meta["data_offsets"][1])
        for name, meta in header.items()
        if name != "__metadata__"
    }
    return mm, spans


# --- phases (each in its own process) ----------------------------------------------------------------


def phase_add(workdir: Path) -> dict:
    from weavedrive.store import WeaveStore
    from weavedrive.wallet import premade_wallets

    store = WeaveStore(workdir / "home")
    source = workdir / "model.safetensors"
    started = time.perf_counter()
    item = store.add_file(source, premade_wallets()[0], [("Content-Type", "application/octet-stream")])
    seconds = time.perf_counter() - started
    return {"id": item.id, "seconds": seconds, "mb_per_s": item.size / seconds / 1e6, "peak_rss": proc_status("VmHWM")}


def phase_verify(workdir: Path, id: str) -> dict:
    from weavedrive.store import WeaveStore

    store = WeaveStore(workdir / "home")
    started = time.perf_counter()
    item = store.verify(id)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "mb_per_s": item.size / seconds / 1e6, "peak_rss": proc_status("VmHWM")}


def phase_map(workdir: Path, id: str, release: bool) -> dict:
    """Open /data/ID through a process's drive (admission, tamper check) and touch every tensor."""
    from tfao.bridges.weavedrive import WeaveDrive
    from weavedrive.store import WeaveStore

    store = WeaveStore(workdir / "home")
    process = {"id": "P" * 43, "owner": "", "tags": [("Availability-Type", "Test")]}
    started = time.perf_counter()
    blob = WeaveDrive.for_process(store, process, {"tags": []}).data_blob(id, store.current_height())
    opened = time.perf_counter() - started
    mm, spans = mapped_tensors(blob.path)
    total, peak_anon = 0.0, proc_status("RssAnon")
    for start, end in spans.values():
        tensor = np.frombuffer(mm, dtype=np.float32, count=(end - start) // 4, offset=start)
        total += float(tensor.sum(dtype=np.float64))
        del tensor
        if release:  # drop this tensor's pages from the process (they stay in the page cache)
            aligned = start - start % mmap.PAGESIZE
            mm.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)
        peak_anon = max(peak_anon, proc_status("RssAnon"))
    seconds = time.perf_counter() - started
    return {
        "open_seconds": opened,
        "seconds": seconds,
        "tensors": len(spans),
        "mb_per_s": blob.size / seconds / 1e6,
        "peak_rss": proc_status("VmHWM"),
        "peak_anon": peak_anon,
        "checksum": total,
    }


def phase_fetch(workdir: Path, id: str) -> dict:
    """Fetch the item from a loopback gateway serving the first weave into a second one."""
    from weavedrive.gateway import Gateway
    from weavedrive.store import WeaveStore

    source = WeaveStore(workdir / "home")
    server = loopback_gateway(source)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        target = WeaveStore(workdir / "fetched")
        started = time.perf_counter()
        item = Gateway(f"http://127.0.0.1:{server.server_address[1]}").fetch(id, target)
        seconds = time.perf_counter() - started
    finally:
        server.shutdown()
    return {"seconds": seconds, "mb_per_s": item.size / seconds / 1e6, "peak_rss": proc_status("VmHWM")}


def loopback_gateway(store) -> ThreadingHTTPServer:
    """A minimal file-backed gateway: GraphQL by id, HEAD and ranged GET of /raw/ID."""
    from weavedrive.ans104 import b64url_encode

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            variables = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["variables"]
            item = store.get(variables["ids"][0])
            node = {
                "id": item.id, "signature": b64url_encode(item.signature), "anchor": b64url_encode(item.anchor),
                "owner": {"address": item.owner_address, "key": b64url_encode(item.owner)},
                "recipient": item.target or "", "tags": [{"name": n, "value": v} for n, v in item.tags],
                "bundledIn": {"id": "local"},
            }
            self._reply(200, json.dumps({"data": {"transactions": {"edges": [{"node": node}]}}}).encode())

        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Length", str(store.get(self.path.rsplit("/", 1)[1]).size))
            self.end_headers()

        def do_GET(self):
            blob = store.data_blob(self.path.rsplit("/", 1)[1])
            start, end = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
            self.send_response(206)
            self.send_header("Content-Length", str(end + 1 - start))
            self.end_headers()
            with open(blob.path, "rb") as f:
                f.seek(start)
                os.sendfile(self.wfile.fileno(), f.fileno(), start, end + 1 - start)

        def _reply(self, status, body):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


PHASES = {"add": phase_add, "verify": phase_verify, "map": phase_map, "fetch": phase_fetch}


def run_phase(name: str, workdir: Path, *args) -> dict:
    command = [sys.executable, __file__, "--phase", name, "--workdir", str(workdir), *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--phase", choices=PHASES)
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()
    if args.phase:
        extra = [a if a not in ("True", "False") else a == "True" for a in args.args]
        print(json.dumps(PHASES[args.phase](args.workdir, *extra)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="weave-bench-", dir=args.workdir))
    try:
        write_safetensors(workdir / "model.safetensors", args.size_mb)
        size = (workdir / "model.safetensors").stat().st_size
        mb = lambda n: f"{n / 2**20:.0f} MiB"  # noqa: E731
        print(f"file: {mb(size)} safetensors, {TENSOR_MB} MiB float32 tensors")
        added = run_phase("add", workdir)
        print(f"add (sign + copy, one pass): {added['seconds']:.2f} s, {added['mb_per_s']:.0f} MB/s, peak RSS {mb(added['peak_rss'])}")
        verified = run_phase("verify", workdir, added["id"])
        print(f"verify (sha256 + deep hash + signature): {verified['seconds']:.2f} s, {verified['mb_per_s']:.0f} MB/s, peak RSS {mb(verified['peak_rss'])}")
        for release in (False, True):
            mapped = run_phase("map", workdir, added["id"], release)
            how = "pages released per tensor" if release else "pages kept"
            print(
                f"/data/ID mmap, touch {mapped['tensors']} tensors ({how}): open {mapped['open_seconds'] * 1e3:.1f} ms,"
                f" {mapped['seconds']:.2f} s, {mapped['mb_per_s']:.0f} MB/s, peak RSS {mb(mapped['peak_rss'])}"
                f" (file {mb(size)}), peak private {mb(mapped['peak_anon'])}"
            )
        fetched = run_phase("fetch", workdir, added["id"])
        print(f"gateway fetch (loopback, verified): {fetched['seconds']:.2f} s, {fetched['mb_per_s']:.0f} MB/s, peak RSS {mb(fetched['peak_rss'])}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
