"""The kernels keep freed memory for the next temporaries: a loop of few-MiB arrays faults no new pages."""

import subprocess
import sys

LOOP = """
import resource
import numpy as np
import tfao.kernels

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

a = np.ones(3 << 18, np.float32); b = a * 2; del a, b  # 3 MiB each: the heap grows once
start = faults()
for _ in range(10):
    a = np.ones(3 << 18, np.float32); b = a * 2; del a, b
print(faults() - start)
"""


def test_freed_temporaries_are_reused_without_new_page_faults():
    faults = int(subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True, check=True).stdout)
    assert faults < 768 // 4, f"{faults} page faults for 20 arrays of 768 pages: freed memory went back to the kernel"
