"""``tfao serve``: a local AO node over HTTP, on one port, for aoconnect and the aos CLI unchanged.

One port answers as the messenger (MU), the scheduler (SU), the compute unit (CU) and the gateway:

=========  ===================================================================================
MU         ``POST /`` (signed data item → 202), ``POST /?process-id=&assign=`` (assignment),
           ``POST``/``DELETE /monitor/PID``
CU         ``GET /result/ID?process-id=`` (waits until evaluated), ``GET /results/PID``,
           ``POST /dry-run?process-id=[&to=ID]``, ``GET /state/PID`` (501), ``GET /``
SU         ``GET /timestamp``, ``GET /PID`` (paged messages and assignments), ``GET /processes/PID``,
           ``GET /PID/latest``
gateway    ``POST /graphql``, ``GET|HEAD /raw/ID``, ``GET|HEAD /ID``, ``GET /tx/ID``,
           ``GET /block/height/H``; data routes honour ``Range: bytes=a-b``
=========  ===================================================================================

HyperBEAM's mainnet routes (``/push``, ``/PID~process@1.0/...``, ``/~meta@1.0/info``) answer on the
same port, over the same processes: see ``tfao.http.hyperbeam``.

``GET /ID`` is both the SU's message listing and the gateway's data route. The rule: when the
query string has ``process-id`` or a paging parameter (``from``, ``to``, ``limit``, ``from-nonce``,
``to-nonce``), the scheduler answers; otherwise the weave item's data is served if the weave has it,
and the scheduler answers if it does not.

Every blocking node call runs in a worker thread, never on the event loop, so dry-runs, results and
submissions proceed in parallel. Waiting for a result holds no thread: the waiter awaits the node's
notice on the event loop, and waiters are capped in total (503) and per client address (429). Responses are JSON; errors are ``{"error": "..."}`` with a 4xx
status (5xx only for faults of the node itself, without a traceback). Every connection has
TCP_NODELAY (see ``bind``), so the header and body writes of a response leave at once.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import errno
import fcntl
import functools
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tfao.http.graphql import QueryError, run_query
from tfao.node.node import (DEFAULT_EVAL_TIMEOUT, MAX_LIVE_HOSTS, MAX_POSITION, MAX_PROCESSES, MAX_PROCESSES_PER_OWNER,
                            Node, NodeBusy, NodeError, NotFound, QuotaExceeded, descriptor_limit)
from tfao.protocol import is_decimal
from weavedrive.ans104 import DataItem, InvalidDataItem, b64url_encode, is_id
from weavedrive.store import ItemNotFound, StoredItem, read_chunks
from weavedrive.wallet import home_dir

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8734
DEFAULT_MAX_BODY = 64 * 2**20
RESULT_WAIT = 300.0  # seconds /result waits before answering "in progress", as the CU does
WORKER_THREADS = 64  # blocking node calls in flight (a waiting /result holds none)
MAX_RESULT_WAITERS = 1024  # /result (and dry-run ?to=) requests waiting at once: more get a 503
MAX_RESULT_WAITERS_PER_CLIENT = 128  # ... from one client address: more get a 429
RESULT_RECHECK = 5.0  # seconds between a waiter's checks of the log, besides the node's notices
RETRY_AFTER = 1
IDLE_TIMEOUT = 5  # seconds a connection may stay open without a request, the first one included
FD_RESERVE = 64  # descriptors kept for the node itself (stores, logs) whatever its connections do
INLINE_DATA = 2**20  # data up to this size is sent in one write; larger data is streamed
SCHEDULER_PAGE = 100
MAX_SCHEDULER_PAGE = 5000
MAX_RESULTS_PAGE = 1000
SCHEDULER_PARAMS = {"process-id", "from", "to", "limit", "from-nonce", "to-nonce"}
RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")
DRYRUN_STRING_FIELDS = ("Id", "Owner", "Target", "Anchor", "Data", "From", "Signature")

LOG_LEVELS = ("debug", "info", "warning", "error")
SERVING_RECORD = "serving.json"  # in the node home while tfao serve runs there: its URL and process id

log = logging.getLogger("tfao.http.server")
request_log = logging.getLogger("tfao.http.requests")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def now_ms() -> int:
    return int(time.time() * 1000)


# ---------------------------------------------------------------------------------------------- parameters
def checked_id(value: str, what: str = "id") -> str:
    if not is_id(value):
        raise HTTPError(400, f"{what} {value[:64]!r} is not a 43-character base64url id")
    return value


def required_process_id(request: Request) -> str:
    pid = request.query_params.get("process-id")
    if pid is None:
        raise HTTPError(400, "the process-id query parameter is required")
    return checked_id(pid, "process-id")


def int_param(request: Request, name: str, default: int | None, low: int = 0, high: int = 2**62) -> int | None:
    value = request.query_params.get(name)
    if value is None or value == "":
        return default
    if not is_decimal(value) or not low <= int(value) <= high:
        raise HTTPError(400, f"{name} must be an integer from {low} to {high}, got {value[:64]!r}")
    return int(value)


def parse_json(raw: bytes):
    try:
        return json.loads(raw, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:
        raise HTTPError(400, f"the body is not valid JSON: {str(exc)[:200]}") from None


def reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single ``bytes=`` range, None for the whole body; 416 if unsatisfiable."""
    if header is None:
        return None
    match = RANGE_PATTERN.match(header.strip())
    if match is None:
        return None  # multiple or other-unit ranges: serving the whole body is allowed
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start > end or start >= size:
        raise HTTPError(416, f"range {header} is outside the {size} bytes of data",
                        headers={"Content-Range": f"bytes */{size}"})
    return start, end


