"""A local AO node: messenger, scheduler and compute unit over one durable log.

``Node`` accepts signed data items (processes and messages), assigns each message a nonce, a
timestamp, a block height and a hash-chain link with a signed assignment, stores both before
acknowledging, evaluates them in order in the process's host, stores the result, and pushes the
outbox (messages, spawns, assignments) to local processes as the messenger would.

Assignments are signed with the node's Ed25519 *scheduler key* (ANS-104 signature type 2,
``scheduler-ed25519.key`` in the home): an RSA-4096 signature costs 2 to 7 ms here and the
scheduler signs one per message, an Ed25519 one about 50 us. The node's wallet stays its identity
(the processes' ``Scheduler`` and ``Authority``, the items it pushes). aoconnect and aos read an
assignment's tags and never check who signed it; a client that requires the assignment's signer to
be the process's ``Scheduler`` gets ``wallet_signs_assignments=True`` (``tfao serve
--wallet-signs-assignments``), at the RSA cost.

An outbox entry the node cannot turn into a valid message (not a table, tags over the ANS-104
limits, a spawn of a module this node does not hold, ...) is refused, as a messenger's push
would fail: the process's state and the entry stay as the process made them, nothing is delivered
for that entry, and the result lists why under ``Refused``: ``[{"Kind": "Messages" | "Spawns" |
"Assignments", "Index": n (1-based), "Error": "..."}]``. A refused spawn creates no process and
no ``Spawned`` notice is sent, so a process that spawns an unknown module sees its spawn in
``Spawns`` and a refusal, never a process that cannot run.
"""

from __future__ import annotations

import base64
import collections
import fcntl
import hashlib
import json
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from tfao.bridges.context import ProcessContext
from tfao.protocol import MODULE_FORMAT, VARIANT, ao_tags, data_or_space, is_decimal, tag_list
from tfao.sandbox.host import DEFAULT_EVAL_TIMEOUT, NOT_EVALUATED, HostConfig, HostError, Zygote
from tfao.sandbox.aos import DEFAULT_COMPUTE_LIMIT, DEFAULT_MEMORY_LIMIT, blueprint, error_result, limits_from_tags
from tfao.node.store import DamagedLog, NodeStore, ScheduledMessage
from weavedrive.ans104 import DataItem, InvalidDataItem, b64url_decode, b64url_encode, first_tag, sign_data_item
from weavedrive.store import WeaveStore
from weavedrive.wallet import Wallet, default_wallet, home_ed25519_signer

DRYRUN_BOOT_WAIT = 300.0  # seconds a dry-run waits for a new process to evaluate its spawn message
# tags the messenger rewrites when it pushes an outbox message (section 1.6 of the protocol notes)
PUSH_DROPPED_TAGS = {"Data-Protocol", "Type", "From-Process", "From-Module", "Assignments"}
# tags that say who a message is from: only this node sets them on the items it signs
FORWARDING_TAGS = {"data-protocol", "type", "from-process", "from-module", "from-signer"}
LEGACY_MU_AUTHORITY = "fcoN_xJeisVsPXA-trzVAuIiqO3ydLQxM-L4XbrQKzY"  # the public testnet messenger's wallet
REPLAY_BATCH = 500
SCHEDULER_KEY = "scheduler-ed25519.key"  # in the home: the key that signs assignments
EVAL_BATCH = 64  # the most waiting messages of one process evaluated in one fork of its host
MAX_PROCESSES = 1000  # processes on one node
# process hosts running at once: each is an OS process (~10 MiB private memory) and costs the node two
# threads and ~10 descriptors (its channel, its evaluation thread's database connections); idle ones
# are evicted and rebuilt from the log on demand
MAX_LIVE_HOSTS = 256
IDLE_HOST_SECONDS = 600.0  # a host unused this long is evicted (its state comes back from the log)
MAX_PROCESSES_PER_OWNER = 100  # processes one wallet may spawn (processes spawned by processes count in total only)
FDS_PER_HOST = 10
MAX_MEMORY_LIMIT = 4 * 1024**3  # the most Memory-Limit a process gets here, whatever its tags ask
MAX_COMPUTE_LIMIT = DEFAULT_COMPUTE_LIMIT  # the most instructions per message (AO's default)
MAX_POSITION = 2**62  # the largest nonce, timestamp or height a query may name (SQLite integers are 64-bit)
MAX_DRYRUNS = 4  # dry-runs evaluating at once; more wait up to DRYRUN_QUEUE_WAIT, then are refused
DRYRUN_QUEUE_WAIT = 5.0
DRYRUN_CACHE_BYTES = 64 * 2**20  # dry-run results kept for repeated dry-runs (their JSON text)
MONITOR = "monitor:"  # the settings key of a process's cron switch, before its id
CRON_TICK = 1.0  # seconds between checks for due cron messages
CRON_UNITS_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000,
                 "week": 604_800_000, "month": 2_592_000_000, "year": 31_536_000_000}

Tags = Sequence[tuple[str, str]]


class NodeError(Exception):
    """A request the node refuses (unknown process, bad item...); the message says why."""


class NotFound(NodeError):
    pass


class NodeBusy(NodeError):
    """The node is at one of its capacity limits right now; the request may be retried later."""


class QuotaExceeded(NodeError):
    """The sender has used its share of the node (its processes)."""


