"""Freed memory kept for reuse: a model's next temporaries land on pages the process already has, instead of
fresh pages that each cost a page fault; given back when the process is about to idle."""

import json
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator tuned is glibc's")

# faults while allocating, filling and freeing a 64 MiB array ten times; then the resident memory (MiB)
# with 256 MiB of 8 MiB arrays just freed, and after release_freed_memory
CHILD = """
import json, resource, sys
import numpy as np
from tfao.heap import keep_freed_memory, release_freed_memory
if sys.argv[1] == "keep":
    keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def resident_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
np.ones(8 * 2**20)
before = faults()
for _ in range(10):
    np.ones(8 * 2**20)
refaults = faults() - before
arrays = [np.ones(2**20) for _ in range(32)]
del arrays
freed = resident_mib()
release_freed_memory()
print(json.dumps({"faults": refaults, "freed": freed, "released": resident_mib()}))
"""


def run_child(setting: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, setting], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_kept_memory_is_reused_without_page_faults_and_given_back_on_release():
    default, kept = run_child("default"), run_child("keep")
    assert default["faults"] > 300  # each 64 MiB array in fresh pages: the cost being removed
    assert kept["faults"] < 50
    assert kept["freed"] - kept["released"] > 200  # the 256 MiB stayed in the process until released


def test_the_setting_is_public():
    import tfao
    import tfao.heap

    assert tfao.keep_freed_memory is tfao.heap.keep_freed_memory