def validate_dryrun(message) -> dict:
    """The dry-run body as aoconnect posts it: a JSON object with string fields and [{name, value}] Tags."""
    if not isinstance(message, dict):
        raise HTTPError(400, "the dry-run body must be a JSON object (a message: Id, Owner, Tags, Data...)")
    for field in DRYRUN_STRING_FIELDS:
        if field in message and not isinstance(message[field], str):
            raise HTTPError(400, f"dry-run field {field} must be a string")
    tags = message.get("Tags", [])
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("value"), str) for t in tags
    ):
        raise HTTPError(400, "dry-run Tags must be a list of {name, value} objects with string values")
    for field in ("Timestamp", "Block-Height"):
        if field in message and (not isinstance(message[field], int) or isinstance(message[field], bool)):
            raise HTTPError(400, f"dry-run field {field} must be an integer")
    return message


# ---------------------------------------------------------------------------------------------- scheduler JSON
def su_item(item: DataItem, *, with_data: bool) -> dict:
    """A signed item as the SU's JSON shows it (owner key, signature and target in base64url)."""
    anchor = item.anchor.decode("utf-8", "replace") if item.anchor else None
    result = {
        "id": item.id,
        "owner": {"address": item.owner_address, "key": b64url_encode(item.owner)},
        "tags": [{"name": name, "value": value} for name, value in item.tags],
        "signature": b64url_encode(item.signature),
        "anchor": anchor,
        "target": item.target_id or "",
    }
    if with_data:
        result["data"] = item.data.decode("utf-8", "replace")
    return result


def su_message(scheduled) -> dict:
    """The SU form of a scheduled message (``Node.scheduled``) and its assignment."""
    return {
        "message": su_item(DataItem.parse(scheduled.item), with_data=True),
        "assignment": su_item(DataItem.parse(scheduled.assignment), with_data=False),
    }


