"""Process-level settings for running EVA02-AT on CPUs (not part of the remote-code model files).

A 16-frame B/16 forward allocates and frees tensors of 10-25 MB several times per block. glibc's malloc serves
such sizes with fresh `mmap` calls and returns them to the OS on `free`, so every block pays page faults and page
zeroing for memory it used a moment before: about 70k minor faults per 4 blocks, ~14 % of the CPU time of a forward
on the project's 2-core reference machine (benchmarks/bench_encoder.py prints both settings). Keeping freed
memory in the heap removes them, at the price of holding the process's peak memory until it exits.
"""

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_cpu_allocator(threshold_bytes: int = 1 << 30) -> bool:
    """Serve allocations below `threshold_bytes` from glibc's heap and never trim it. Returns whether it applied.

    A no-op (False) off Linux/glibc, e.g. on macOS or with musl. Call it once, early, in CPU training or
    inference processes; it does not help (or matter) for CUDA memory.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    applied = mallopt(_M_MMAP_THRESHOLD, threshold_bytes) == 1 and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    if applied:
        logger.debug("glibc malloc: mmap threshold %d bytes, trimming off", threshold_bytes)
    return applied
