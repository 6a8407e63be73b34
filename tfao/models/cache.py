"""The model cache: loaded models by key, single-flight, within an honest byte budget.

Single-flight: a second caller asking for a model that is loading waits for that load instead of
starting its own. The budget is honest: an entry larger than the whole budget is returned but not kept,
and least recently used entries are evicted until the total is back within it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future


class ModelCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._loading: dict[str, Future] = {}
        self._lock = threading.Lock()

    def get_or_load(self, key: str, load: Callable[[], object], size_of: Callable[[object], int]):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
            pending = self._loading.get(key)
            if pending is None:
                pending = self._loading[key] = Future()
                loader = True
            else:
                loader = False
        if not loader:
            return pending.result()
        try:
            value = load()
            size = size_of(value)
        except BaseException as exc:
            with self._lock:
                del self._loading[key]
            pending.set_exception(exc)
            raise
        with self._lock:
            del self._loading[key]
            if size <= self.max_bytes:
                self._entries[key] = (value, size)
                while self.total_bytes() > self.max_bytes:
                    self._entries.popitem(last=False)
        pending.set_result(value)
        return value

    def total_bytes(self) -> int:
        return sum(size for _, size in self._entries.values())

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


MODEL_CACHE = ModelCache(int(os.environ.get("TFAO_MODEL_CACHE_BYTES", 2 * 2**30)))