# ---------------------------------------------------------------------------------------------- the app
class NodeServer:
    """The HTTP handlers over one node."""

    def __init__(self, node: Node, *, max_body: int = DEFAULT_MAX_BODY, result_wait: float = RESULT_WAIT):
        self.node = node
        self.max_body = max_body
        self.result_wait = result_wait
        self.limiter: anyio.CapacityLimiter | None = None
        # (process id, slot) -> the result, once stored: what its waiters answer, without reading it back
        self.stored_results: dict[tuple[str, int], asyncio.Future] = {}
        self.waiters: collections.Counter[str | None] = collections.Counter()  # client address -> waiting requests

    @asynccontextmanager
    async def lifespan(self, app):
        self.limiter = anyio.CapacityLimiter(WORKER_THREADS)
        loop = asyncio.get_running_loop()

        def result_stored(pid: str, slot: int, result: dict) -> None:  # on the node's evaluation thread
            loop.call_soon_threadsafe(self.result_stored, pid, slot, result)

        self.node.result_listeners.append(result_stored)
        try:
            yield
        finally:
            self.node.result_listeners.remove(result_stored)

    def result_stored(self, pid: str, slot: int, result: dict) -> None:
        stored = self.stored_results.pop((pid, slot), None)
        if stored is not None:
            stored.set_result(result)

    async def wait_for_result(self, request: Request, pid: str, message_id: str) -> dict | None:
        """The message's result once evaluated, None after ``result_wait``."""
        slot = await self.blocking(self.node.slot, pid, message_id)
        return await self.wait_for_slot(pid, slot, request.client.host if request.client else "")

    async def wait_for_slot(self, pid: str, slot: int, client: str | None = None) -> dict | None:
        """The result at a slot once evaluated, None after ``result_wait``: awaited, holding no thread.
        Waiters are capped in total and, when the client's address is given, per client."""
        if sum(self.waiters.values()) >= MAX_RESULT_WAITERS:
            raise HTTPError(503, f"{MAX_RESULT_WAITERS} requests are already waiting for results; retry later",
                            headers={"Retry-After": str(RETRY_AFTER)})
        if client is not None and self.waiters[client] >= MAX_RESULT_WAITERS_PER_CLIENT:
            raise HTTPError(429, f"this client already has {MAX_RESULT_WAITERS_PER_CLIENT} requests waiting "
                                 "for results; retry later", headers={"Retry-After": str(RETRY_AFTER)})
        self.waiters[client] += 1
        deadline = time.monotonic() + self.result_wait
        try:
            while True:
                # before the check, so no notice is missed; one per slot, so a result wakes only its waiters
                stored = self.stored_results.get((pid, slot))
                if stored is None:
                    stored = self.stored_results[pid, slot] = asyncio.get_running_loop().create_future()
                try:
                    return await self.blocking(self.node.result_at, pid, slot, timeout=0)
                except TimeoutError:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                try:  # shielded: one waiter's timeout leaves the others' future alone
                    return await asyncio.wait_for(asyncio.shield(stored), min(remaining, RESULT_RECHECK))
                except asyncio.TimeoutError:
                    pass
        finally:
            self.waiters[client] -= 1
            if not self.waiters[client]:
                del self.waiters[client]

    async def blocking(self, function, *args, **kwargs):
        """Run a blocking node call in a worker thread."""
        return await anyio.to_thread.run_sync(functools.partial(function, *args, **kwargs), limiter=self.limiter)

    async def body(self, request: Request) -> bytes:
        """The request body, read incrementally and refused with 413 once it passes the limit."""
        declared = request.headers.get("content-length", "")
        if is_decimal(declared) and int(declared) > self.max_body:
            raise HTTPError(413, f"the body ({declared} bytes) is larger than this node accepts ({self.max_body})")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise HTTPError(413, f"the body is larger than this node accepts ({self.max_body} bytes)")
            chunks.append(chunk)
        return b"".join(chunks)

    async def known_process(self, pid: str) -> str:
        if not await self.blocking(self.node.has_process, pid):
            raise HTTPError(404, f"process {pid} not found on this node")
        return pid

    # ---------------------------------------------------------------- messenger
    async def post_root(self, request: Request) -> Response:
        if "assign" in request.query_params or "process-id" in request.query_params:
            pid = required_process_id(request)
            message_id = checked_id(request.query_params.get("assign", ""), "assign")
            assignment = await self.blocking(self.node.assign, pid, message_id)
            return JSONResponse({"message": "Processing Assignment", "id": assignment}, status_code=202)
        raw = await self.body(request)
        if not raw:
            raise HTTPError(400, "empty body: expected a signed ANS-104 data item")
        item = await self.blocking(self.node.submit, raw)
        return JSONResponse({"message": "Processing DataItem", "id": item.id}, status_code=202)

    async def monitor(self, request: Request) -> Response:
        """Cron subscription (aoconnect's monitor/unmonitor): verified, recorded per process."""
        pid = checked_id(request.path_params["pid"], "process id")
        item = DataItem.parse(await self.body(request))
        if not await self.blocking(item.verify):
            raise InvalidDataItem(f"data item {item.id}: signature does not verify")
        if item.target_id != pid:
            raise HTTPError(400, f"the monitor item targets {item.target_id}, not {pid}")
        await self.known_process(pid)
        enabled = request.method == "POST"
        await self.blocking(self.node.monitor, pid, enabled)
        return JSONResponse({"ok": True, "id": item.id, "monitored": enabled})

    # ---------------------------------------------------------------- compute unit
    async def info(self, request: Request) -> Response:
        return JSONResponse({"address": self.node.address, "timestamp": now_ms()})

    async def result(self, request: Request) -> Response:
        message_id = checked_id(request.path_params["id"], "message id")
        pid = required_process_id(request)
        result = await self.wait_for_result(request, pid, message_id)
        if result is None:
            return JSONResponse(
                {"message": f'Evaluation of process "{pid}" to "{message_id}" is in progress.'}, status_code=202)
        return JSONResponse(result)

    async def results(self, request: Request) -> Response:
        pid = checked_id(request.path_params["pid"], "process id")
        sort = request.query_params.get("sort", "ASC").upper()
        if sort not in ("ASC", "DESC"):
            raise HTTPError(400, f"sort must be ASC or DESC, got {sort[:16]!r}")
        limit = int_param(request, "limit", 25, 1, MAX_RESULTS_PAGE)
        page = await self.blocking(self.node.results, pid, from_=request.query_params.get("from") or None,
                                   to=request.query_params.get("to") or None, sort=sort, limit=limit)
        return JSONResponse(page)

    async def dry_run(self, request: Request) -> Response:
        pid = required_process_id(request)
        message = validate_dryrun(parse_json(await self.body(request)))
        to = request.query_params.get("to")
        if to:
            # the state must include that message: wait until it has been evaluated
            if await self.wait_for_result(request, pid, checked_id(to, "to")) is None:
                raise TimeoutError(f"message {to} has not been evaluated yet")
        known = self.node.cached_dryrun(pid, message)  # answered on the event loop, without a worker thread
        if known is not None:
            return Response(known, media_type="application/json")
        return JSONResponse(await self.blocking(self.node.dryrun, pid, message))

    async def state(self, request: Request) -> Response:
        await self.known_process(checked_id(request.path_params["pid"], "process id"))
        return error_response(501, "this node keeps process state in a Lua VM, not a wasm memory: "
                                   "there is no memory snapshot to serve (use dry-run to read state)")

    # ---------------------------------------------------------------- scheduler
    async def timestamp(self, request: Request) -> Response:
        height = await self.blocking(self.node.block_height)
        return JSONResponse({"timestamp": now_ms(), "block_height": f"{height:012d}"})

    async def process_info(self, request: Request) -> Response:
        pid = await self.known_process(checked_id(request.path_params["pid"], "process id"))
        first = await self.blocking(self.node.scheduled, pid, 0)
        item = DataItem.parse(first.item)
        body = su_item(item, with_data=True)
        body = {"process_id": body.pop("id"), "block": f"{first.block_height:012d}", **body,
                "timestamp": first.timestamp, "target": item.target_id}
        return JSONResponse(body)

    async def latest(self, request: Request) -> Response:
        pid = await self.known_process(checked_id(request.path_params["pid"], "process id"))
        count = await self.blocking(self.node.scheduled_count, pid)
        return JSONResponse(su_message(await self.blocking(self.node.scheduled, pid, count - 1)))

    def scheduled(self, request: Request, id: str) -> dict:
        """The SU's answer for ``GET /ID``: a process's page of messages, or one scheduled message."""
        if self.node.has_process(id):
            return self.scheduler_page(request, id)
        pid = request.query_params.get("process-id")
        found = self.node.find_scheduled(id, checked_id(pid, "process-id") if pid else None)
        if found is None:
            raise HTTPError(404, f"{id} is neither a process nor a message scheduled on this node")
        return su_message(found)

    def scheduler_page(self, request: Request, pid: str) -> dict:
        """Messages with their assignments in nonce order; the cursor is the nonce (the SU's nonce mode)."""
        node = self.node
        limit = int_param(request, "limit", SCHEDULER_PAGE, 1, MAX_SCHEDULER_PAGE)
        low = int_param(request, "from-nonce", 0)
        high = int_param(request, "to-nonce", 2**62)
        after = int_param(request, "from", None)  # timestamps: from exclusive, to inclusive
        if after is not None:
            low = max(low, node.nonce_at_timestamp(pid, after) + 1)
        until = int_param(request, "to", None)
        if until is not None:
            high = min(high, node.nonce_at_timestamp(pid, until))
        rows = node.scheduled_page(pid, from_nonce=low, to_nonce=high, limit=limit + 1) if low <= high else []
        return {
            "page_info": {"has_next_page": len(rows) > limit},
            "edges": [{"cursor": str(row.nonce), "node": su_message(row)} for row in rows[:limit]],
        }

    # ---------------------------------------------------------------- gateway
    async def graphql(self, request: Request) -> Response:
        body = parse_json(await self.body(request))
        try:
            return JSONResponse(await self.blocking(run_query, self.node.weave, body))
        except QueryError as exc:
            return JSONResponse({"error": str(exc), "errors": [{"message": str(exc)}]}, status_code=400)

    async def raw(self, request: Request) -> Response:
        return await self.data(request, checked_id(request.path_params["id"]))

    async def tx(self, request: Request) -> Response:
        item = await self.blocking(self.node.item, checked_id(request.path_params["id"]))
        return JSONResponse(item.tx_json())

    async def block(self, request: Request) -> Response:
        height = request.path_params["height"]
        if not is_decimal(height) or int(height) > MAX_POSITION:
            raise HTTPError(400, f"block height must be an integer from 0 to {MAX_POSITION}, got {height[:32]!r}")
        return JSONResponse(await self.blocking(self.node.block, int(height)))

    async def by_id(self, request: Request) -> Response:
        """``GET /ID``: the scheduler or the gateway, by the rule in the module docstring."""
        id = checked_id(request.path_params["id"])
        wants_scheduler = not SCHEDULER_PARAMS.isdisjoint(request.query_params.keys())
        if not wants_scheduler and await self.blocking(self.node.has_item, id):
            return await self.data(request, id)
        if request.method == "HEAD":
            raise HTTPError(404, f"item {id} is not in the local weave")
        return JSONResponse(await self.blocking(self.scheduled, request, id))

    async def data(self, request: Request, id: str) -> Response:
        """An item's data bytes with its Content-Type tag; single byte ranges are honoured."""
        item: StoredItem = await self.blocking(self.node.item, id)
        blob = await self.blocking(self.node.item_data, id)  # refuses tampered files
        span = byte_range(request.headers.get("range"), item.size)
        start, end = span if span else (0, item.size - 1)
        length = end - start + 1
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(length)}
        if span:
            headers["Content-Range"] = f"bytes {start}-{end}/{item.size}"
        status = 206 if span else 200
        media_type = item.tag("Content-Type") or "application/octet-stream"
        if request.method == "HEAD":
            return Response(b"", status_code=status, headers=headers, media_type=media_type)
        if length <= INLINE_DATA:  # the weave's small data is in memory: it never streams
            content = await self.blocking(blob.read_range, start, length)  # checked by item_data already
            return Response(content, status_code=status, headers=headers, media_type=media_type)
        return StreamingResponse(read_chunks(blob.path, start, length), status_code=status, headers=headers,
                                 media_type=media_type)


