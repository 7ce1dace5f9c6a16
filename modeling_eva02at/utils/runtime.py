"""Process-level settings: the device and compute dtype a run uses, and the CPU allocator and threads (not part of
the remote-code model files). torch is imported inside the functions, so command lines that only parse stay quick.

A 16-frame B/16 forward allocates and frees tensors of 10-25 MB several times per block. glibc's malloc serves
such sizes with fresh `mmap` calls and returns them to the OS on `free`, so every block pays page faults and page
zeroing for memory it used a moment before: about 70k minor faults per 4 blocks, ~14 % of the CPU time of a forward
on the project's 2-core reference machine (benchmarks/bench_encoder.py prints both settings). Keeping freed
memory in the heap removes them, at the price of holding the process's peak memory until it exits.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or CUDA when available, else the CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


DTYPE_CHOICES = ("auto", "float32", "bfloat16")
"""`--dtype` of the evaluation and search scripts and the app: the dtype the model is loaded and computes in; auto picks
bfloat16 where the hardware computes it natively."""


def native_bf16(device: torch.device) -> str | None:
    """What makes bfloat16 fast on `device` ("CUDA", "AMX", "AVX512-BF16"), or None where it is emulated (most
    older CPUs: several times slower than float32 there)."""
    import torch

    if device.type == "cuda":
        return "CUDA" if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        if getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)():
            return "AMX"
        if getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)():
            return "AVX512-BF16"
    return None


def resolve_dtype(choice: str, device: str | torch.device | None = None) -> tuple[torch.dtype | None, str]:
    """The compute dtype (None: float32) for `--dtype` `choice` on `device`, and a sentence saying which and why.

    auto is bfloat16 where `native_bf16` finds hardware support, else float32: bf16 embeddings agree with float32 ones
    to a cosine of about 0.9998 (docs/search_and_app.md), and a feature cache or index keeps the dtype in its key.
    """
    if choice not in DTYPE_CHOICES:
        raise ValueError(f"--dtype must be one of {', '.join(DTYPE_CHOICES)}, got {choice!r}")
    import torch

    device = resolve_device(device)
    if choice == "float32":
        return None, "float32 (--dtype float32)"
    if choice == "bfloat16":
        return torch.bfloat16, "bfloat16 (--dtype bfloat16)"
    support = native_bf16(device)
    if support:
        return torch.bfloat16, f"bfloat16 (--dtype auto: {support} on {device.type} computes it natively)"
    return None, f"float32 (--dtype auto: no native bfloat16 on this {device.type}; --dtype bfloat16 forces it)"


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
    logger.info(
        f"CPU training: {threads} torch thread(s) per process ({cores} cores, {local_processes} local "
        f"process(es), {num_workers} DataLoader worker(s) each; set OMP_NUM_THREADS to choose)"
    )
    return threads
