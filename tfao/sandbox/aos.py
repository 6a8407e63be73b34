"""One aos process: a sandboxed VM running the bundled aos library, evaluating one message at a time.

``AosProcess.handle(msg, env)`` is the compute unit's call into a module (``handle(msgJSON, envJSON)``)
followed by the CU's merge of the response into a result. It does not roll back: an evaluation that
ends in ``Error`` may leave the VM changed, so callers evaluate on a copy (see ``tfao.sandbox.host``).
"""

from __future__ import annotations

import importlib.resources
import json
import re
from typing import Callable, Mapping

from weavedrive.ans104 import first_tag
from tfao.sandbox.luavm import COMPUTE_LIMIT_MESSAGE, LuaError, LuaMemoryError, LuaVM, bundled_sources

DEFAULT_MEMORY_LIMIT = 1024**3  # AO's default Memory-Limit, 1 GB
DEFAULT_COMPUTE_LIMIT = 9_000_000_000_000  # AO's default Compute-Limit

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def blueprint_names() -> list[str]:
    """The blueprints shipped with the project (token, chat, voting...), loadable by name."""
    root = importlib.resources.files("tfao.sandbox") / "blueprints"
    return sorted(entry.name[: -len(".lua")] for entry in root.iterdir() if entry.name.endswith(".lua"))


def blueprint(name: str) -> str:
    """The Lua source of a shipped blueprint, to Eval in a process."""
    if name not in blueprint_names():
        raise ValueError(f"no blueprint named {name!r} (there are: {', '.join(blueprint_names())})")
    return (importlib.resources.files("tfao.sandbox") / "blueprints" / f"{name}.lua").read_text()


def parse_memory_limit(value: str | None) -> int:
    """``Memory-Limit`` tag value ("1-gb", "4gb", "500mb", "1073741824") -> bytes."""
    if not value:
        return DEFAULT_MEMORY_LIMIT
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"invalid Memory-Limit {value[:64]!r}: expected a size such as 1-gb, 512-mb or 1073741824")
    number, unit = match.groups()
    size = int(float(number) * _UNITS[(unit or "b").lower()])
    if size <= 0:
        raise ValueError(f"invalid Memory-Limit {value[:64]!r}: a process needs more than 0 bytes")
    return size


def parse_compute_limit(value: str | None) -> int:
    if not value:
        return DEFAULT_COMPUTE_LIMIT
    if not value.strip().isdigit() or int(value) <= 0:
        raise ValueError(f"invalid Compute-Limit {value[:64]!r}: expected a positive number of instructions")
    return int(value)


def limits_from_tags(tags: list[tuple[str, str]]) -> tuple[int, int]:
    """(memory bytes, instruction budget per message) from a process's tags."""
    return parse_memory_limit(first_tag(tags, "Memory-Limit")), parse_compute_limit(first_tag(tags, "Compute-Limit"))


class AosProcess:
    """The aos library in a sandboxed VM; ``handle`` evaluates one CU-shaped message."""

    def __init__(
        self,
        *,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        compute_limit: int = DEFAULT_COMPUTE_LIMIT,
        bridges: Mapping[str, Mapping[str, Callable]] | None = None,
        bridge_sources: Mapping[bytes, bytes] | None = None,
    ):
        self.compute_limit = compute_limit
        self.vm = LuaVM(memory_limit=memory_limit, bridges=bridges,
                        sources=bundled_sources() | dict(bridge_sources or {}))
        self._handle = self.vm.require("loader")

    def handle(self, msg: dict, env: dict) -> dict:
        """Evaluate ``msg``; returns the CU result: Output, Messages, Spawns, Assignments[, Error]."""
        self.vm.set_compute_limit(self.compute_limit)
        try:
            raw = self._handle(compact_json(msg), compact_json(env))
        except LuaMemoryError:
            return error_result("out of memory: the process exceeded its Memory-Limit")
        except LuaError as exc:
            return error_result(self._halt_text() or _lua_error_text(exc))
        halt = self._halt_text()
        if halt is not None:  # a halt ends the message even when the Lua code caught its error
            return error_result(halt)
        # aos's json passes string bytes through; the result is read as UTF-8, lossily, as the SU does
        reply = json.loads(raw.decode("utf-8", "replace"))
        if not reply.get("ok"):
            return error_result(_error_text(reply.get("response")))
        return merge_result(reply.get("response") or {})


    def _halt_text(self) -> str | None:
        halt = self.vm.halt_message()
        return None if halt is None else _error_text(halt)


def compact_json(value) -> bytes:
    """JSON without spaces between tokens: the same values, less text for the Lua decoder to scan."""
    return json.dumps(value, separators=(",", ":")).encode()


def _lua_error_text(exc: LuaError) -> str:
    text = exc.args[0] if exc.args else str(exc)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text).split("\nstack traceback:")[0]
    if COMPUTE_LIMIT_MESSAGE in text:
        return COMPUTE_LIMIT_MESSAGE + ": the process exceeded its Compute-Limit"
    if "not enough memory" in text:
        return "out of memory: the process exceeded its Memory-Limit"
    return text


def _error_text(response) -> str:
    if isinstance(response, str):
        if COMPUTE_LIMIT_MESSAGE in response:
            return COMPUTE_LIMIT_MESSAGE + ": the process exceeded its Compute-Limit"
        if response.endswith("not enough memory"):
            return "out of memory: the process exceeded its Memory-Limit"
        return response
    return json.dumps(response)


def error_result(message: str) -> dict:
    return {"Error": message, "Messages": [], "Spawns": [], "Assignments": []}


def merge_result(response: dict) -> dict:
    """The CU's merge: an Error keeps only the error (state is rolled back by the caller)."""
    if response.get("Error") is not None:
        return error_result(_error_text(response["Error"]))
    result = {
        "Output": response.get("Output", ""),
        "Messages": _as_list(response.get("Messages")),
        "Spawns": _as_list(response.get("Spawns")),
        "Assignments": _as_list(response.get("Assignments")),
    }
    if "GasUsed" in response:
        result["GasUsed"] = response["GasUsed"]
    return result


def _as_list(value) -> list:
    # Lua's json encodes an empty table as [] or {}; both mean "none"
    if not value:
        return []
    return value if isinstance(value, list) else list(value.values())