def exception_handlers() -> dict:
    """Each refusal as ``{"error": ...}`` with its status; unexpected faults logged, never shown."""

    def refused(status: int, prefix: str = ""):
        async def handler(request, exc: Exception):
            return error_response(status, prefix + str(exc))
        return handler

    async def http_error(request, exc: HTTPError):
        return error_response(exc.status, exc.message, exc.headers)

    async def starlette_error(request, exc: HTTPException):
        return error_response(exc.status_code, exc.detail, getattr(exc, "headers", None))

    async def busy(request, exc: NodeBusy):
        return error_response(503, str(exc), {"Retry-After": str(RETRY_AFTER)})

    async def fault(request, exc: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the node keeps serving")

    return {
        HTTPError: http_error,
        HTTPException: starlette_error,
        InvalidDataItem: refused(400, "invalid ANS-104 data item: "),
        NotFound: refused(404),
        NodeBusy: busy,
        QuotaExceeded: refused(429),
        ItemNotFound: refused(404),
        NodeError: refused(400),
        TimeoutError: refused(504),
        Exception: fault,
    }


def create_app(node: Node, *, max_body: int = DEFAULT_MAX_BODY, result_wait: float = RESULT_WAIT) -> Starlette:
    """The ASGI app serving ``node`` (see the module docstring for the routes)."""
    from tfao.http.hyperbeam import MainnetAPI  # it builds on this module's handlers

    server = NodeServer(node, max_body=max_body, result_wait=result_wait)
    mainnet_first, mainnet_last = MainnetAPI(server).routes()
    routes = [
        *mainnet_first,
        Route("/", server.info, methods=["GET"]),
        Route("/", server.post_root, methods=["POST"]),
        Route("/timestamp", server.timestamp, methods=["GET"]),
        Route("/graphql", server.graphql, methods=["POST"]),
        Route("/dry-run", server.dry_run, methods=["POST"]),
        Route("/result/{id}", server.result, methods=["GET"]),
        Route("/results/{pid}", server.results, methods=["GET"]),
        Route("/state/{pid}", server.state, methods=["GET"]),
        Route("/monitor/{pid}", server.monitor, methods=["POST", "DELETE"]),
        Route("/processes/{pid}", server.process_info, methods=["GET"]),
        Route("/raw/{id}", server.raw, methods=["GET", "HEAD"]),
        Route("/tx/{id}", server.tx, methods=["GET"]),
        Route("/block/height/{height}", server.block, methods=["GET"]),
        Route("/{pid}/latest", server.latest, methods=["GET"]),
        Route("/{id}", server.by_id, methods=["GET", "HEAD"]),
        *mainnet_last,
    ]
    app = Starlette(routes=routes, exception_handlers=exception_handlers(), lifespan=server.lifespan)
    app.state.node_server = server
    return app


class RequestLog:
    """ASGI middleware: one INFO line per request with its method, path, status and duration."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), "-"

        async def send_noting_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            request_log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status,
                             (time.perf_counter() - started) * 1000)


class PortInUse(OSError):
    """The address to serve on is taken."""


def bind(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> socket.socket:
    """A listening socket (port 0: any free port).

    Made with proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets that say
    they are TCP, and without it Nagle and delayed ACKs add ~40 ms to every response.
    """
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                             socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"{host}:{port} is already in use (another tfao serve?): stop what listens there,"
                            " or choose another port with --port (0: any free port)") from None
        raise
    listener.listen(socket.SOMAXCONN)
    return listener


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 connection (httptools' C parser: a request costs a fraction of the pure-Python
    h11's time) with more bounds, so idle or slow clients cannot use up descriptors: one that sends
    nothing is closed after the keep-alive timeout (uvicorn starts that clock only after a first
    response), so is one whose request head is not complete by then however slowly it trickles in, and
    one past ``max_connections`` is closed as soon as it is accepted."""

    max_connections = 1024
    head_deadline: float | None = None  # when the request head being received must be complete

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            transport.abort()
            return
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # stops the idle clock
        if self.cycle is not None and not self.cycle.response_complete:
            self.head_deadline = None  # a request is being served
            return
        if self.head_deadline is None:
            self.head_deadline = self.loop.time() + self.timeout_keep_alive
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_at(self.head_deadline, self.timeout_keep_alive_handler)


def connection_cap() -> int:
    """Connections to accept at once: a quarter of the descriptors (the node's process cap takes 3/8,
    its stores and logs the rest)."""
    return max(8, (descriptor_limit() - FD_RESERVE) // 4)


def uvicorn_server(node: Node, *, max_body: int = DEFAULT_MAX_BODY) -> uvicorn.Server:
    app = create_app(node, max_body=max_body)
    if request_log.isEnabledFor(logging.INFO):
        app = RequestLog(app)
    protocol = type("NodeHttpProtocol", (BoundedHttpProtocol,), {"max_connections": connection_cap()})
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                            http=protocol, loop="uvloop", timeout_keep_alive=IDLE_TIMEOUT,
                            proxy_headers=False)  # no proxy in front: X-Forwarded-For must not name the client
    return uvicorn.Server(config)


def serve(node: Node, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, max_body: int = DEFAULT_MAX_BODY,
          ready=None) -> None:
    """Serve ``node`` until interrupted; ``ready(url)`` is called once the port listens (port 0: any free)."""
    listener = bind(host, port)
    if ready is not None:
        ready(f"http://{host}:{listener.getsockname()[1]}")
    uvicorn_server(node, max_body=max_body).run(sockets=[listener])


def register(subparsers) -> None:
    """Add ``tfao serve`` to the CLI's subcommands (the handler is ``args.func(args)``)."""
    about = "run a local AO node over HTTP (messenger, scheduler, compute unit and gateway on one port)"
    parser = subparsers.add_parser("serve", help=about, description=about)
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to bind (default {DEFAULT_HOST}; anything else only when given here)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free)")
    # SUPPRESS: a --home given before the command is not overwritten by this one's default
    parser.add_argument("--home", type=Path, default=argparse.SUPPRESS,
                        help="node home folder (default $TFAO_HOME or ~/.tfao)")
    parser.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY,
                        help=f"largest request body accepted, in bytes (default {DEFAULT_MAX_BODY})")
    parser.add_argument("--eval-timeout", type=float, default=DEFAULT_EVAL_TIMEOUT, metavar="SECONDS",
                        help=f"wall-clock limit of one message or dry-run (default {DEFAULT_EVAL_TIMEOUT:g})")
    parser.add_argument("--max-processes", type=int, default=None,
                        help=f"processes this node holds at most (default {MAX_PROCESSES})")
    parser.add_argument("--max-live-hosts", type=int, default=None,
                        help=f"process hosts running at once; idle ones are evicted and rebuilt from the log when"
                             f" used (default {MAX_LIVE_HOSTS}, fewer if descriptors are short)")
    parser.add_argument("--max-processes-per-owner", type=int, default=MAX_PROCESSES_PER_OWNER,
                        help=f"processes one wallet may spawn (default {MAX_PROCESSES_PER_OWNER})")
    parser.add_argument("--wallet-signs-assignments", action="store_true",
                        help="sign assignments with the node's RSA wallet, for clients that require the process's"
                             " Scheduler to sign them (default: the node's Ed25519 scheduler key, ~100x cheaper)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="warning",
                        help="what to log on stderr: info logs every request (method, path, status, duration)"
                             " (default warning)")
    parser.set_defaults(handler=run_serve)


