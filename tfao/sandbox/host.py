"""Process hosts: each AO process lives in its own OS process, and every evaluation runs in a fork.

Why fork: a compute unit must roll back a message that ends in ``Error`` and must answer dry-runs
against the latest state without changing it. A fork is an exact copy-on-write snapshot of the
whole Lua VM (coroutines, closures, loaded models), so:

* messages are evaluated in a child of the *holder* (the process that holds the committed state).
  On success the child becomes the new holder and the old one exits; on ``Error``, a crash, a
  memory bomb or a compute-limit overrun the child is dropped and the holder is untouched;
* a dry-run is evaluated in a throw-away child, so it never waits for a running message.

A fork costs milliseconds (it copies the page tables, the child's first writes copy pages, and the
old holder's exit frees them), far more than a small handler. So the holder forks the child for the
next evaluation while it is idle, a *spare* that waits for its batch, and the messages waiting for
a process are evaluated as a *batch* in one child, one after another, each under its own limits.
When message k of a batch fails, the child reports k's Error and exits; the messages before k are
replayed, without their results, in a fresh child that takes over, and the messages after k are
answered ``NOT_EVALUATED`` so that the node sends them again. The state is then exactly what one
child per message would have left, because evaluation is deterministic. A batch takes no new
message once it has run for ``BATCH_SLICE``: the rest are answered ``NOT_EVALUATED`` too, so a slow
message delays the results of no more than itself. The last answer of every batch comes from
whoever holds the state once it is over.

Every child has a wall-clock limit (``HostConfig.eval_timeout``): a real alarm whose default
action kills the child wherever it is (a Lua pattern, a finalizer, Python behind a bridge), so a
runaway evaluation ends in an ``Error`` and the holder goes on. The instruction budget
(``Compute-Limit``) stays the deterministic limit; the clock is the node's, as on a real CU, and
the child disarms it before it reports, so a result is never half-sent.

Holders are forked from a small single-threaded *zygote* (a clean Python that has imported the
runtime once), never from the multi-threaded node. The zygote is a child subreaper, so holders
whose parent exited are reaped by it. All writers to a holder's channel (holder, evaluating
child, dry-run children) serialise their frames with one lock.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Callable

from tfao.heap import keep_freed_memory, release_freed_memory
from tfao.sandbox.aos import error_result

PR_SET_CHILD_SUBREAPER = 36
log = logging.getLogger(__name__)
DEFAULT_EVAL_TIMEOUT = 30.0  # seconds a message or dry-run may run before it ends in an Error
# how long the node waits past the timeout for a dry-run's answer (its child may have been killed)
DRYRUN_GRACE = 5.0
MAX_RESULT_BYTES = 16 * 2**20  # one message's result (pickled) at most
NOT_EVALUATED = None  # the answer for a batch's messages it did not reach (a failure, or the slice): send them again
# a batch takes no new message after this long, so one slow message holds back no more than itself
BATCH_SLICE = 0.05
# the answer for a message whose child died after reporting success, in case its result never came
RESULT_LOST = "the process host lost the result of this message"


@dataclass
class HostConfig:
    """What a holder needs to build its process: limits and the context of its bridges.

    ``context_factory(config)`` builds the host side of the bridged modules (``bridges()``,
    ``lua_sources()``, ``set_message(msg)``); the node passes it, so the sandbox knows no model code.
    """

    process_id: str
    process_owner: str
    process_tags: list[tuple[str, str]]
    module_id: str
    module_owner: str
    module_tags: list[tuple[str, str]]
    home: str
    memory_limit: int
    compute_limit: int
    eval_timeout: float = DEFAULT_EVAL_TIMEOUT
    context_factory: Callable | None = None
    options: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------- node side


class Zygote:
    """A clean process that forks holders on request; owned by one node. It imports ``preload`` (module
    names) once, so every holder starts warm."""

    def __init__(self, preload: tuple[str, ...] = ()):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, TZ="UTC")
        modules = ("tfao.sandbox.aos", *preload)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"import tfao.sandbox.host; tfao.sandbox.host.zygote_main({theirs.fileno()}, {modules!r})"],
            pass_fds=[theirs.fileno()],
            env=env,
            start_new_session=True,
        )
        theirs.close()
        self.control = ours
        self.lock = threading.Lock()

    def spawn(self, config: HostConfig) -> "ProcessHost":
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        payload = pickle.dumps(config)
        with self.lock:
            socket.send_fds(self.control, [struct.pack("!I", len(payload))], [theirs.fileno()])
            self.control.sendall(payload)
        theirs.close()
        return ProcessHost(Connection(ours.detach()), config.eval_timeout)

    def close(self) -> None:
        try:
            self.control.close()
        finally:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class HostError(RuntimeError):
    """The holder went away (the node is closing, or the host crashed)."""


class ProcessHost:
    """The node's handle on one holder: evaluate (one at a time), dry-run and replay (any time)."""

    def __init__(self, conn: Connection, eval_timeout: float = DEFAULT_EVAL_TIMEOUT):
        self.conn = conn
        self.eval_timeout = eval_timeout
        self.send_lock = threading.Lock()
        self.pending: dict[int, Future] = {}
        self.ids = itertools.count(1)
        self.closed = False
        self.batch_results: int | None = None  # the node's count of stored results of the batch running
        self.batches = 0  # batches begun, so the node can tell that none ran meanwhile
        self.dryruns_running = 0  # the node's dry-runs on this host now
        self.evicted = False  # the node stopped this host (idle); a new one replays the log
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _request(self, kind: str, *args, answers: int = 1) -> Future | list[Future]:
        """Send a request; its future, or ``answers`` futures when it is answered more than once."""
        futures = [Future() for _ in range(answers)]
        with self.send_lock:
            if self.closed:
                raise HostError("process host is closed")
            rids = [next(self.ids) for _ in futures]
            self.pending.update(zip(rids, futures))
            self.conn.send((kind, rids if answers > 1 else rids[0], *args))
        return futures if answers > 1 else futures[0]

    def _read(self) -> None:
        try:
            while True:
                rid, ok, value = self.conn.recv()
                future = self.pending.pop(rid, None)
                if future is None:
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(HostError(value))
        except (EOFError, OSError):
            pass
        self.closed = True
        for future in list(self.pending.values()):
            future.set_exception(HostError("process host exited"))
        self.pending.clear()

    def evaluate(self, batch: list[tuple[dict, dict]]) -> tuple[list[Future], Future]:
        """Evaluate scheduled messages in order, each committed unless its result has an Error.

        Returns a future per message (its result, or ``NOT_EVALUATED`` after a failure earlier in
        the batch) and one that is done when the state the host serves includes the whole batch."""
        *results, done = self._request("eval", batch, answers=len(batch) + 1)
        return results, done

    def dryrun(self, msg: dict, env: dict) -> dict:
        """Evaluate against the latest state; an Error if no answer comes in time (its child was killed)."""
        future = self._request("dryrun", msg, env)
        try:
            return future.result(self.eval_timeout + DRYRUN_GRACE)
        except TimeoutError:
            return timed_out_result(self.eval_timeout)

    def replay(self, messages: list[tuple[dict, dict]]) -> int:
        """Re-apply messages known to have succeeded (restart); returns how many diverged."""
        return self._request("replay", messages).result()

    def close(self) -> None:
        """Shut the channel down (the holder exits on EOF) and wait for the reader to finish."""
        with self.send_lock:
            self.closed = True
            with socket.socket(fileno=os.dup(self.conn.fileno())) as channel:
                channel.shutdown(socket.SHUT_RDWR)
        self.reader.join(timeout=10)
        self.conn.close()


