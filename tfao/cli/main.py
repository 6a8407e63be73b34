"""The ``tfao`` command: spawn processes, send messages, evaluate Lua, read results, and the aos-like terminal.

Local commands open the node home (``--home``, default ``$TFAO_HOME`` or ``~/.tfao``) for the length of
the command; with ``--url`` they talk to a running node (``tfao serve``, or legacy AO units) instead.
Results print the way the aos CLI prints them (``--json``: the unit's JSON, for scripts). A user error
prints one ``error: ...`` line on stderr and exits with status 1. On a terminal, waits longer than a
second show the time they have taken on stderr.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from tfao.http import server
from tfao.cli import maintenance
from tfao.http.client import ClientError, RemoteNode, dryrun_body
from tfao.cli import pipeline as pipeline_cli
from tfao.cli import sd as sd_cli
from tfao.cli.demo import run_demo
from tfao.node.node import Node, NodeError, decode_cursor
from tfao.sandbox.aos import blueprint, blueprint_names
from tfao.cli.repl import GRAY, RED, RESET, Terminal, outgoing_text, output_text, result_text, strip_ansi
from weavedrive import cli as weave_cli
from weavedrive.cli import arweave_id
from weavedrive.ans104 import InvalidDataItem
from weavedrive.wallet import Wallet, default_wallet, home_dir

DEFAULT_PROCESS_NAME = "default"  # the name aos gives a process when none is asked for


class UsageError(Exception):
    """A command line that cannot be carried out as written."""


USER_ERRORS = (UsageError, NodeError, ClientError, InvalidDataItem, TimeoutError, OSError, ValueError)


# --------------------------------------------------------------------------------------- output


def colour_enabled(stream) -> bool:
    choice = os.environ.get("TFAO_COLOR", "auto")
    if choice in ("always", "never"):
        return choice == "always"
    return stream.isatty() and "NO_COLOR" not in os.environ


def emit(text: str, stream=None) -> None:
    """Print ``text`` (nothing if empty), without colour codes unless the stream is a terminal."""
    stream = stream or sys.stdout
    if text:
        print(text if colour_enabled(stream) else strip_ansi(text), file=stream, flush=True)


def emit_result(result: dict, source: str | None = None) -> bool:
    """Print a result as aos does (an error on stderr) and the messages it sends; True on success."""
    text, ok = result_text(result, source)
    emit(text, sys.stdout if ok else sys.stderr)
    for line in sent_lines(result):
        emit(line)
    return ok


def emit_json(document) -> None:
    print(json.dumps(document), flush=True)


def finish(result: dict, json_output: bool, document: dict, source: str | None = None) -> int:
    """Print a command's result as text or (``--json``) as ``document``; exit status 1 if it is an Error."""
    if json_output:
        emit_json(document)
        return 1 if "Error" in result else 0
    return 0 if emit_result(result, source) else 1


@contextmanager
def elapsed_line(description: str):
    """While the block runs, a line on stderr showing how long it has taken (terminals only, after 1 s)."""
    if not sys.stderr.isatty():
        yield
        return
    done = threading.Event()
    with tqdm(desc=description, bar_format="{desc} {elapsed}", file=sys.stderr, leave=False, delay=1) as line:
        def tick():
            while not done.wait(0.5):
                line.update(0)

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()


def sent_lines(result: dict) -> list[str]:
    """What a result sends: one line per message, and how many processes it spawns."""
    lines = [outgoing_text(message) for message in result.get("Messages") or []]
    if spawns := len(result.get("Spawns") or []):
        lines.append(f"{GRAY}spawns {spawns} process{'es' if spawns > 1 else ''}{RESET}")
    return lines


# --------------------------------------------------------------------------------------- nodes


def home_of(args) -> Path:
    return Path(args.home) if args.home is not None else home_dir()


def wallet_of(args) -> Wallet | None:
    """The ``--wallet`` a command signs with, if one was given."""
    return Wallet.load(args.wallet) if getattr(args, "wallet", None) else None


def is_remote(args) -> bool:
    return bool(getattr(args, "url", None) or getattr(args, "cu_url", None))


@contextmanager
def open_node(args):
    """The node a command works on: the home's local node, or a remote one with ``--url``."""
    home = home_of(args)
    if is_remote(args):
        with RemoteNode(args.url, wallet=wallet_of(args) or default_wallet(home), mu_url=args.mu_url,
                        cu_url=args.cu_url, gateway_url=args.gateway_url, scheduler=args.scheduler) as node:
            yield node
    else:
        with server.open_home(home) as node:
            yield node


