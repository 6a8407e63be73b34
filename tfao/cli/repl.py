"""An aos-like terminal on one process, and the printing rules it shares with the ``tfao`` commands.

The terminal reads Lua, sends it as an ``Eval`` message (or a dry-run) and prints the result as the aos
CLI does: ``Output.data`` (or ``Output.data.output``), errors with their line number, and the
process's own ``Prompt()``. A chunk that stops inside an open block continues on the next line.
Messages other processes send to it are printed as they arrive, by polling its results the way aos
does. It talks to anything with ``tfao.node.Node``'s client calls: a local ``Node`` or a
``tfao.http.client.RemoteNode``.
"""

from __future__ import annotations

import json
import re
import readline
import sys
import threading
from collections import deque
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import lupa.lua53 as lupa

from tfao.http.client import ClientError, dryrun_body
from tfao.node.node import NodeError
from tfao.sandbox.aos import blueprint, blueprint_names

RED, GREEN, BLUE, GRAY, BOLD, RESET = "\x1b[31m", "\x1b[32m", "\x1b[34m", "\x1b[90m", "\x1b[1m", "\x1b[0m"
ANSI_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# Lua's position prefix, as aos's parseError strips it: [string "aos"]:3:
ERROR_POSITION = re.compile(r'\[string "[A-Za-z0-9_.-]*"\]:(\d+):\s?')
# what the aos library puts between the lines printed before an error and the error itself
ERROR_HEADER = RED + "error:\n" + RESET
NOT_ADMISSIBLE = re.compile(r"HALT: FILE NOT FOUND: ([A-Za-z0-9_-]{43}) is not admissible")
DEFAULT_PROMPT = "aos> "
CONTINUATION_PROMPT = GRAY + "...  " + RESET
DRYRUN_MARK = RED + "*" + RESET
VERSION_QUERY = "require('.process')._version"
LIVE_PAGE = 100
HELP = """\
Type Lua and press Enter: it is sent to the process as an Eval message.
A line that leaves a block open (function, if, do, {, ...) continues on the next line; Ctrl-C drops it.
  .load FILE   send a Lua file as one Eval, with the local files it requires bundled in
  .load-blueprint NAME   load a blueprint shipped with tfao (token, chat, voting, staking)
  .editor      type several lines; .done sends them, .cancel drops them
  .dryrun      toggle dry-run mode: evaluate against the latest state, change nothing
  .help        this text
  .exit        leave (or Ctrl-D)
Messages other processes send to this one are printed as they arrive."""


# require("name") / require 'name' outside a comment, as aos's .load finds them
REQUIRE = re.compile(r"""^(?:(?!--).)*?\brequire\s*\(?\s*["']([^"']+)["']""", re.M)


def bundle_lua(main: Path) -> tuple[str, list[Path]]:
    """A Lua file with the local modules it requires, as aos's ``.load`` sends it.

    ``require("a.b")`` names ``a/b.lua`` next to the main file; each such file that exists (and,
    depth first, the ones it requires) is wrapped in a function whose result is stored in
    ``package.loaded["a.b"]`` ahead of the main file's code. Requires of missing files are left to
    the process (its own modules, or ones loaded before). Returns the code and the files it holds.
    """
    root = main.parent
    ordered: list[tuple[str, Path, str]] = []  # (module name, file, source), dependencies first
    seen: set[Path] = set()

    def visit(path: Path, source: str) -> None:
        seen.add(path)
        for name in REQUIRE.findall(source):
            child = root / (name.replace(".", "/") + ".lua")
            if child.is_file():
                if child not in seen:
                    visit(child, child.read_text())
                if (name, child) not in [(n, p) for n, p, _ in ordered]:
                    ordered.append((name, child, child.read_text()))

    main_source = main.read_text()
    visit(main, main_source)
    parts, loader_of = [], {}
    for name, path, source in ordered:
        if path == main:
            continue
        if path not in loader_of:
            loader_of[path] = "_loaded_mod_" + re.sub(r"[.-]", "_", name).lstrip("_")
            parts.append(f'-- module: "{name}"\nlocal function {loader_of[path]}()\n{source}\nend\n')
        parts.append(f'_G.package.loaded["{name}"] = {loader_of[path]}()\n')
    return "\n".join(parts + [main_source]), [path for _, path, _ in ordered if path != main] + [main]