def run_serve(args) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    limits = {"eval_timeout": args.eval_timeout, "max_processes": args.max_processes,
              "max_live_hosts": args.max_live_hosts,
              "max_processes_per_owner": args.max_processes_per_owner,
              "wallet_signs_assignments": args.wallet_signs_assignments}
    with open_home(getattr(args, "home", None) or home_dir(), **limits) as node:
        record = node.home / SERVING_RECORD

        def announce(url: str) -> None:
            record.write_text(json.dumps({"url": url, "pid": os.getpid()}))
            print(f"tfao node {node.address} listening on {url} (module {node.module_id}, home {node.home})",
                  flush=True)

        try:
            serve(node, args.host, args.port, max_body=args.max_body, ready=announce)
        finally:
            record.unlink(missing_ok=True)
    return 0


def open_home(home: Path, **limits) -> Node:
    """The home's node, or an error that says who holds the home and what to do instead."""
    try:
        return Node(home, **limits)
    except NodeError:
        if not home_in_use(home):
            raise
        if url := served_url(home):
            raise NodeError(f"the node home {home} is in use by tfao serve at {url}:"
                            f" talk to it with --url {url}") from None
        raise NodeError(f"the node home {home} is in use by another tfao command (a repl, eval or demo): wait"
                        " for it to end, or give another --home") from None