def signing(node, args) -> dict:
    """Keyword arguments that make a local node sign as ``--wallet`` (a remote one was opened with it)."""
    wallet = wallet_of(args)
    return {"wallet": wallet} if wallet is not None and isinstance(node, Node) else {}


def sender_address(node, args) -> str:
    wallet = wallet_of(args)
    return wallet.address if wallet is not None else node.address


def parse_tags(texts: list[str]) -> list[tuple[str, str]]:
    tags = []
    for text in texts:
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise UsageError(f"bad tag {text!r}: expected NAME=VALUE")
        tags.append((name, value))
    return tags


def spawn_process(node, *, name=None, tags=(), module=None, data="", timeout=None, **signer) -> tuple[str, dict]:
    """Spawn as aos does (trusting the node that pushes messages), wait for the process's first result."""
    tags = list(tags)
    if not any(tag_name == "Authority" for tag_name, _ in tags):
        tags.append(("Authority", node.scheduler() if isinstance(node, RemoteNode) else node.address))
    spawned = node.spawn(name=name, tags=tags, module=module, data=data, **signer)
    pid = spawned if isinstance(spawned, str) else spawned.id
    return pid, wait_for_result(node, pid, pid, timeout)


def wait_for_result(node, pid: str, message_id: str, timeout: float | None) -> dict:
    """A message's result; past ``timeout`` seconds, an error saying what becomes of the message."""
    with elapsed_line(f"waiting for the result of {message_id}"):
        try:
            return node.result(pid, message_id, timeout=timeout)
        except TimeoutError:
            pass
    if isinstance(node, RemoteNode):
        later = f"the node goes on evaluating it: read it later with tfao results {pid} --url {node.cu_url}"
    else:
        later = (f"it is scheduled, and this node evaluates it the next time it opens the home (tfao results"
                 f" {pid} shows it then); give a longer --timeout, or keep the node running with tfao serve")
    raise TimeoutError(f"no result for message {message_id} within {timeout:g} s (--timeout): {later}")


def checked_process(node, pid: str) -> str:
    if isinstance(node, Node):
        node.process(pid)  # raises NotFound with a clear message
    return pid


def send_eval(node, pid: str, code: str, timeout: float | None, **signer) -> tuple[str, dict]:
    message_id = node.message(pid, data=code, tags=[("Action", "Eval")], **signer)
    return message_id, wait_for_result(node, pid, message_id, timeout)


def lua_code(argument: str) -> str:
    """CODE_OR_FILE: the file's text when it names a file, else the Lua code itself."""
    path = Path(argument)
    if path.is_file():
        return path.read_text()
    looks_like_a_path = not re.search(r"\s", argument) and (
        argument.endswith(".lua") or argument.startswith(("./", "../", "/", "~")))
    if looks_like_a_path or path.is_dir():
        raise UsageError(f"{argument}: no such file (CODE_OR_FILE is a Lua file, or Lua code such as 'return 1 + 1')")
    return argument


# --------------------------------------------------------------------------------------- commands


def cmd_spawn(args) -> int:
    with open_node(args) as node:
        pid, first = spawn_process(node, name=args.name, tags=parse_tags(args.tag), module=args.module,
                                   data=args.data or "", timeout=args.timeout, **signing(node, args))
        if not args.json:
            print(pid, flush=True)
        return finish(first, args.json, {"process": pid, "result": first})


def cmd_send(args) -> int:
    tags = [("Action", args.action)] + parse_tags(args.tag)
    with open_node(args) as node:
        pid = checked_process(node, args.process)
        message_id = node.message(pid, data=args.data or "", tags=tags, **signing(node, args))
        if not args.json:
            print(message_id, flush=True)
        result = wait_for_result(node, pid, message_id, args.timeout)
        return finish(result, args.json, {"message": message_id, "result": result})


def cmd_eval(args) -> int:
    if (args.code is None) == (args.blueprint is None):
        raise UsageError("give CODE_OR_FILE or --blueprint NAME (one of them)")
    code = blueprint(args.blueprint) if args.blueprint else lua_code(args.code)
    with open_node(args) as node:
        pid = checked_process(node, args.process)
        if args.dry_run:
            message_id = None
            result = node.dryrun(pid, dryrun_body(sender_address(node, args), code, [("Action", "Eval")]))
        else:
            message_id, result = send_eval(node, pid, code, args.timeout, **signing(node, args))
        return finish(result, args.json, {"message": message_id, "result": result}, code)


