"""Feature cache: the embeddings of one evaluation, stored as a safetensors file keyed on everything they depend on.

The key holds what the embeddings depend on: the model (`model_fingerprint`: its weights by value, the config
fields its forward reads and its tokenizer, not where its files are or how they were saved, so the Hub repo pushed
from a training folder and its download share the training folder's cache), the annotation files (by path, size and
modification time), the video root, the frame count and processor settings, flip and the compute dtype. The file name
is a hash of the key and the full key is stored in the file's metadata and compared on load. Files are written
atomically.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from ..utils.files import atomic_path
from .encoding import EncodeSettings
from .fingerprint import canonical_json, fingerprint_identity, pixel_settings


logger = logging.getLogger(__name__)

FEATURE_CACHE_VERSION = 2
"""Part of every cache key: bumped when the way features are computed or keyed changes, so old cache files are not
reused (they are recomputed once, under a new name). 2: the model fingerprint of what changes the embeddings."""


class CachedFeatures(NamedTuple):
    """What :func:`cached_features` returns: the tensors, the cache file (None without a cache) and whether the
    tensors were loaded from it."""

    features: dict[str, torch.Tensor]
    path: str | None
    from_cache: bool


def feature_cache_path(cache_dir: str, key_dict: dict) -> str:
    """`<cache_dir>/features-<first 20 hex digits of the SHA-256 of the canonical JSON of key_dict>.safetensors`."""
    digest = hashlib.sha256(canonical_json(key_dict).encode()).hexdigest()[:20]
    return os.path.join(cache_dir, f"features-{digest}.safetensors")


def cached_features(
    cache_dir: str | None, key_dict: dict, compute_fn: Callable[[], dict[str, torch.Tensor]]
) -> CachedFeatures:
    """Load the tensors cached under `key_dict`, or compute them with `compute_fn()` and cache them.

    The file name is a hash of `key_dict` (:func:`feature_cache_path`); the full key is also stored in the file's
    metadata and compared on load, and a file that cannot be read or holds another key is recomputed (with a
    warning). Files are written to a temporary name in `cache_dir` and moved into place with `os.replace`, so an
    interrupted run never leaves a truncated cache file, and concurrent runs at worst compute twice.
    `cache_dir=None` just calls `compute_fn`.
    """
    if cache_dir is None:
        return CachedFeatures(compute_fn(), None, False)
    path = feature_cache_path(cache_dir, key_dict)
    key_json = canonical_json(key_dict)
    if os.path.isfile(path):
        try:
            with safe_open(path, framework="pt") as handle:
                stored_key = (handle.metadata() or {}).get("key")
                if stored_key == key_json:
                    features = {name: handle.get_tensor(name) for name in handle.keys()}
                    logger.info(f"loaded cached features from {path}")
                    return CachedFeatures(features, path, True)
            logger.warning(f"feature cache {path} was written for another key: recomputing")
        except (SafetensorError, OSError, ValueError) as error:
            logger.warning(f"feature cache {path} is unreadable ({error}): recomputing")
    features = compute_fn()
    with atomic_path(path, prefix=".features-") as temporary:
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in features.items()}
        save_file(tensors, temporary, metadata={"key": key_json})
    logger.info(f"cached features in {path}")
    return CachedFeatures(features, path, False)


def _cache_key(task: str, processor, settings: EncodeSettings, model_id, **data) -> dict:
    return {
        "version": FEATURE_CACHE_VERSION,
        "task": task,
        "model": fingerprint_identity(model_id),
        "pixels": pixel_settings(processor),
        **settings.cache_fields(),
        **data,
    }


def cached_task_features(task, processor, settings, cache_dir, model_id, data_key: dict, compute_fn) -> CachedFeatures:
    """The features of one evaluation task through :func:`cached_features` (no cache when `cache_dir` is None)."""
    if cache_dir is not None and model_id is None:
        raise ValueError("a feature cache needs model_id (e.g. model_fingerprint(model_path)) to tell models apart")
    key = _cache_key(task, processor, settings, model_id, **data_key) if cache_dir is not None else {}
    return cached_features(cache_dir, key, compute_fn)
