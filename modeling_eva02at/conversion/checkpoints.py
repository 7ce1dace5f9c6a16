"""Reading checkpoint files safely into a flat ``{name: tensor}`` state dict.

The format is sniffed from the first bytes (a torch zip archive, a safetensors header, or a legacy pickle).
safetensors files are read with safetensors; everything else with ``torch.load(weights_only=True)``, whose restricted
unpickler rebuilds tensors and plain containers only (plus the data-only classes of `_safe_globals`): a pickle that
would run code is refused with a `CheckpointError` that names the file and the Python global it asked for. Training
wrappers (``{"state_dict": ...}``) and DDP / ``torch.compile`` prefixes are removed.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
import struct
import zipfile

import torch


logger = logging.getLogger(__name__)

# Wrappers that training scripts put around the state dict, tried in this order.
_WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict")
# Prefixes added by DistributedDataParallel and torch.compile.
_PREFIXES = ("module.", "_orig_mod.")


def _safe_globals() -> list:
    """Data-only classes that training checkpoints pickle next to their tensors, allowed for weights_only loading:
    argparse.Namespace (AVION stores its args) and numpy scalars / dtypes (metrics such as best_acc1)."""
    allowed: list = [argparse.Namespace]
    try:
        import numpy as np

        scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
        # Checkpoints written under numpy 1 name the scalar reconstructor numpy.core.multiarray.scalar.
        allowed += [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype]
        allowed += [type(np.dtype(name)) for name in ("float16", "float32", "float64", "int32", "int64", "bool")]
    except (ImportError, AttributeError):
        pass
    return allowed


class CheckpointError(ValueError):
    """The checkpoint cannot be read, is not of the requested layout, or does not fit the configuration."""


def _sniff_format(path: str) -> str:
    """'zip' (torch.save), 'safetensors' or 'pickle' (legacy torch.save / anything else), from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if not head:
        raise CheckpointError(f"{path} is empty")
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 8 + header_len <= os.path.getsize(path):
            return "safetensors"
    return "pickle"


def load_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely into a flat {name: tensor} dict (wrappers and `module.` prefixes removed).

    .safetensors files are read with safetensors; everything else with `torch.load(weights_only=True)`, which only
    rebuilds tensors and plain containers (plus `argparse.Namespace`, which AVION stores next to its weights). A
    truncated or foreign file, or a pickle that asks for other code, raises `CheckpointError` naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file")
    fmt = _sniff_format(path)
    logger.info("Reading %s (%s format, %.1f MB)", path, fmt, os.path.getsize(path) / 2**20)
    try:
        if fmt == "safetensors":
            from safetensors.torch import load_file

            obj = load_file(path, device="cpu")
        else:
            with torch.serialization.safe_globals(_safe_globals()):
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=fmt == "zip")
    except pickle.UnpicklingError as error:
        if "Unsupported global" not in str(error):  # not a pickle at all, or a damaged one
            raise CheckpointError(
                f"{path} is not a readable checkpoint (not a torch / safetensors file, or "
                f"damaged): {_refusal_reason(error)}"
            ) from error
        # weights_only refused to build an object: the message names the global the file asked for.
        raise CheckpointError(
            f"{path} cannot be loaded safely: it needs Python objects that weights_only loading refuses to build "
            f"({_refusal_reason(error)}). If you trust the file, re-save only its "
            "state dict (torch.save(ckpt['state_dict'], 'weights.pt')) or convert it to safetensors."
        ) from error
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, struct.error, KeyError) as error:
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or not a torch / safetensors file): {_first_line(error)}"
        ) from error
    except Exception as error:  # safetensors raises its own SafetensorError, and torch may raise others on junk
        raise CheckpointError(
            f"{path} is not a readable checkpoint: {type(error).__name__}: {_first_line(error)}"
        ) from error
    return _flatten_state_dict(obj, path)


def _refusal_reason(error: BaseException) -> str:
    """The useful part of torch's weights_only refusal: which global the pickle asked for."""
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if match:
        return f"it asks for the Python global {match.group(1)}"
    match = re.search(r"WeightsUnpickler error:\s*([^\n]+)", str(error))
    return match.group(1).strip() if match else _first_line(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _flatten_state_dict(obj, path: str) -> dict[str, torch.Tensor]:
    """Unwrap {"state_dict": ...}-style containers, strip DDP / compile prefixes, keep the tensors."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} does not hold a state dict (a dict of tensors) but a {type(obj).__name__}")
    # A flat state dict never holds a dict value, so a dict under a wrapper name is the state dict (training
    # checkpoints also keep tensors such as best_acc1 at the top level, next to "state_dict").
    while (wrapper := next((key for key in _WRAPPER_KEYS if isinstance(obj.get(key), dict)), None)) is not None:
        logger.info("Using the checkpoint's %r entry", wrapper)
        obj = obj[wrapper]
    if not any(isinstance(value, torch.Tensor) for value in obj.values()):
        raise CheckpointError(
            f"{path} holds no tensors; top-level keys: {sorted(map(str, obj))[:12]} "
            f"(expected a state dict, possibly under one of {list(_WRAPPER_KEYS)})"
        )

    state_dict, skipped = {}, []
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            skipped.append(str(key))
            continue
        for prefix in _PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        if key in state_dict:
            raise CheckpointError(f"{path}: two tensors map to {key!r} once the 'module.' prefixes are removed")
        state_dict[key] = value
    if skipped:
        logger.warning("Ignoring %d non-tensor entries of the state dict: %s", len(skipped), ", ".join(skipped[:10]))
    return state_dict


__all__ = ["CheckpointError", "load_checkpoint"]
