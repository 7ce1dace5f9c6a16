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


def set_cpu_threads(num_workers: int = 0) -> int | None:
    """Give this process's torch ops the cores that its node's other processes and its DataLoader workers leave.

    torch uses every core by default. A CPU training process shares the machine with its DataLoader workers (each
    busy decoding video) and with the other ranks of its node, and oversubscribed threads wait on each other: on the
    2-core reference machine the demo's step took 0.48 s with 2 threads next to one decoding worker, 0.33 s with 1.
    Returns the thread count set, or None when the user chose one (`OMP_NUM_THREADS` is set) and it is left alone.
    """
    import os

    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        return None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = max(1, cores // max(1, local_processes) - num_workers)
    torch.set_num_threads(threads)
    logger.info(f"CPU training: {threads} torch thread(s) per process ({cores} cores, {local_processes} local "
                f"process(es), {num_workers} DataLoader worker(s) each; set OMP_NUM_THREADS to choose)")  # fmt: skip
    return threads