def cmd_results(args) -> int:
    with open_node(args) as node:
        page = node.results(checked_process(node, args.process), from_=args.from_, sort=args.sort.upper(),
                            limit=args.limit)
    if args.json:
        emit_json(page)
        return 0
    for edge in page["edges"]:
        result = edge["node"]
        emit(f"{GRAY}-- message {decode_cursor(edge['cursor'])[1]} --{RESET}")
        text, ok = result_text(result)
        emit(text if ok else RED + strip_ansi(text) + RESET)
        if ok and not text:
            emit(f"{GRAY}(no output){RESET}")
        for line in sent_lines(result):
            emit(line)
    if page.get("pageInfo", {}).get("hasNextPage") and page["edges"]:
        emit(f"{GRAY}more: --from {page['edges'][-1]['cursor']}{RESET}")
    return 0


def cmd_ps(args) -> int:
    """The home's processes, or with --url this wallet's processes on that node (no message counts there)."""
    with open_node(args) as node:
        records = node.processes()
        counts = {} if is_remote(args) else {r["id"]: node.scheduled_count(r["id"]) for r in records}
    rows = [{"id": r["id"], "name": r["name"], "owner": r["owner"], "module": r["module"],
             "messages": counts.get(r["id"])} for r in records]
    if args.json:
        emit_json(rows)
        return 0
    row = "{:<43}  {:<16}  {:<43}  {:>8}"
    print(row.format("ID", "NAME", "OWNER", "MESSAGES"))
    for r in rows:
        print(row.format(r["id"], r["name"] or "-", r["owner"], "-" if r["messages"] is None else r["messages"]))
    return 0


def cmd_repl(args) -> int:
    with open_node(args) as node:
        if args.process:
            pid = checked_process(node, args.process)
        else:
            pid = find_or_spawn(node, args.name or DEFAULT_PROCESS_NAME, args.timeout)
        where = args.url or args.cu_url or str(home_of(args))
        emit(f"{GRAY}process {pid} on {where} - .help for help, .exit to leave{RESET}")
        Terminal(node, pid, history_file=home_of(args) / "repl_history", poll_seconds=args.poll).run()
    return 0


def find_or_spawn(node, name: str, timeout: float | None) -> str:
    """This wallet's process called ``name`` (as aos finds one by name), or a new one."""
    mine = [p for p in node.processes() if p["name"] == name and p["owner"] == node.address]
    if mine:
        return mine[0]["id"]
    emit(f"{GRAY}spawning a new process named {name}{RESET}")
    return spawn_process(node, name=name, timeout=timeout)[0]


# --------------------------------------------------------------------------------------- demo


def walk_through(node, write=print) -> None:
    """Walk through a process's life on ``node``, saying what happens in plain words."""
    write("Spawning an aos process on a local AO node...")
    pid, _ = spawn_process(node, name="demo", timeout=60)
    write(f"  process id: {pid}")
    code = "return 1 + 41"
    write(f"Sending it an Eval message with the Lua code: {code}")
    write(f"  the process answers: {output_text(send_eval(node, pid, code, 60)[1])}")
    handler = 'Handlers.add("Greet", function(msg) msg.reply({ Data = "Hello, " .. msg.Data .. "!" }) end)'
    write(f"Adding a message handler with Eval: {handler}")
    send_eval(node, pid, handler, 60)
    message_id = node.message(pid, data="world", tags=[("Action", "Greet")])
    reply = node.result(pid, message_id, timeout=60)["Messages"][0]
    write(f"Sending it a message with Action = Greet and Data = world (id {message_id})")
    write(f"  it replies to the sender ({reply['Target']}): {reply['Data']}")
    count = output_text(node.dryrun(pid, dryrun_body(node.address, "#Handlers.list", [("Action", "Eval")])))
    write(f"A dry-run reads its state without changing it: it has {count} handlers")


def cmd_demo(args) -> int:
    with (server.open_home(home_of(args)) if args.persist else Node()) as node:
        walk_through(node)
        result = run_demo(node)
    return 1 if "Error" in result else 0


# --------------------------------------------------------------------------------------- parser