# ------------------------------------------------------------------------------------- zygote side


def zygote_main(control_fd: int, preload: tuple[str, ...] = ()) -> None:
    import importlib
    import time

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    time.tzset()
    keep_freed_memory()  # inherited by every holder and child: a model's temporaries reuse freed pages
    for module in preload:  # import the runtime once so every holder starts warm
        importlib.import_module(module)

    control = socket.socket(fileno=control_fd)
    while True:
        ready, _, _ = select.select([control], [], [], 1.0)
        _reap()
        if not ready:
            continue
        try:
            header, fds, _, _ = socket.recv_fds(control, 4, 1)
        except OSError:
            header = b""
        if not header:
            break
        (length,) = struct.unpack("!I", header)
        payload = _recv_exactly(control, length)
        config = pickle.loads(payload)
        if os.fork() == 0:
            control.close()
            _run_holder(fds[0], config)
        os.close(fds[0])
    os.killpg(0, signal.SIGKILL)


def _recv_exactly(sock: socket.socket, length: int) -> bytes:
    chunks, remaining = [], length
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise EOFError("control socket closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ------------------------------------------------------------------------------------- holder side


@dataclass
class _Spare:
    """A child forked from an idle holder, an exact copy of its state, that waits for the next batch: the
    holder hands the batch over instead of forking then, so the fork is off the batch's path."""

    pid: int
    work_w: int  # the batch, pickled, then EOF (EOF alone: not needed, exit)
    status_r: int  # a status byte per message (see ``evaluate_in_child``)
    handover_w: int

    def give(self, work: bytes) -> bool:
        """Hand the batch over (the work end is closed either way); False if the spare had died."""
        pipe, self.work_w = os.fdopen(self.work_w, "wb"), -1
        try:
            with pipe:
                pipe.write(work)
            return True
        except BrokenPipeError:
            return False

    def close_ends(self) -> None:
        """Close the holder's ends (in the holder when the spare is dropped, or in another child of it)."""
        for fd in (self.work_w, self.status_r, self.handover_w):
            if fd >= 0:
                os.close(fd)


class _Holder:
    """Holds the committed state of one process and forks a child for every evaluation."""

    def __init__(self, conn: Connection, config: HostConfig):
        from tfao.sandbox.aos import AosProcess

        self.conn = conn
        self.eval_timeout = config.eval_timeout
        self.write_lock = multiprocessing.Lock()
        self.dryruns: dict[int, tuple[int, int]] = {}  # pidfd -> (child pid, request id), until it exits
        self.spare: _Spare | None = None
        self.context = config.context_factory(config) if config.context_factory is not None else None
        self.process = AosProcess(
            memory_limit=config.memory_limit,
            compute_limit=config.compute_limit,
            bridges=self.context.bridges() if self.context is not None else None,
            bridge_sources=self.context.lua_sources() if self.context is not None else None,
        )

    def receive(self) -> tuple:
        try:
            return self.conn.recv()
        except (EOFError, OSError):  # the node is gone
            os._exit(0)

    def reply(self, rid: int, ok: bool, value) -> None:
        with self.write_lock:
            self.conn.send((rid, ok, value))

    def evaluate(self, msg: dict, env: dict) -> dict:
        if self.context is not None:
            self.context.set_message(msg)
        return self.process.handle(msg, env)

    def wait(self, *fds: int) -> list:
        """Block until the channel or one of ``fds`` is ready, answering for dry-run children that died."""
        while True:
            ready, _, _ = select.select([self.conn, *fds, *self.dryruns], [], [])
            exited = [fd for fd in ready if fd in self.dryruns]
            for pidfd in exited:
                self.finish_dryrun(pidfd)
            if len(ready) > len(exited):
                return [fd for fd in ready if fd not in exited]

    def finish_dryrun(self, pidfd: int) -> None:
        pid, rid = self.dryruns.pop(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):  # killed before it could answer
            self.reply(rid, True, self.death_result(status))

    def death_result(self, status: int) -> dict:
        if os.WTERMSIG(status) == signal.SIGALRM:
            return timed_out_result(self.eval_timeout)
        return error_result("evaluation crashed (the process host was killed or ran out of memory)")

    def serve(self) -> None:
        while True:
            if self.spare is None:
                release_freed_memory()  # idle: give back what the batch freed before the spare shares the heap
                if self.fork_spare():
                    continue  # in the spare, which holds the state now: it forks a spare of its own
            self.wait()
            kind, rid, *args = self.receive()
            if kind == "eval":
                self.fork_eval(rid, *args)  # rid: one per message, then the batch's own
            elif kind == "dryrun":
                self.fork_dryrun(rid, *args)
            elif kind == "replay":
                self.drop_spare()  # the state changes here
                diverged = sum("Error" in self.evaluate(msg, env) for msg, env in args[0])
                self.reply(rid, True, diverged)

    def evaluate_bounded(self, msg: dict, env: dict) -> dict:
        """Evaluate in a child under the wall-clock limit, disarmed before the result is reported."""
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, self.eval_timeout)
        try:
            result = self.evaluate(msg, env)
        except BaseException:  # a host bug: a fixed error for the message (details in the log), keep the holder
            log.exception("evaluating message %s failed", msg.get("Id"))
            result = error_result("evaluation failed in the host (the node's log has the details)")
        signal.setitimer(signal.ITIMER_REAL, 0)
        size = len(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        if size > MAX_RESULT_BYTES:  # an Error, so the child that holds it exits and its memory goes
            return error_result(f"the message's result is {size} bytes, more than this node's limit of "
                                f"{MAX_RESULT_BYTES} (Output, Messages and Spawns together)")
        return result

    def fork_dryrun(self, rid: int, msg: dict, env: dict) -> None:
        child = os.fork()
        if child == 0:
            try:
                if self.spare is not None:  # so the spare sees EOF once the holder goes, whatever this child does
                    self.spare.close_ends()
                self.reply(rid, True, self.evaluate_bounded(msg, env))
            finally:
                os._exit(0)
        self.dryruns[os.pidfd_open(child)] = (child, rid)

    def fork_spare(self) -> bool:
        """Fork the spare. Returns False in the holder; in the spare, True once it has evaluated a batch
        and taken over (it exits instead if the batch fails, or if it is dropped)."""
        status_r, status_w = os.pipe()
        handover_r, handover_w = os.pipe()
        work_r, work_w = os.pipe()
        child = os.fork()
        if child:
            for fd in (status_w, handover_r, work_r):
                os.close(fd)
            self.spare = _Spare(child, work_w, status_r, handover_w)
            return False
        for fd in (status_r, handover_w, work_w):
            os.close(fd)
        self.forget_dryruns()
        with os.fdopen(work_r, "rb") as pipe:
            work = pipe.read()
        if not work:
            os._exit(0)
        batch, message_rids, batch_rid = pickle.loads(work)
        count = self.evaluate_in_child(batch, message_rids, status_w, handover_r)
        self.finish_batch(message_rids[count:], batch_rid)
        return True

    def drop_spare(self) -> None:
        if self.spare is not None:
            self.spare.close_ends()  # EOF: it exits
            os.waitpid(self.spare.pid, 0)
            self.spare = None

    def forget_dryruns(self) -> None:
        """In a child that may take over: the dry-runs running now are the holder's children, and if
        this child takes over, the node's own deadline answers for any of them that dies."""
        for pidfd in self.dryruns:
            os.close(pidfd)
        self.dryruns.clear()

    def fork_eval(self, rids: list[int], batch: list[tuple[dict, dict]]) -> None:
        """Evaluate a batch in the spare (see the module docstring); returns in whichever process
        holds the state afterwards, which answers the batch's last request."""
        *message_rids, batch_rid = rids
        work = pickle.dumps((batch, message_rids, batch_rid), protocol=pickle.HIGHEST_PROTOCOL)
        while True:
            if self.spare is None and self.fork_spare():
                return  # in the spare, which has taken over
            spare, self.spare = self.spare, None
            if spare.give(work):
                break
            spare.close_ends()  # it had died (killed from outside): fork another
            os.waitpid(spare.pid, 0)
        count, death = self.watch_child(spare.pid, spare.status_r, spare.handover_w)
        # still the holder, at the batch's start: message `count` failed
        if death is not None:
            self.reply(message_rids[count], True, self.death_result(death))
        for rid in message_rids[:count + 1]:  # answered already, unless a child died between
            self.reply(rid, False, RESULT_LOST)  # its status byte and its result
        if count and not self.replay_in_child(batch[:count]):
            os._exit(1)  # the replay did not repeat itself: the node rebuilds the host from its log
        self.finish_batch(message_rids[count + 1:], batch_rid)

    def finish_batch(self, unevaluated: list[int], batch_rid: int) -> None:
        """The last answers of a batch, from the process that holds the state once it is over."""
        for rid in unevaluated:
            self.reply(rid, True, NOT_EVALUATED)
        self.reply(batch_rid, True, None)

    def replay_in_child(self, batch: list[tuple[dict, dict]]) -> bool:
        """Re-apply messages that succeeded in a child, silently, without the clock. Returns True in the
        child once it has taken over (the holder then exits), False in the holder if one failed."""
        status_r, status_w = os.pipe()
        handover_r, handover_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(status_r)
            os.close(handover_w)
            self.forget_dryruns()
            self.evaluate_in_child(batch, None, status_w, handover_r)
            return True
        os.close(status_w)
        os.close(handover_r)
        self.watch_child(child, status_r, handover_w)
        return False

    def evaluate_in_child(self, batch: list[tuple[dict, dict]], rids: list[int] | None, status_w: int,
                          handover_r: int) -> int:
        """Evaluate in order, a status byte per message; exits at the first failure. Returns how many
        were evaluated, once this child holds the state."""
        started, evaluated = time.monotonic(), 0
        for msg, env in batch:
            if rids is not None and evaluated and time.monotonic() - started > BATCH_SLICE:
                break  # the rest waits for the next batch, so the results so far become the state
            result = self.evaluate(msg, env) if rids is None else self.evaluate_bounded(msg, env)
            committed = "Error" not in result
            # tell the holder first, so it stops reading before the node can send the next request
            os.write(status_w, b"C" if committed else b"E")
            if rids is not None:
                self.reply(rids[evaluated], True, result)
            if not committed:
                os._exit(0)
            evaluated += 1
        os.write(status_w, b"T")
        os.close(status_w)
        os.read(handover_r, 1)  # the old holder has stopped reading the channel: take over
        os.close(handover_r)
        return evaluated

    def watch_child(self, child: int, status_r: int, handover_w: int) -> tuple[int, int | None]:
        """Serve dry-runs from the old state while the child reports a status byte per message; hand
        over and exit when it takes over, else return (failed index, wait status if it died)."""
        succeeded = 0
        while True:
            ready = self.wait(status_r)
            if status_r in ready:  # always before the channel: the next request may be for the child
                verdicts = os.read(status_r, 4096)
                succeeded += verdicts.count(b"C")
                if b"T" in verdicts:
                    os.write(handover_w, b"H")
                    os._exit(0)
                if not verdicts or b"E" in verdicts:
                    break
                continue
            kind, other, *args = self.receive()
            if kind != "dryrun":
                self.reply(other, False, "an evaluation is already running in this process")
                continue
            self.fork_dryrun(other, *args)
        os.close(status_r)
        os.close(handover_w)
        _, status = os.waitpid(child, 0)
        return succeeded, (status if not verdicts else None)


def timed_out_result(timeout: float) -> dict:
    return error_result(f"evaluation timed out: it ran longer than this node's limit of {timeout:g} s")


def _run_holder(fd: int, config: HostConfig) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    try:
        _Holder(conn, config).serve()
    except BaseException as exc:  # the process could not even be built: answer every request with why
        message = f"process host failed to start: {exc}"
        while True:
            try:
                _, rid, *_ = conn.recv()
            except (EOFError, OSError):
                break
            conn.send((rid, False, message))
    os._exit(0)