def descriptor_limit() -> int:
    """The open-file limit, after raising the soft limit to the hard one: processes and connections
    both cost descriptors, and the soft default (often 1024) is what an idle client can exhaust."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 2**20


def default_live_hosts() -> int:
    """At most MAX_LIVE_HOSTS, and no more than 3/8 of the descriptors go to hosts."""
    return max(1, min(MAX_LIVE_HOSTS, descriptor_limit() * 3 // 8 // FDS_PER_HOST))


def cron_interval_ms(value: str | None) -> int:
    """A ``Cron-Interval`` tag as aos writes it ("10-minutes", "1-hour") in milliseconds."""
    amount, _, unit = (value or "").strip().partition("-")
    unit = unit.lower().removesuffix("s")
    if not is_decimal(amount) or int(amount) == 0 or unit not in CRON_UNITS_MS:
        raise NodeError(f"Cron-Interval {value!r}: expected <count>-<unit> with unit one of {', '.join(CRON_UNITS_MS)}")
    return int(amount) * CRON_UNITS_MS[unit]


def encode_cursor(timestamp: int, nonce: int, sort: str) -> str:
    """aoconnect's cursor: standard base64 of {timestamp, ordinate, cron, sort}."""
    payload = {"timestamp": timestamp, "ordinate": str(nonce), "cron": None, "sort": sort}
    return base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_cursor(value: str) -> tuple[str, int]:
    """('nonce', n) for a cursor, ('timestamp', t) for a bare timestamp."""
    try:
        kind, number = ("timestamp", int(value)) if is_decimal(value) else (
            "nonce", int(json.loads(base64.b64decode(value))["ordinate"]))
    except (ValueError, KeyError, TypeError):
        raise NodeError(f"invalid cursor {value[:64]!r}") from None
    if not 0 <= number <= MAX_POSITION:
        raise NodeError(f"cursor {value[:64]!r} is out of range (0 to {MAX_POSITION})")
    return kind, number


class SizedCache:
    """A thread-safe LRU map of strings, bounded by their total length."""

    def __init__(self, capacity: int):
        self.capacity, self.size = capacity, 0
        self.entries: collections.OrderedDict = collections.OrderedDict()
        self.lock = threading.Lock()

    def get(self, key) -> str | None:
        with self.lock:
            value = self.entries.get(key)
            if value is not None:
                self.entries.move_to_end(key)
            return value

    def put(self, key, value: str) -> None:
        if len(value) > self.capacity:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            self.size += len(value) - (len(old) if old is not None else 0)
            self.entries[key] = value
            while self.size > self.capacity:
                _, evicted = self.entries.popitem(last=False)
                self.size -= len(evicted)


