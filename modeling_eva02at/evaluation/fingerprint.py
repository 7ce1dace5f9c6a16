"""What identifies a model and the inputs of an evaluation or index: a fingerprint of the model's files by content,
and of the processor's pixel settings. The feature cache (`cache`) and the search index key their contents on them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re


PIXEL_SETTINGS = (
    "num_frames",
    "size",
    "crop_size",
    "do_resize",
    "do_center_crop",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
)
"""Processor attributes that change the pixels a model sees: part of every feature cache key and index header."""

# Files of a model folder whose content determines the features.
_MODEL_FILE_PATTERN = re.compile(r"(config\.json|.*\.safetensors|.*\.bin|tokenizer.*\.json|processor_config\.json)$")


def model_fingerprint(model_path: str, processor_path: str | None = None) -> dict:
    """What identifies a model for the feature cache and the search index: the content of each file of its folder
    that the embeddings depend on (weights, configuration, tokenizer and processor files; SHA-256 by file name), and
    of the processor's folder when given apart.

    Content, not place: a copied, moved or downloaded folder (another machine's, a Space's, the Hub repo pushed from
    it) is the same model, and a file rewritten in place is not. A Hub id stands for its cached snapshot when one is
    there (it is after loading), else for itself. Each part also records its `path` (a folder's absolute path, or the
    Hub id), which says where it was found; :func:`fingerprint_identity` leaves it out of comparisons.
    """
    identity = {"model": _folder_fingerprint(model_path)}
    if processor_path is not None:
        identity["processor"] = _folder_fingerprint(processor_path)
    return identity


def fingerprint_identity(fingerprint):
    """A model fingerprint without the places it records: what two fingerprints must share to be the same model."""
    if isinstance(fingerprint, dict):
        return {key: fingerprint_identity(value) for key, value in fingerprint.items() if key != "path"}
    return fingerprint


def _folder_fingerprint(path: str):
    folder = path if os.path.isdir(path) else _cached_snapshot(path)
    if folder is None:
        return path
    names = sorted(name for name in os.listdir(folder) if _MODEL_FILE_PATTERN.fullmatch(name))
    place = os.path.abspath(path) if os.path.isdir(path) else path
    return {"path": place, "files": {name: _content_digest(os.path.join(folder, name)) for name in names}}


def _cached_snapshot(repo_id: str) -> str | None:
    """The local snapshot folder of a Hub model id, if the Hub cache holds one (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (HFValidationError, LocalEntryNotFoundError, OSError, ValueError):
        return None


# JSON keys, at any depth, that record how a folder was saved (library version, auto classes, the Hub pipeline entry,
# the dtype to load in; the stored dtype is in the weights' digest), not what the model computes: a Hub repo assembled
# from a training folder adds or fills some of them.
_BOOKKEEPING_KEYS = frozenset(
    {"transformers_version", "auto_map", "custom_pipelines", "_name_or_path", "dtype", "torch_dtype"}
)
# tokenizer_config.json keys of the last call's settings, which transformers writes when a tokenizer that has been
# called is saved again (so a reloaded and re-saved tokenizer differs from the original only in these); the processor
# passes its own padding and truncation at every call, and the length cap is the text config's.
_TOKENIZER_CALL_KEYS = frozenset(
    {
        "max_length",
        "stride",
        "padding_side",
        "truncation_side",
        "truncation_strategy",
        "pad_token_type_id",
        "pad_to_multiple_of",
    }
)
_digests: dict[tuple, str] = {}  # (absolute path, size, mtime): SHA-256, so a process hashes each file version once


def _without_bookkeeping(value):
    if isinstance(value, dict):
        return {k: _without_bookkeeping(v) for k, v in value.items() if k not in _BOOKKEEPING_KEYS}
    if isinstance(value, list):
        return [_without_bookkeeping(v) for v in value]
    return value


def _content_digest(path: str) -> str:
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
            data = _without_bookkeeping(data)
            if os.path.basename(path) == "tokenizer_config.json" and isinstance(data, dict):
                data = {k: v for k, v in data.items() if k not in _TOKENIZER_CALL_KEYS}
            digest = hashlib.sha256(canonical_json(data).encode()).hexdigest()
        else:
            sha = hashlib.sha256()
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 24), b""):
                    sha.update(block)
            digest = sha.hexdigest()
        _digests[key] = digest
    return _digests[key]


def file_fingerprint(path: str | None) -> dict | None:
    """Absolute path, size and modification time of a file (None stays None)."""
    if path is None:
        return None
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def pixel_settings(processor) -> dict:
    """The processor settings that change the pixels a model sees (frame count, size, crop, normalisation)."""
    video = processor.image_processor
    return {key: getattr(video, key) for key in PIXEL_SETTINGS}


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces: equal values give equal strings (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


__all__ = [
    "PIXEL_SETTINGS",
    "canonical_json",
    "file_fingerprint",
    "fingerprint_identity",
    "model_fingerprint",
    "pixel_settings",
]