def home_option(default=argparse.SUPPRESS) -> argparse.ArgumentParser:
    """``--home``, before the command (default None) or after it (default SUPPRESS: a --home given
    before the command is not overwritten by this one's default)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--home", type=Path, default=default, help="node home folder (default: $TFAO_HOME or ~/.tfao)")
    return parent


def tag_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--tag", action="append", default=[], metavar="NAME=VALUE", help="add a tag (repeatable)")
    return parent


def remote_options() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("remote node")
    group.add_argument("--url", help="talk to a node over HTTP (tfao serve, or AO units) instead of the home")
    group.add_argument("--mu-url", help="messenger unit URL (default: --url)")
    group.add_argument("--cu-url", help="compute unit URL (default: --url)")
    group.add_argument("--gateway-url", help="gateway URL for GraphQL (default: --url)")
    group.add_argument("--scheduler", type=arweave_id, help="scheduler address for new processes (default: the unit's own)")
    group.add_argument("--timeout", type=float, default=300, help="seconds to wait for a result (default 300)")
    return parent


def json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print the unit's JSON (one document) instead of text")
    return parent


def wallet_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--wallet", type=Path, metavar="FILE",
                        help="JWK wallet file to sign with (default: the home folder's wallet.json)")
    return parent


def package_version() -> str:
    try:
        return importlib.metadata.version("transformers-ao")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfao", description="Transformers-AO: a local AO node and its tools.",
        epilog="Output is coloured on a terminal; set NO_COLOR, or TFAO_COLOR=always|never, to change that.",
        parents=[home_option(default=None)])
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    home, remote, as_json, wallet, tags = home_option(), remote_options(), json_option(), wallet_option(), tag_option()

    def command(name, handler, help, parents=(remote,)):
        sub = commands.add_parser(name, help=help, description=help, parents=[home, *parents])
        sub.set_defaults(handler=handler)
        return sub

    process_help = "the process id"
    spawn = command("spawn", cmd_spawn, "spawn an aos process; prints its id", (remote, wallet, as_json, tags))
    spawn.add_argument("--name", help="the process's Name tag")
    spawn.add_argument("--module", type=arweave_id, help="module id (default: the node's tfao module)")
    spawn.add_argument("--data", help="the process item's data (e.g. code run by On-Boot=Data)")

    send = command("send", cmd_send, "send a message; prints its id and the process's output",
                   (remote, wallet, as_json, tags))
    send.add_argument("--process", required=True, type=arweave_id, metavar="PID", help=process_help)
    send.add_argument("--action", required=True, help="the Action tag")
    send.add_argument("--data", help="message data")

    evaluate = command("eval", cmd_eval, "evaluate Lua in a process (an Eval message) and print the output",
                       (remote, wallet, as_json))
    evaluate.add_argument("--process", required=True, type=arweave_id, metavar="PID", help=process_help)
    evaluate.add_argument("code", nargs="?", metavar="CODE_OR_FILE", help="Lua code, or a file holding it")
    evaluate.add_argument("--blueprint", choices=blueprint_names(), help="load a blueprint shipped with tfao instead")
    evaluate.add_argument("--dry-run", action="store_true", help="evaluate against the latest state, change nothing")

    results = command("results", cmd_results, "print a process's results, one block per message",
                      (remote, as_json))
    results.add_argument("process", type=arweave_id, metavar="PID", help=process_help)
    results.add_argument("--limit", type=int, default=25, help="how many (default 25)")
    results.add_argument("--sort", choices=["ASC", "DESC", "asc", "desc"], default="ASC",
                         help="oldest first (ASC, the default) or newest first (DESC)")
    results.add_argument("--from", dest="from_", metavar="CURSOR", help="start after this cursor")

    command("ps", cmd_ps, "list the processes of the local node (with --url: this wallet's on that node)",
            (remote, as_json))

    repl = command("repl", cmd_repl, "an aos-like terminal on a process")
    repl.add_argument("process", nargs="?", type=arweave_id, metavar="PID", help="the process (default: find or spawn by --name)")
    repl.add_argument("--name", help=f"find this wallet's process by name, or spawn it (default {DEFAULT_PROCESS_NAME!r})")
    repl.add_argument("--poll", type=float, default=2.0, help="seconds between checks for incoming messages")

    demo = command("demo", cmd_demo, "spawn a process on a throwaway node and show what it does", parents=())
    demo.add_argument("--persist", action="store_true", help="use the home's node (keeps the process)")

    pipeline_cli.register(commands)
    weave_cli.register(commands)
    server.register(commands)
    sd_cli.register(commands)
    maintenance.register(commands)
    return parser


def run(handler, args) -> int:
    try:
        return handler(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = weave_cli.parse_args(parser, argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 1
    try:
        return run(handler, args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