def strip_ansi(text: str) -> str:
    return ANSI_SEQUENCE.sub("", text)


# --------------------------------------------------------------------------------------- results


def output_text(result: dict) -> str:
    """What the aos CLI prints for a successful result."""
    output = result.get("Output")
    if isinstance(output, dict):
        data = output.get("data")
        if isinstance(data, dict):
            if "output" in data:
                return _text(data["output"])
            return "" if "prompt" in data else _text(data)
        return _text(data)
    return _text(output)


def _text(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def prompt_of(result: dict) -> str | None:
    """The prompt a result carries: ``Output.data.prompt`` or ``Output.prompt``."""
    output = result.get("Output")
    if not isinstance(output, dict):
        return None
    data = output.get("data")
    if isinstance(data, dict) and "prompt" in data:
        return data["prompt"]
    return output.get("prompt")


@dataclass
class EvalError:
    printed: str  # lines the code printed before it failed
    line: int | None
    message: str


def parse_error(error) -> EvalError:
    """Split an ``Error`` the way aos reads it: printed lines, line number, message."""
    text = error if isinstance(error, str) else json.dumps(error)
    printed, _, message = text.rpartition(ERROR_HEADER)
    lines = ERROR_POSITION.findall(message)
    return EvalError(printed.strip("\n"), int(lines[-1]) if lines else None, ERROR_POSITION.sub("", message).strip())


def error_text(error, source: str | None = None, origin: str | None = None) -> str:
    """An evaluation error as the terminal shows it: red ``error on line N: message`` and that line."""
    parsed = parse_error(error)
    where = ""
    if parsed.line is not None:
        where = f" on line {parsed.line}" + (f" of {origin}" if origin else "")
    shown = [parsed.printed] if parsed.printed else []
    shown.append(f"{RED}error{where}:{RESET} {parsed.message}")
    source_lines = (source or "").split("\n")
    if parsed.line is not None and 1 <= parsed.line <= len(source_lines) and len(source_lines) > 1:
        shown.append(f"{BLUE}{parsed.line:>5} |{RESET} {source_lines[parsed.line - 1]}")
    if unattested := NOT_ADMISSIBLE.search(parsed.message):
        shown.append(f"{GRAY}hint: {unattested[1]} is not attested for this process. If it is in the weave (tfao"
                     f" weave ls), attest it as the process's scheduler, then send again: tfao weave attest"
                     f" {unattested[1]}{RESET}")
    return "\n".join(shown)


def result_text(result: dict, source: str | None = None, origin: str | None = None) -> tuple[str, bool]:
    """(what to print, whether it succeeded) for one result."""
    if result.get("Error") is not None:
        return error_text(result["Error"], source, origin), False
    return output_text(result), True


def outgoing_text(message: dict) -> str:
    """One line per message a result sends: target, tags that say what it is, data."""
    tags = {t["name"]: t["value"] for t in message.get("Tags", []) if isinstance(t, dict)}
    shown = [f"{name}={tags[name]}" for name in ("Action", "Reference", "X-Reference") if name in tags]
    data = _text(message.get("Data"))
    if data:
        shown.append("Data=" + (json.dumps(data[:60] + "...") if len(data) > 60 else json.dumps(data)))
    return f"{GRAY}-> {message.get('Target', '?')}{RESET} " + " ".join(shown)


# --------------------------------------------------------------------------------------- input


class ChunkChecker:
    """Tells whether typed Lua stops inside an open block, by compiling it in a throwaway Lua 5.3."""

    def __init__(self):
        self._error = lupa.LuaRuntime().eval(
            "function(src) local f, err = load(src, 'aos', 't', {}) return err end")

    def needs_more(self, chunk: str) -> bool:
        if self._error("return " + chunk) is None:
            return False
        error = self._error(chunk)
        # a short string cannot continue on the next line: more input would not close it
        return error is not None and error.endswith("<eof>") and "unfinished string" not in error


class Terminal:
    """The aos-like terminal on process ``pid`` of ``node``."""

    def __init__(self, node, pid: str, *, history_file: Path | None = None, poll_seconds: float = 2.0,
                 eval_timeout: float | None = None, stdin=None, stdout=None):
        self.node, self.pid = node, pid
        self.history_file = history_file
        self.poll_seconds = poll_seconds
        self.eval_timeout = eval_timeout
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.interactive = self.stdin.isatty() and self.stdout.isatty()
        self.prompt = DEFAULT_PROMPT
        self.dryrun = False
        self.checker = ChunkChecker()
        # held while evaluating and printing, so live output never cuts into a result
        self.screen = threading.Lock()
        self.input_prompt: str | None = None  # the prompt on screen while waiting for input
        self.own_results: deque = deque(maxlen=32)
        self.stopped = threading.Event()

    # ------------------------------------------------------------------ output
    def write(self, text: str) -> None:
        if not text:
            return
        self.stdout.write((text if self.interactive else strip_ansi(text)) + "\n")
        self.stdout.flush()

    def show_live(self, text: str) -> None:
        """Print above the line being typed, then redraw the prompt and what was typed so far."""
        with self.screen:
            if self.input_prompt is None:
                self.write(text)
                return
            self.stdout.write("\r\x1b[2K" + text + RESET + "\n" + self.input_prompt + readline.get_line_buffer())
            self.stdout.flush()

    def current_prompt(self) -> str:
        return (DRYRUN_MARK if self.dryrun else "") + self.prompt

    # ------------------------------------------------------------------ input
    def read_line(self, prompt: str) -> str:
        if not self.interactive:
            line = self.stdin.readline()
            if not line:
                raise EOFError
            return line.rstrip("\n")
        self.input_prompt = prompt
        try:
            # readline counts the prompt's width; \001 \002 hide the colour codes from it
            return input(ANSI_SEQUENCE.sub(lambda m: "\001" + m.group() + "\002", prompt))
        finally:
            self.input_prompt = None

    def read_chunk(self) -> str:
        """A command line, or Lua code that compiles (or fails for a reason other than ending early)."""
        chunk = self.read_line(self.current_prompt())
        if chunk.startswith("."):
            return chunk.strip()
        while chunk.strip() and self.checker.needs_more(chunk):
            chunk += "\n" + self.read_line(CONTINUATION_PROMPT)
        return chunk

    def read_editor(self) -> str | None:
        self.write(GRAY + "<editor mode> type .done to send, .cancel to drop" + RESET)
        lines = []
        while (line := self.read_line("")) not in (".done", ".cancel"):
            lines.append(line)
        return "\n".join(lines) if line == ".done" else None

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, code: str) -> dict:
        if self.dryrun:
            return self.node.dryrun(self.pid, dryrun_body(self.node.address, code, [("Action", "Eval")]))
        message_id = self.node.message(self.pid, data=code, tags=[("Action", "Eval")])
        return self.node.result(self.pid, message_id, timeout=self.eval_timeout)

    def run_code(self, code: str, origin: str | None = None) -> None:
        with self.screen:
            try:
                result = self.evaluate(code)
            except (NodeError, ClientError, TimeoutError) as exc:
                self.write(f"{RED}{exc}{RESET}")
                return
            except KeyboardInterrupt:
                self.write(GRAY + "interrupted (the message was sent: its result will be in the results)" + RESET)
                return
            self.own_results.append(result)
            self.prompt = prompt_of(result) or self.prompt
            self.write(result_text(result, code, origin)[0])

    def connect(self) -> None:
        """Learn the prompt: a dry-run when the unit offers them, else an Eval (as aos does)."""
        try:
            result = self.node.dryrun(self.pid, dryrun_body(self.node.address, VERSION_QUERY, [("Action", "Eval")]))
        except (NodeError, ClientError):
            result = {}
        if prompt_of(result) is None:
            message_id = self.node.message(self.pid, data=VERSION_QUERY, tags=[("Action", "Eval")])
            result = self.node.result(self.pid, message_id, timeout=self.eval_timeout)
            if result.get("Error") is not None:
                self.write(error_text(result["Error"]))
        self.prompt = prompt_of(result) or self.prompt

    # ------------------------------------------------------------------ commands
    def handle(self, line: str) -> bool:
        """Run one command or chunk; False to leave."""
        if line == ".exit":
            return False
        if line == ".help":
            self.write(HELP)
        elif line == ".dryrun":
            self.dryrun = not self.dryrun
            self.write(GREEN + "Dry-run mode on: nothing is stored" + RESET if self.dryrun
                       else RED + "Dry-run mode off" + RESET)
        elif line == ".editor":
            code = self.read_editor()
            if code is not None:
                self.run_code(code)
        elif line == ".load" or line.startswith(".load "):
            self.load(line[len(".load"):].strip().strip("'\""))
        elif line == ".load-blueprint" or line.startswith(".load-blueprint "):
            self.load_blueprint(line[len(".load-blueprint"):].strip())
        elif line.startswith("."):
            self.write(f"{RED}unknown command {line.split()[0]}{RESET} (.help lists them)")
        elif line.strip():
            self.run_code(line)
        return True

    def load(self, name: str) -> None:
        if not name:
            self.write(f"{RED}.load needs a file name{RESET}")
            return
        path = Path(name).expanduser()
        try:
            code, files = bundle_lua(path)
        except OSError as exc:
            self.write(f"{RED}cannot read {name}: {exc.strerror}{RESET}")
            return
        self.write(GREEN + f"Loading {name}" + RESET)
        if len(files) > 1:
            self.write(GRAY + "with " + ", ".join(str(f.relative_to(path.parent)) for f in files[:-1]) + RESET)
        self.run_code(code, origin=name)

    def load_blueprint(self, name: str) -> None:
        if name not in blueprint_names():
            self.write(f"{RED}.load-blueprint needs one of: {', '.join(blueprint_names())}{RESET}")
            return
        self.write(GREEN + f"Loading blueprint {name}" + RESET)
        self.run_code(blueprint(name), origin=f"{name}.lua")

    # ------------------------------------------------------------------ live output
    def watch(self) -> None:
        """Poll the process's results like aos: from the newest one on, print those marked ``print``."""
        cursor, started = None, False
        while not self.stopped.wait(self.poll_seconds if started else 0):
            try:
                if not started:
                    edges = self.node.results(self.pid, sort="DESC", limit=1)["edges"]
                    cursor, started = (edges[0]["cursor"] if edges else None), True
                    continue
                nodes, cursor = self.results_after(cursor)
            except (NodeError, ClientError, TimeoutError, OSError):
                continue  # a unit that is briefly unreachable: try again on the next tick
            for node in nodes:
                self.print_incoming(node)

    def results_after(self, cursor: str | None) -> tuple[list[dict], str | None]:
        nodes = []
        while True:
            page = self.node.results(self.pid, from_=cursor, sort="ASC", limit=LIVE_PAGE)
            nodes += [edge["node"] for edge in page["edges"]]
            if page["edges"]:
                cursor = page["edges"][-1]["cursor"]
            if not page["edges"] or not page.get("pageInfo", {}).get("hasNextPage"):
                return nodes, cursor

    def print_incoming(self, node: dict) -> None:
        output = node.get("Output")
        if not isinstance(output, dict) or output.get("print") is not True:
            return
        with self.screen:  # wait for an evaluation in flight, so its own result is known
            if node in self.own_results:
                return
            self.prompt = prompt_of(node) or self.prompt
        text = output_text(node)
        if text:
            self.show_live(text)

    @contextmanager
    def live_output(self):
        watcher = threading.Thread(target=self.watch, daemon=True, name="tfao-repl-live")
        if self.interactive:
            watcher.start()
        try:
            yield
        finally:
            self.stopped.set()

    @contextmanager
    def line_editing(self):
        """readline with the history file; Tab indents (code is typed here, not file names)."""
        keep_history = self.interactive and self.history_file is not None
        if self.interactive:
            readline.parse_and_bind("tab: tab-insert")
        if keep_history:
            readline.set_history_length(1000)
            with suppress(OSError):  # no history yet
                readline.read_history_file(self.history_file)
        try:
            yield
        finally:
            if keep_history:
                readline.write_history_file(self.history_file)

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        self.connect()
        with self.line_editing(), self.live_output():
            while True:
                try:
                    line = self.read_chunk()
                except EOFError:
                    self.stdout.write("\n" if self.interactive else "")
                    return
                except KeyboardInterrupt:
                    self.stdout.write("\n")
                    continue
                if not self.handle(line):
                    return