def home_in_use(home: Path) -> bool:
    """Whether a node holds the home (it keeps an exclusive lock on node.lock while it is open)."""
    with open(Path(home) / "node.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        return False  # closing the file releases the lock


def served_url(home: Path) -> str | None:
    """The URL of the tfao serve running on ``home``, if one is."""
    try:
        record = json.loads((Path(home) / SERVING_RECORD).read_text())
        # uvicorn re-raises SIGTERM once it has shut down, so a stopped server may leave its record behind
        os.kill(record["pid"], 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record["url"]


def drain(stream) -> None:
    for _ in stream:
        pass


class ServerProcess:
    """``tfao serve`` in a child process, for tests and benchmarks: ``url``, ``address``, ``module_id``.

    ``stop()`` ends it with SIGTERM (graceful), ``kill()`` with SIGKILL (a crash).
    """

    ANNOUNCE = re.compile(r"^tfao node (\S+) listening on (\S+) \(module (\S+),")

    def __init__(self, home: str | Path, *, max_body: int | None = None, startup_timeout: float = 60):
        command = [sys.executable, "-m", "tfao.cli", "serve", "--port", "0", "--home", str(home)]
        if max_body is not None:
            command += ["--max-body", str(max_body)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([self.process.stdout], [], [], startup_timeout)
        match = self.ANNOUNCE.match(self.process.stdout.readline()) if ready else None
        if match is None:
            self.kill()
            raise RuntimeError(f"tfao serve did not start within {startup_timeout} s (exit code {self.process.poll()})")
        self.address, self.url, self.module_id = match.groups()
        # keep the pipe drained: a full pipe would block the node (and its process hosts) on their next print
        threading.Thread(target=drain, args=(self.process.stdout,), daemon=True).start()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
