"""Large temporaries without page faults.

By default glibc gives the top of its heap back to the system as soon as enough of it is free, and serves
large requests with a mapping of their own, so each layer's temporaries arrive as fresh pages, each one a
page fault: about 12,000 per exact BERT forward at batch 32, 15% of its time on one core. Keeping freed memory
for the next request costs nothing in results (no bit depends on where an array lies) and holds a process at
its peak heap until ``release_freed_memory``. Elsewhere than on glibc both are no-ops.
"""

from __future__ import annotations

import ctypes

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEPT_FREE_BYTES = 1 << 30  # free memory at the heap's top that stays in the process
_OWN_MAPPING_BYTES = 1 << 28  # requests this large still get a mapping of their own, returned when freed


def _glibc():
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None  # musl and others tune differently


class _MallocInfo(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_LIBC = _glibc()
if _LIBC is not None and hasattr(_LIBC, "mallinfo2"):  # glibc 2.33 on
    _LIBC.mallinfo2.restype = _MallocInfo
_WORTH_RELEASING = 16 << 20  # below this much free memory, giving it back costs more than it saves


def keep_freed_memory() -> None:
    """Keep freed memory in this process (and the processes it forks) for reuse instead of returning it to
    the system at once: ``tfao pipeline``, ``tfao sd`` and the node's process hosts run so."""
    if _LIBC is not None:
        _LIBC.mallopt(_M_TRIM_THRESHOLD, _KEPT_FREE_BYTES)
        _LIBC.mallopt(_M_MMAP_THRESHOLD, _OWN_MAPPING_BYTES)


def release_freed_memory() -> None:
    """Return the free memory kept so far to the system (for a process about to sit idle), unless there is
    little of it."""
    if _LIBC is None:
        return
    if hasattr(_LIBC, "mallinfo2") and _LIBC.mallinfo2().fordblks < _WORTH_RELEASING:
        return
    _LIBC.malloc_trim(0)