class Node:
    """A local AO node over a home folder (``home=None``: a temporary, non-durable one)."""

    def __init__(self, home: str | Path | None = None, *, wallet: Wallet | None = None, durable: bool | None = None,
                 eval_timeout: float = DEFAULT_EVAL_TIMEOUT, max_dryruns: int = MAX_DRYRUNS,
                 max_processes: int | None = None, max_processes_per_owner: int = MAX_PROCESSES_PER_OWNER,
                 max_memory_limit: int = MAX_MEMORY_LIMIT, max_compute_limit: int = MAX_COMPUTE_LIMIT,
                 wallet_signs_assignments: bool = False, max_live_hosts: int | None = None,
                 idle_host_seconds: float = IDLE_HOST_SECONDS):
        self.eval_timeout = eval_timeout
        self.idle_host_seconds = idle_host_seconds
        self.max_processes = max_processes or MAX_PROCESSES
        self.max_processes_per_owner = max_processes_per_owner
        self.max_memory_limit, self.max_compute_limit = max_memory_limit, max_compute_limit
        self.max_dryruns = max_dryruns
        self.dryrun_slots = threading.BoundedSemaphore(max_dryruns)
        self.dryrun_results = SizedCache(DRYRUN_CACHE_BYTES)  # JSON texts by (process, state, message)
        self.results_upto: dict[str, int] = {}  # per process: the last slot whose result this node has stored
        self.envs: dict[str, dict] = {}  # each running process's ao.env
        self.temporary = home is None
        self.home = Path(tempfile.mkdtemp(prefix="tfao-node-")) if home is None else Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self._lock_home()
        self.wallet = wallet or default_wallet(self.home)
        self.address = self.wallet.address
        self.assignment_signer = self.wallet if wallet_signs_assignments else home_ed25519_signer(
            self.home, SCHEDULER_KEY)
        self.weave = WeaveStore(self.home)
        try:
            self.store = NodeStore(self.home / "node.sqlite", durable=not self.temporary if durable is None else durable)
        except DamagedLog as exc:
            self.lock_file.close()
            raise NodeError(f"the node home {self.home} is damaged and the node will not start, since starting would "
                            f"lose acknowledged messages or issue their nonces again: {exc}. Restore the home from a "
                            "copy made by tfao backup; tfao check reports what else is wrong") from None
        self._restore_weave()
        self.zygote = Zygote(preload=("tfao.bridges.context",))
        self.hosts: dict = {}
        self.hosts_lock = threading.RLock()
        self.workers: dict[str, threading.Thread] = {}  # per process, its host's evaluation loop
        self.starting: dict[str, threading.Lock] = {}  # per process, held while its host starts
        self.last_used: dict[str, float] = {}  # per running host: when the node last asked for it
        self.max_live_hosts = max_live_hosts or default_live_hosts()
        self.conditions: dict[str, threading.Condition] = {}  # per process: its messages, results and batches
        self.closed_event = threading.Event()
        self.signed_push_lock = threading.Lock()
        # called with (process id, slot, result) once each result is stored
        self.result_listeners: list[Callable[[str, int, dict], None]] = []
        self.closing = False
        self.module_id = self._default_module()
        threading.Thread(target=self._cron_loop, daemon=True, name="cron").start()
        # evaluate what was acknowledged before a crash, beside the node: a long log replays meanwhile
        threading.Thread(target=self._resume, daemon=True, name="resume").start()

    def _resume(self) -> None:
        for record in self.store.processes():
            if self.closing:
                return
            if self.store.message(record["id"], self.store.evaluated_upto(record["id"]) + 1) is not None:
                try:
                    self._host(record["id"])
                except (HostError, OSError):
                    if self.closing:  # closed while it was starting
                        return
                    raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.closing = True
        self.closed_event.set()
        self._wake(*list(self.conditions))
        for host in list(self.hosts.values()):
            host.close()
        for worker in list(self.workers.values()):
            worker.join(timeout=10)
        self.zygote.close()
        self.store.close()
        self.weave.checkpoint()
        self.lock_file.close()
        if self.temporary:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> "Node":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _lock_home(self) -> None:
        """One node per home: a second one would evaluate the same messages twice."""
        self.lock_file = open(self.home / "node.lock", "w")
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NodeError(f"the node home {self.home} is in use by another tfao node "
                            "(talk to it over HTTP instead, e.g. tfao repl --url)") from None

    def _restore_weave(self) -> None:
        """Give the weave back the items the log holds but the weave lost. The weave commits without waiting
        for the disk and the log does wait, so a power cut can take the weave's last items (a suffix, in the
        order the log scheduled them) and leave them in the log."""
        lost = []
        for raw in self.store.items_newest_first():
            item = DataItem.parse(raw)
            if self.weave.has(item.id):
                break
            lost.append(item)
        for item in reversed(lost):
            self.weave.add_item(item, verified=True)  # verified when it was scheduled

    def _default_module(self) -> str:
        """The module processes use unless they name another: published once per node home."""
        module_id = self.store.setting("default-module")
        if module_id is None:
            tags = [
                ("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Module"),
                ("Module-Format", MODULE_FORMAT), ("Input-Encoding", "JSON-1"), ("Output-Encoding", "JSON-1"),
                ("Memory-Limit", "1-gb"), ("Compute-Limit", "9000000000000"), ("Extension", "WeaveDrive"),
                ("Content-Type", "text/x-lua"), ("Name", "tfao-aos"),
            ]
            module_id = self.weave.add_bytes(b"-- the bundled aos process library\n", self.wallet, tags).id
            self.weave.checkpoint()  # on disk before the log names it: the log could not give it back
            self.store.set_setting("default-module", module_id)
        return module_id

    # ------------------------------------------------------------------ messenger + scheduler
    def submit(self, item: DataItem | bytes, *, verified: bool = False) -> DataItem:
        """Verify and schedule a signed process or message; returns the item once it is on disk.
        ``verified``: the caller has just checked the item's signature itself."""
        if not isinstance(item, DataItem):
            item = DataItem.parse(item)
        if not verified and not item.verify():
            raise InvalidDataItem(f"data item {item.id}: signature does not verify")
        kind = item.tag("Type")
        if kind == "Process":
            self._create_process(item)
        elif kind == "Message":
            pid = item.target_id
            if pid is None or not self.store.has_process(pid):
                raise NotFound(f"process {pid} not found on this node")
            with self._transaction() as conn:
                if self.store.find_message(item.id, pid) is not None:
                    return item  # a resubmission: acknowledged again, scheduled once
                self._record(item)
                self._schedule(conn, pid, item)
            self._host(pid)
        else:
            raise NodeError(f"data item {item.id} has Type {kind!r}: expected Process or Message")
        return item

    def _record(self, item: DataItem) -> None:
        """Keep the signed item in the weave so the gateway serves it (GraphQL, /raw/ID): one the node
        has verified on submission or signed itself."""
        self.weave.add_item(item, verified=True)

    def _create_process(self, item: DataItem, conn=None) -> None:
        module_id = item.tag("Module")
        if module_id is None:
            raise NodeError(f"process {item.id} has no Module tag")
        if not self.weave.has(module_id) or self.weave.get(module_id).tag("Type") != "Module":
            raise NotFound(f"module {module_id} not found on this node")
        if self.store.has_process(item.id):
            return
        self._limits(item, self.weave.get(module_id))
        self._check_process_caps(item.owner_address)
        self._record(item)
        if conn is None:
            with self._transaction() as conn:
                self._register(conn, item, module_id)
        else:
            self._register(conn, item, module_id)
        self._host(item.id)

    def _limits(self, process_item: DataItem, module) -> tuple[int, int]:
        """A process's (memory, instructions per message): its tags over its module's, capped at this
        node's maximum whatever they ask for; NodeError for a limit that is no limit (0, negative, garbage)."""
        try:
            memory, compute = limits_from_tags(list(process_item.tags) + list(module.tags))
        except ValueError as exc:
            raise NodeError(f"process {process_item.id}: {exc}") from None
        return min(memory, self.max_memory_limit), min(compute, self.max_compute_limit)

    def _check_process_caps(self, owner: str) -> None:
        if self.store.process_count() >= self.max_processes:
            raise NodeBusy(f"this node runs at most {self.max_processes} processes")
        if owner != self.address and self.store.process_count(owner) >= self.max_processes_per_owner:
            raise QuotaExceeded(f"{owner} already has {self.max_processes_per_owner} processes on this node, "
                                "the most one wallet may spawn here")

    def _register(self, conn, item: DataItem, module_id: str) -> None:
        self.store.add_process(conn, item.id, item.owner_address, module_id, item.tag("Name"))
        self._schedule(conn, item.id, item)

    def _schedule(self, conn, pid: str, item: DataItem) -> ScheduledMessage:
        """Assign the next nonce with a signed assignment (section 2.9) and store both."""
        last = self.store.last_assignment(conn, pid)
        nonce = 0 if last is None else last[0] + 1
        timestamp = int(time.time() * 1000) if last is None else max(int(time.time() * 1000), last[3])
        previous = b64url_decode(pid) if last is None else b64url_decode(last[1]) + b64url_decode(last[2])
        hash_chain = b64url_encode(hashlib.sha256(previous).digest())
        # never lower than the last message's, even after a power cut took blocks from the weave
        height = self.weave.current_height() if last is None else max(self.weave.current_height(), last[4])
        assignment = sign_data_item(self.assignment_signer, b"", tags=[
            ("Process", pid), ("Epoch", "0"), ("Nonce", str(nonce)), ("Hash-Chain", hash_chain),
            ("Block-Height", f"{height:012d}"), ("Timestamp", str(timestamp)),
            ("Data-Protocol", "ao"), ("Type", "Assignment"), ("Variant", VARIANT), ("Message", item.id),
        ])
        scheduled = ScheduledMessage(pid, nonce, item.id, assignment.id, item.to_bytes(), assignment.to_bytes(),
                                     timestamp, height, hash_chain)
        self.store.add_message(conn, scheduled)
        return scheduled

    def spawn(self, *, module: str | None = None, tags=None, data: str | bytes = "", wallet: Wallet | None = None,
              name: str | None = None) -> "ProcessHandle":
        """Sign and submit a process item as aoconnect's spawn would; returns its handle."""
        user_tags = tag_list(tags)
        if name is not None:
            user_tags.append(("Name", name))
        if first_tag(user_tags, "Authority") is None:
            user_tags.append(("Authority", self.address))  # so the process trusts what this node pushes
        item = sign_data_item(wallet or self.wallet, data_or_space(data), tags=ao_tags(user_tags, data, [
            ("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Process"),
            ("Module", module or self.module_id), ("Scheduler", self.address),
        ]))
        self.submit(item, verified=True)  # signed just now
        return ProcessHandle(self, item.id)

    def message(self, process: str, *, data: str | bytes = "", tags=None, wallet: Wallet | None = None,
                anchor: bytes | None = None) -> str:
        """Sign and submit a message as aoconnect's message would; returns its id."""
        item = sign_data_item(wallet or self.wallet, data_or_space(data), target=process, anchor=anchor,
                              tags=ao_tags(tag_list(tags), data, [
                                  ("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Message")]))
        return self.submit(item, verified=True).id  # signed just now

    def push_signed_fields(self, pid: str, signer: str, tags: Tags, data: str, proof: str) -> str:
        """Schedule a message whose fields ``signer`` signed outside ANS-104 (HTTP message signatures,
        verified by the caller): this node signs the item, tagged ``From-Signer``, so the process sees
        it as forwarded by this node from ``signer``. ``proof`` names the signature: pushing the same
        one again schedules nothing and returns the first item's id."""
        self.process(pid)
        key = f"signed-push:{pid}:{proof}"
        with self.signed_push_lock:
            known = self.store.setting(key)
            if known is not None:
                return known
            tags = [(name, value) for name, value in tags if name.lower() not in FORWARDING_TAGS]
            item = sign_data_item(self.wallet, data_or_space(data), target=pid, tags=[
                *tags, ("From-Signer", signer), ("Data-Protocol", "ao"), ("Type", "Message")])
            self.submit(item, verified=True)  # signed just now
            self.store.set_setting(key, item.id)
            return item.id

    def assign(self, pid: str, message_id: str) -> str:
        """Schedule a message this node holds on another local process (aoconnect's ``assign``).

        Returns the assignment id; assigning a message to the same process again changes nothing."""
        if not self.store.has_process(pid):
            raise NotFound(f"process {pid} not found on this node")
        if not self.weave.has(message_id):
            raise NotFound(f"message {message_id} is not on this node")
        item = DataItem.parse(self.weave.raw_item_bytes(message_id))
        with self._transaction() as conn:
            scheduled = self.store.find_message(message_id, pid) or self._schedule(conn, pid, item)
        self._host(pid)
        return scheduled.assignment_id

    def monitor(self, pid: str, enabled: bool = True) -> None:
        """Start (or stop) the cron messages of a process with a ``Cron-Interval`` tag."""
        if not self.store.has_process(pid):
            raise NotFound(f"process {pid} not found on this node")
        interval = DataItem.parse(self.store.message(pid, 0).item).tag("Cron-Interval")
        if enabled:
            cron_interval_ms(interval)  # refuses a missing or malformed interval
        self.store.set_setting(f"{MONITOR}{pid}", "on" if enabled else "off")

    def _cron_loop(self) -> None:
        """Once a second, schedule the cron message of each monitored process whose interval has passed."""
        while not self.closed_event.wait(CRON_TICK):
            for pid in self.store.settings_named(MONITOR, "on"):
                self._cron_tick(pid)
            self.evict_idle(self.idle_host_seconds)

    def _cron_tick(self, pid: str) -> None:
        process_item = DataItem.parse(self.store.message(pid, 0).item)
        interval = cron_interval_ms(process_item.tag("Cron-Interval"))
        now = int(time.time() * 1000)
        last = int(self.store.setting(f"cron-last:{pid}") or self.store.message(pid, 0).timestamp)
        if now - last < interval:
            return
        tags = [(name.removeprefix("Cron-Tag-"), value) for name, value in process_item.tags
                if name.startswith("Cron-Tag-")]
        item = sign_data_item(self.wallet, b" ", target=pid, tags=tags + [
            ("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Message"), ("Cron", "true")])
        self._record(item)
        with self._transaction() as conn:
            self._schedule(conn, pid, item)
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                         (f"cron-last:{pid}", str(last + interval * ((now - last) // interval))))
        self._host(pid)

    def process(self, pid: str) -> "ProcessHandle":
        if not self.store.has_process(pid):
            raise NotFound(f"process {pid} not found on this node")
        return ProcessHandle(self, pid)

    def processes(self) -> list[dict]:
        return self.store.processes()

    # ------------------------------------------------------------------ queries (for the protocol adapters)
    def has_process(self, pid: str) -> bool:
        return self.store.has_process(pid)

    def scheduled(self, pid: str, nonce: int) -> ScheduledMessage | None:
        """The message scheduled at ``nonce`` (0: the process itself)."""
        return self.store.message(pid, nonce)

    def scheduled_count(self, pid: str) -> int:
        return self.store.message_count(pid)

    def find_scheduled(self, message_id: str, pid: str | None = None) -> ScheduledMessage | None:
        return self.store.find_message(message_id, pid)

    def scheduled_page(self, pid: str, *, from_nonce: int = 0, to_nonce: int | None = None,
                       limit: int = 100) -> list[ScheduledMessage]:
        return self.store.messages(pid, from_nonce=from_nonce, to_nonce=to_nonce, limit=limit)

    def nonce_at_timestamp(self, pid: str, timestamp: int) -> int:
        return self.store.nonce_at_timestamp(pid, timestamp)

    def block_height(self) -> int:
        return self.weave.current_height()

    def block(self, height: int) -> dict:
        return self.weave.block(height)

    def has_item(self, id: str) -> bool:
        return self.weave.has(id)

    def item(self, id: str):
        """A stored weave item (ItemNotFound if absent)."""
        return self.weave.get(id)

    def item_data(self, id: str):
        """An item's data as a verified Blob, in memory or file-backed (refuses tampered data)."""
        return self.weave.data_blob(id)

    def read_item_data(self, id: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.weave.read_data(id, offset, length)

    # ------------------------------------------------------------------ compute unit
    def _process_record(self, pid: str) -> tuple[DataItem, DataItem]:
        first = self.store.message(pid, 0)
        process_item = DataItem.parse(first.item)
        module = self.weave.get(process_item.tag("Module"))
        return process_item, module

    def _env(self, pid: str) -> dict:
        process_item, module = self._process_record(pid)
        return {
            "Process": {"Id": pid, "Owner": process_item.owner_address,
                        "Tags": _tag_objects(self._stand_in_for_legacy_mu(process_item.tags))},
            "Module": {"Id": module.id, "Owner": module.owner_address, "Tags": _tag_objects(module.tags)},
        }

    def _stand_in_for_legacy_mu(self, tags: Tags) -> list[tuple[str, str]]:
        """A process that trusts the public messenger's wallet trusts this node too, which pushes its
        messages in that messenger's place (aos's legacy spawn always names that wallet as Authority)."""
        def trusted(name: str, value: str) -> str:
            named = [authority.strip() for authority in value.split(",")]
            return f"{value},{self.address}" if name == "Authority" and LEGACY_MU_AUTHORITY in named else value

        return [(name, trusted(name, value)) for name, value in tags]

    def _host(self, pid: str):
        """The process's host, started on first use (restoring its state by replaying its log).

        At most ``max_live_hosts`` run at once: starting one more first evicts the host unused the
        longest that is idle. A process replays only when its host starts, so the log of a process
        nobody uses costs nothing."""
        with self.hosts_lock:
            host = self.hosts.get(pid)
            if host is not None:
                self.last_used[pid] = time.monotonic()
                return host
            starting = self.starting.setdefault(pid, threading.Lock())
        with starting:  # one start per process; other processes' hosts go on meanwhile
            with self.hosts_lock:
                if pid in self.hosts:
                    return self.hosts[pid]
            host = self._start(pid)
            with self.hosts_lock:
                self.hosts[pid] = host
                self.last_used[pid] = time.monotonic()
            self._evict_over_cap(keep=pid)
            return host

    def _evict_over_cap(self, keep: str) -> None:
        """Evict idle hosts, least recently used first, while more than ``max_live_hosts`` run."""
        with self.hosts_lock:
            evictable = sorted((used, pid) for pid, used in self.last_used.items() if pid != keep)
        for _, pid in evictable[:max(0, len(evictable) + 1 - self.max_live_hosts)]:
            self._evict(pid)

    def _start(self, pid: str):
        process_item, module = self._process_record(pid)
        try:
            memory, compute = self._limits(process_item, module)
        except NodeError:  # accepted before its limits were checked: it runs with the defaults
            memory, compute = min(DEFAULT_MEMORY_LIMIT, self.max_memory_limit), self.max_compute_limit
        host = self.zygote.spawn(HostConfig(
            process_id=pid, process_owner=process_item.owner_address, process_tags=list(process_item.tags),
            module_id=module.id, module_owner=module.owner_address, module_tags=list(module.tags),
            home=str(self.home), memory_limit=memory, compute_limit=compute, context_factory=ProcessContext,
            eval_timeout=self.eval_timeout,
        ))
        env = self.envs[pid] = self._env(pid)
        after = -1
        while done := self.store.successful_messages(pid, after=after, limit=REPLAY_BATCH):
            host.replay([(cu_message(m), env) for m in done])
            after = done[-1].nonce
        worker = self.workers[pid] = threading.Thread(target=self._evaluate_loop, args=(pid, host, env), daemon=True,
                                                      name=f"eval-{pid[:8]}")
        worker.start()
        return host

    def _evict(self, pid: str) -> None:
        """Stop the host of a process that is idle (nothing to evaluate, no dry-run running); its
        state comes back from the log when it is next used."""
        changed = self._condition(pid)
        with self.hosts_lock, changed:
            host = self.hosts.get(pid)
            busy = host is None or host.batch_results is not None or host.dryruns_running or \
                self.store.message(pid, self.store.evaluated_upto(pid) + 1) is not None
            if busy:
                return
            host.evicted = True
            del self.hosts[pid]
            del self.last_used[pid]
            changed.notify_all()
        host.close()
        if self.store.message(pid, self.store.evaluated_upto(pid) + 1) is not None:
            self._host(pid)  # scheduled while it was being evicted

    def evict_idle(self, idle_for: float) -> None:
        """Evict every idle host unused for ``idle_for`` seconds."""
        now = time.monotonic()
        with self.hosts_lock:
            unused = [pid for pid, used in self.last_used.items() if now - used >= idle_for]
        for pid in unused:
            self._evict(pid)

    def _condition(self, pid: str) -> threading.Condition:
        with self.hosts_lock:
            return self.conditions.setdefault(pid, threading.Condition())

    def _wake(self, *pids: str) -> None:
        for pid in pids:
            condition = self._condition(pid)
            with condition:
                condition.notify_all()

    @contextmanager
    def _transaction(self, derived: bool = False) -> Iterator:
        """A store transaction; the processes it scheduled messages for are woken once it has committed.
        ``derived``: see ``NodeStore.transaction``."""
        with self.store.transaction(derived) as conn:
            yield conn
            scheduled = set(self.store.scheduled_processes)
        self._wake(*scheduled)

    def _evaluate_loop(self, pid: str, host, env: dict) -> None:
        """Evaluate what is scheduled, in order: everything waiting at once, as one batch of the host."""
        changed = self._condition(pid)
        while True:
            with changed:
                while not (self.closing or host.evicted) and \
                        self.store.message(pid, self.store.evaluated_upto(pid) + 1) is None:
                    changed.wait()
                if self.closing or host.evicted:
                    return
                host.batch_results = 0  # results of this batch stored so far (dry-runs wait for the batch)
                host.batches += 1
            batch = self.store.messages(pid, from_nonce=self.store.evaluated_upto(pid) + 1, limit=EVAL_BATCH)
            try:
                futures, batch_done = host.evaluate([(cu_message(scheduled), env) for scheduled in batch])
            except HostError as exc:  # the host had already gone
                futures, batch_done = [_failed(exc)], None
            lost = False
            for scheduled, future in zip(batch, futures):
                try:
                    result = future.result()
                except HostError as exc:
                    if self.closing:
                        return
                    result, lost = error_result(f"the process host stopped during the evaluation: {exc}"), True
                if result is NOT_EVALUATED:
                    break
                self._store_result(pid, scheduled, result)
                with changed:
                    host.batch_results += 1
                if lost:
                    break
            try:
                if batch_done is not None and not lost:
                    batch_done.result()
            except HostError:
                lost = True
            with changed:
                host.batch_results = None
                changed.notify_all()
            if len(self.hosts) > self.max_live_hosts:  # hosts started while others were busy
                self._evict_over_cap(keep=pid)
            if (lost or host.closed) and not self.closing:
                if not host.closed:
                    host.close()  # a result went missing: the log says what the state is
                self._restart(pid)
                return

    def _store_result(self, pid: str, scheduled: ScheduledMessage, result: dict) -> None:
        # a successful evaluation is what the log recomputes; an Error may be the clock's or the machine's
        with self._transaction(derived="Error" not in result) as conn:
            refused = [] if "Error" in result else self._push_outbox(conn, pid, scheduled, result)
            if refused:
                result = dict(result, Refused=refused)
            self.store.add_result(conn, scheduled, result)
        self.results_upto[pid] = scheduled.nonce  # once committed: the cached dry-runs at this state are valid
        self._wake(pid)
        for listener in list(self.result_listeners):
            listener(pid, scheduled.nonce, result)

    def _restart(self, pid: str) -> None:
        """Rebuild a process host that went away (its state comes back from the log)."""
        with self.hosts_lock:
            self.hosts.pop(pid, None)
            self.last_used.pop(pid, None)
        self._host(pid)

    def _push_outbox(self, conn, pid: str, scheduled: ScheduledMessage, result: dict) -> list[dict]:
        """Deliver what the process sent to local processes, in the result's transaction; returns the refusals."""
        module_id = self.envs[pid]["Module"]["Id"]
        push = {"Messages": lambda out: self._push_message(conn, pid, module_id, scheduled, out),
                "Spawns": lambda spawn: self._push_spawn(conn, pid, scheduled, spawn),
                "Assignments": lambda assignment: self._push_assignment(conn, assignment)}
        refused = []
        for kind, deliver in push.items():
            for index, entry in enumerate(result.get(kind, []), start=1):
                conn.execute("SAVEPOINT outbox_entry")
                try:
                    if not isinstance(entry, dict):
                        raise NodeError(f"an outbox entry must be a table, not {_lua_type_name(entry)}")
                    deliver(entry)
                except Exception as exc:  # the entry is refused, the message's result and the process go on
                    conn.execute("ROLLBACK TO outbox_entry")
                    refused.append({"Kind": kind, "Index": index, "Error": _refusal_text(exc)})
                conn.execute("RELEASE outbox_entry")
        return refused

    def _push_message(self, conn, pid: str, module_id: str, scheduled: ScheduledMessage, out: dict) -> None:
        target = out.get("Target")
        if not target or not self.store.has_process(target):
            return  # not on this node: kept in the result for whoever relays it
        tags = [(t["name"], t["value"]) for t in out.get("Tags", []) if t["name"] not in PUSH_DROPPED_TAGS]
        tags += [("Data-Protocol", "ao"), ("Type", "Message"), ("From-Process", pid),
                 ("From-Module", module_id), ("Pushed-For", scheduled.id)]
        item = sign_data_item(self.wallet, data_or_space(out.get("Data") or ""), target=target,
                              anchor=_anchor(out.get("Anchor")), tags=tags)
        self._record(item)
        self._schedule(conn, target, item)
        self._host(target)

    def _push_spawn(self, conn, pid: str, scheduled: ScheduledMessage, spawn: dict) -> None:
        tags = [(t["name"], t["value"]) for t in spawn.get("Tags", [])]
        if first_tag(tags, "Scheduler") is None:
            tags.append(("Scheduler", self.address))
        item = sign_data_item(self.wallet, data_or_space(spawn.get("Data") or ""),
                              anchor=_anchor(spawn.get("Anchor")), tags=tags)
        self._create_process(item, conn)
        spawned = [("Data-Protocol", "ao"), ("Variant", VARIANT), ("Type", "Message"), ("Action", "Spawned"),
                   ("Process", item.id), ("From-Process", pid), ("Pushed-For", scheduled.id)]
        reference = first_tag(tags, "Reference")
        if reference is not None:
            spawned.append(("Reference", reference))
        reply = sign_data_item(self.wallet, item.id, target=pid, tags=spawned)
        self._record(reply)
        self._schedule(conn, pid, reply)

    def _push_assignment(self, conn, assignment: dict) -> None:
        message = self.store.find_message(assignment.get("Message", ""))
        if message is None:
            return
        for target in assignment.get("Processes", []):
            if self.store.has_process(target):
                self._schedule(conn, target, DataItem.parse(message.item))
                self._host(target)

    def _nonce_of(self, pid: str, message_id: str) -> ScheduledMessage:
        if not self.store.has_process(pid):
            raise NotFound(f"process {pid} not found on this node")
        scheduled = self.store.find_message(message_id, pid)
        if scheduled is None:
            raise NotFound(f"message {message_id} is not scheduled on process {pid}")
        return scheduled

    def result(self, pid: str, message_id: str, timeout: float | None = None) -> dict:
        """The result of a message, waiting until it has been evaluated."""
        return self.result_at(pid, self._nonce_of(pid, message_id).nonce, timeout)

    def slot(self, pid: str, message_id: str) -> int:
        """The slot (nonce) a message is scheduled at on a process."""
        return self._nonce_of(pid, message_id).nonce

    def current_slot(self, pid: str) -> int:
        """The last slot assigned on a process (0: only the process message)."""
        self.process(pid)
        return self.store.message_count(pid) - 1

    def result_at(self, pid: str, slot: int, timeout: float | None = None) -> dict:
        """The result at a slot, waiting until it has been evaluated."""
        if not 0 <= slot <= self.current_slot(pid):
            raise NotFound(f"slot {slot} is not scheduled on process {pid}")
        deadline = None if timeout is None else time.monotonic() + timeout
        changed = self._condition(pid)
        with changed:
            while (row := self.store.result(pid, slot)) is None:
                remaining = None if deadline is None else deadline - time.monotonic()
                if self.closing or (remaining is not None and remaining <= 0):
                    raise TimeoutError(f"slot {slot} of process {pid} has not been evaluated yet")
                changed.wait(remaining)
        return row.result

    def results(self, pid: str, *, from_: str | None = None, to: str | None = None, sort: str = "ASC",
                limit: int = 25) -> dict:
        """A page of results like the CU's ``/results``: ``from`` exclusive, ``to`` inclusive."""
        if not self.store.has_process(pid):
            raise NotFound(f"process {pid} not found on this node")
        sort = sort.upper()
        low, high = -1, 2**62
        if from_:
            low = self._bound(pid, from_)
        if to:
            high = self._bound(pid, to)
        rows = self.store.results_between(pid, low, high, descending=sort == "DESC", limit=limit + 1)
        edges = [{"cursor": encode_cursor(r.timestamp, r.nonce, sort), "node": r.result} for r in rows[:limit]]
        return {"pageInfo": {"hasNextPage": len(rows) > limit}, "edges": edges}

    def _bound(self, pid: str, value: str) -> int:
        kind, number = decode_cursor(value)
        if kind == "nonce":
            return number
        return self.store.nonce_at_timestamp(pid, number)

    def cached_dryrun(self, pid: str, message: dict) -> str | None:
        """The JSON text of ``dryrun(pid, message)`` if the same dry-run was answered against the latest
        state since this node started, else None. Reads memory only, so it never blocks."""
        visible = self.results_upto.get(pid)
        return None if visible is None else self.dryrun_results.get(_dryrun_key(pid, visible, message))

    def dryrun(self, pid: str, message: dict) -> dict:
        """Evaluate an unsigned message against the latest state; nothing is kept.

        Evaluation is deterministic, so the result of the same message against the same state is
        kept (``DRYRUN_CACHE_BYTES`` in all) and given again without evaluating; results with an
        Error are not kept, since a wall-clock limit or a crash may be behind them."""
        if not self.store.has_process(pid):
            raise NotFound(f"process {pid} not found on this node")
        if self.store.evaluated_upto(pid) < 0:
            self.result(pid, pid, timeout=DRYRUN_BOOT_WAIT)  # a process has an Owner and handlers once it has booted
        changed = self._condition(pid)
        while True:
            host = self._host(pid)
            with changed:
                if host.evicted:
                    continue
                while host.batch_results and not self.closing:  # a result of the running batch is in
                    changed.wait()                                # the state once the whole batch is
                batches, idle = host.batches, host.batch_results is None
                host.dryruns_running += 1  # so it is not evicted meanwhile
                break
        visible = self.store.evaluated_upto(pid)
        # known from the log too, after a restart; a later stored result replaces it, never the reverse
        self.results_upto.setdefault(pid, visible)
        last = self.store.message(pid, max(visible, 0))
        msg = {"Timestamp": last.timestamp, "Block-Height": last.block_height, "Cron": False, "Target": pid}
        msg.update(message)
        msg["Tags"] = _tag_objects(tag_list(msg.get("Tags")))
        owner = msg.get("Owner")
        msg["From"] = first_tag(tag_list(msg["Tags"]), "From-Process") or msg.get("From") or owner
        msg["Read-Only"] = True
        key = _dryrun_key(pid, visible, message)  # the defaults above follow from the state
        try:
            known = self.dryrun_results.get(key)
            if known is not None:
                return json.loads(known)
            if not self.dryrun_slots.acquire(timeout=DRYRUN_QUEUE_WAIT):
                raise NodeBusy(f"{self.max_dryruns} dry-runs are already running on this node; retry later")
            try:
                result = host.dryrun(msg, self.envs[pid])
            finally:
                self.dryrun_slots.release()
        finally:
            with changed:
                host.dryruns_running -= 1
        if idle and host.batches == batches and "Error" not in result:  # the state was the one after `visible`
            self.dryrun_results.put(key, json.dumps(result, separators=(",", ":"), ensure_ascii=False))
        return result


class ProcessHandle:
    """A process on a node, for tests and scripts: send, eval, dry-run and read results."""

    def __init__(self, node: Node, pid: str):
        self.node, self.id = node, pid

    def __repr__(self) -> str:
        return f"ProcessHandle({self.id})"

    def message(self, action: str | None = None, *, data: str | bytes = "", tags=None,
                wallet: Wallet | None = None) -> str:
        all_tags = ([("Action", action)] if action else []) + tag_list(tags)
        return self.node.message(self.id, data=data, tags=all_tags, wallet=wallet)

    def send(self, action: str | None = None, *, data: str | bytes = "", tags=None,
             wallet: Wallet | None = None, timeout: float | None = 60) -> dict:
        """Send a message and wait for its result."""
        return self.result(self.message(action, data=data, tags=tags, wallet=wallet), timeout=timeout)

    def eval(self, code: str, *, wallet: Wallet | None = None, timeout: float | None = 60) -> dict:
        return self.send("Eval", data=code, wallet=wallet, timeout=timeout)

    def load_blueprint(self, name: str, *, wallet: Wallet | None = None, timeout: float | None = 60) -> dict:
        """Eval a shipped blueprint (``token``, ``chat``, ``voting``...) in the process."""
        return self.eval(blueprint(name), wallet=wallet, timeout=timeout)

    def result(self, message_id: str, timeout: float | None = 60) -> dict:
        return self.node.result(self.id, message_id, timeout=timeout)

    def dryrun(self, action: str | None = None, *, data: str = "", tags=None, owner: str | None = None) -> dict:
        all_tags = ([("Action", action)] if action else []) + tag_list(tags)
        all_tags += [("Data-Protocol", "ao"), ("Type", "Message"), ("Variant", VARIANT)]
        return self.node.dryrun(self.id, {
            "Id": "1234", "Owner": owner or self.node.store.process_owner(self.id), "Anchor": "0",
            "Data": data or "1234", "Tags": _tag_objects(all_tags),
        })

    def results(self, **kwargs) -> dict:
        return self.node.results(self.id, **kwargs)


def cu_message(scheduled: ScheduledMessage) -> dict:
    """The message object the compute unit gives a process (section 1.2 of the protocol notes)."""
    item = DataItem.parse(scheduled.item)
    tags = list(item.tags)
    owner = item.owner_address
    from_process = first_tag(tags, "From-Process") or first_tag(tags, "From-Signer")
    msg = {
        "Id": item.id,
        "Signature": b64url_encode(item.signature),
        "Owner": owner,
        "From": from_process or owner,
        "Target": item.target_id or scheduled.process_id,
        "Anchor": item.anchor.decode("utf-8", "replace"),
        "Tags": _tag_objects(tags),
        "Data": item.data.decode("utf-8", "replace"),
        "Timestamp": scheduled.timestamp,
        "Block-Height": scheduled.block_height,
        "Hash-Chain": scheduled.hash_chain,
        "Cron": False,
    }
    if scheduled.nonce > 0:
        msg["Epoch"], msg["Nonce"] = 0, scheduled.nonce
    if from_process:
        msg["Forwarded-By"] = owner
    return msg


def _dryrun_key(pid: str, visible: int, message: dict) -> tuple:
    """What a dry-run's result depends on: the process, its state (the last slot evaluated) and the message."""
    return pid, visible, json.dumps(message, sort_keys=True, default=str)


def _failed(exc: Exception) -> Future:
    future: Future = Future()
    future.set_exception(exc)
    return future


def _lua_type_name(value) -> str:
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
        type(value), "nil" if value is None else "a value")


def _refusal_text(exc: Exception) -> str:
    """Why an outbox entry was refused, in words for the process's author (never a host trace)."""
    if isinstance(exc, (NodeError, InvalidDataItem)):
        return str(exc)
    if isinstance(exc, (KeyError, TypeError, AttributeError, ValueError)):
        return f"the entry is not a valid message ({type(exc).__name__}: {exc})"
    return f"the node could not deliver the entry ({type(exc).__name__})"


def _tag_objects(tags: Iterable[tuple[str, str]]) -> list[dict]:
    return [{"name": name, "value": value} for name, value in tags]


def _anchor(value) -> bytes | None:
    if not value:
        return None
    raw = str(value).encode()
    return raw if len(raw) == 32 else None
