"""What identifies a model and the inputs of an evaluation or index: a fingerprint of exactly what changes a model's
embeddings, and the processor's pixel settings. The feature cache (`cache`), the search index and the eval reports
(`results`, checked by the Hub push) key their contents on them.

A model fingerprint covers three things, each by content:

* **the weights**: every tensor's values, by tensor name, whatever files hold them (one file or shards, safetensors
  or .bin, any file names, any safetensors metadata). Floating-point tensors are hashed as float32, the dtype the
  package computes in unless told otherwise: a float32 copy of bfloat16 weights is the same model, weights rounded
  to bfloat16 are not (their values changed). The dtype the embeddings were *computed* in is not part of the model:
  the index header and the cache key record it apart (`EncodeSettings.cache_fields`).
* **the configuration fields the forward reads** (:func:`forward_config`): the fields the config classes declare
  (architecture sizes, RoPE settings, frame counts, projection and logit-scale settings, the text tower's activation
  and special token ids), with their defaults filled in; not what only says how a folder was saved
  (`transformers_version`, `dtype`, `architectures`, `auto_map`, `custom_pipelines`, `use_cache`, ...).
* **the tokenizer** (:func:`tokenizer_digest`): its vocabulary, merges, normalisation, pre-tokenisation, added and
  special tokens, the length it truncates at and the sides it pads and truncates on; not its save-time bookkeeping
  (`local_files_only`, `is_local`, `name_or_path`, the last call's `max_length`, ...).

So a training output folder, the Hub repo `examples/push_to_hub.py` assembles from it, and that repo's download,
saved again online or offline, are one model; one changed weight or one changed architecture field is another. The
pixel settings are not part of it: the index header and the cache key take them from the processor in use
(:func:`pixel_settings`), after `--num-frames`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os


# The weight files transformers' from_pretrained loads, in the order it prefers them: the first one present is used.
_WEIGHT_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)

# tokenizer.json sections that decide which ids a text becomes (not "truncation" / "padding", the last call's
# settings, which the processor passes anew at every call, nor "decoder", which only turns ids back into text).
_TOKENIZER_JSON_KEYS = ("normalizer", "pre_tokenizer", "model", "post_processor", "added_tokens")
# tokenizer_config.json settings that change the ids or their positions, with the value a missing key means. An
# allow-list: transformers writes ever more loading bookkeeping here (local_files_only, is_local, processor_class,
# auto_map, the last call's max_length and truncation_strategy), and none of it changes a token.
_TOKENIZER_SETTINGS = {
    "bos_token": None,
    "eos_token": None,
    "unk_token": None,
    "pad_token": None,
    "sep_token": None,
    "cls_token": None,
    "mask_token": None,
    "additional_special_tokens": None,
    "extra_special_tokens": None,
    "added_tokens_decoder": None,
    "model_max_length": None,  # the processor truncates at min(model_max_length, 77)
    "padding_side": "right",  # left padding moves the tokens to other positions
    "truncation_side": "right",
    "do_lower_case": None,
    "add_prefix_space": None,
}

_digests: dict[tuple, str] = {}  # (what, (absolute path, size, mtime) of each file): digest; each version hashed once


def model_fingerprint(model_path: str, processor_path: str | None = None) -> dict:
    """What identifies a model for the feature cache, the search index and the eval reports: its weights, the
    configuration fields its forward reads and its tokenizer, each by content (see the module docstring).

    Returns ``{"model": {"path", "weights", "config", "tokenizer"}}``: `weights` and `tokenizer` are SHA-256 hex
    digests, `config` the forward's fields (:func:`forward_config`); a part the folder lacks is left out. `path` is
    the folder's absolute path (or the Hub id) the model was found at, for messages; :func:`fingerprint_identity`
    leaves it out of comparisons. With `processor_path` (a processor kept apart from the model), the tokenizer is read
    from there and ``{"processor": {"path"}}`` records where.

    A Hub id stands for its cached snapshot when one is there (it is after loading); an id not in the local cache is
    recorded as itself, ``{"model": "owner/name"}``: it cannot be checked.
    """
    model_folder = _local_folder(model_path)
    if model_folder is None:
        fingerprint = {"model": model_path}
    else:
        model = {"path": _place(model_path)}
        weights = weights_digest(model_folder)
        if weights is not None:
            model["weights"] = weights
        if os.path.isfile(os.path.join(model_folder, "config.json")):
            config = _cached("config", [os.path.join(model_folder, "config.json")], _read_config)
            model["config"] = copy.deepcopy(config)  # the cached dict stays as read
        fingerprint = {"model": model}
    tokenizer_folder = model_folder if processor_path is None else _local_folder(processor_path)
    tokenizer = tokenizer_digest(tokenizer_folder) if tokenizer_folder is not None else None
    if isinstance(fingerprint["model"], dict) and tokenizer is not None:
        fingerprint["model"]["tokenizer"] = tokenizer
    if processor_path is not None:
        fingerprint["processor"] = {"path": _place(processor_path)}
    return fingerprint


def fingerprint_identity(fingerprint):
    """A model fingerprint without the places it records: what two fingerprints must share to be the same model."""
    if isinstance(fingerprint, dict):
        identity = {key: fingerprint_identity(value) for key, value in fingerprint.items() if key != "path"}
        return {key: value for key, value in identity.items() if value != {}}  # a part that only said where
    return fingerprint


# -- the three parts --------------------------------------------------------------------------------------------------


def forward_config(config) -> dict:
    """The fields of `config` (an `Eva02AtConfig`, or a sub-config) that the model's forward can read: every field
    its class declares beyond `PreTrainedConfig`'s own, sub-configs as nested dicts, defaults filled in.

    An allow-list derived from the config classes rather than a list of keys to ignore: transformers and the
    Trainer keep adding save-time keys (`use_cache`, `transformers_version`, `dtype`, `architectures`, `auto_map`,
    `custom_pipelines`, ...), and a deny-list that misses one refuses the same model. A field added to a config
    class for the forward is declared there, so it is covered without touching this module; the attributes the
    modeling code reads are checked against this list by `tests/test_seams_fingerprint.py`.
    """
    from transformers import PreTrainedConfig

    bookkeeping = {field.name for field in dataclasses.fields(PreTrainedConfig)}
    values = {}
    for field in dataclasses.fields(config):
        if field.name in bookkeeping:
            continue
        value = getattr(config, field.name)
        values[field.name] = forward_config(value) if isinstance(value, PreTrainedConfig) else value
    return values


def weights_digest(folder: str) -> str | None:
    """SHA-256 of the weights in `folder` by tensor name and value (floats as float32), whatever files hold them;
    None when the folder has no weights. Streams one tensor at a time: about the cost of hashing the files."""
    files = _weight_files(folder)
    return _cached("weights", files, _hash_weights) if files else None


def tokenizer_digest(folder: str) -> str | None:
    """SHA-256 of what decides the token ids of a text in the tokenizer saved in `folder`: tokenizer.json's
    normaliser, pre-tokeniser, model (vocabulary and merges), post-processor and added tokens (or, for a folder
    without tokenizer.json, the slow tokenizer's vocab.json and merges.txt), and the token settings of
    tokenizer_config.json (special tokens, length limit, padding and truncation sides). None without tokenizer
    files."""
    names = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
    paths = [os.path.join(folder, name) for name in names if os.path.isfile(os.path.join(folder, name))]
    return _cached("tokenizer", paths, _hash_tokenizer) if paths else None


def _read_config(paths: list[str]) -> dict:
    from ..configuration_eva02at import Eva02AtConfig

    with open(paths[0], encoding="utf-8") as handle:
        data = json.load(handle)
    try:
        config = Eva02AtConfig.from_dict(data)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{paths[0]} is not an EVA02-AT configuration ({error})") from None
    return forward_config(config)


def _weight_files(folder: str) -> list[str]:
    for name in _WEIGHT_FILES:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            if name.endswith(".index.json"):
                with open(path, encoding="utf-8") as handle:
                    shards = sorted(set(json.load(handle)["weight_map"].values()))
                return [os.path.join(folder, shard) for shard in shards]
            return [path]
    return []


def _hash_weights(paths: list[str]) -> str:
    import torch
    from safetensors import safe_open

    digests = {}  # tensor name: SHA-256 of its dtype, shape and values; combined in name order (sharding-proof)

    def add(name: str, tensor: torch.Tensor) -> None:
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        sha = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        sha.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())
        digests[name] = sha.hexdigest()

    for path in paths:
        if path.endswith(".safetensors"):
            with safe_open(path, framework="pt") as handle:
                for name in handle.keys():
                    add(name, handle.get_tensor(name))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            for name, tensor in state.items():
                add(name, tensor)
    return _sha256_json(digests)


def _hash_tokenizer(paths: list[str]) -> str:
    files = {os.path.basename(path): path for path in paths}
    parts = {}
    if "tokenizer.json" in files:
        with open(files["tokenizer.json"], encoding="utf-8") as handle:
            data = json.load(handle)
        parts["tokenizer.json"] = {key: data.get(key) for key in _TOKENIZER_JSON_KEYS}
    else:  # a slow tokenizer's files
        for name in ("vocab.json", "merges.txt"):
            if name in files:
                parts[name] = file_sha256(files[name])
    if "tokenizer_config.json" in files:
        with open(files["tokenizer_config.json"], encoding="utf-8") as handle:
            data = json.load(handle)
        settings = {key: data.get(key, default) for key, default in _TOKENIZER_SETTINGS.items()}
        parts["tokenizer_config.json"] = {key: value for key, value in settings.items() if value is not None}
    return _sha256_json(parts)


# -- helpers ----------------------------------------------------------------------------------------------------------


def _cached(what: str, paths: list[str], compute):
    """compute(paths), once per process for each version (size, modification time) of the files."""
    stats = [os.stat(path) for path in paths]
    key = (what, tuple((os.path.abspath(p), s.st_size, s.st_mtime_ns) for p, s in zip(paths, stats)))
    if key not in _digests:
        _digests[key] = compute(paths)
    return _digests[key]


def _local_folder(path: str) -> str | None:
    """`path` if it is a folder, else the local snapshot folder of the Hub id `path` if the cache holds one."""
    return path if os.path.isdir(path) else _cached_snapshot(path)


def _place(path: str) -> str:
    return os.path.abspath(path) if os.path.isdir(path) else path


def _cached_snapshot(repo_id: str) -> str | None:
    """The local snapshot folder of a Hub model id, if the Hub cache holds one (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except (HFValidationError, LocalEntryNotFoundError, OSError, ValueError):
        return None


def _sha256_json(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def file_sha256(path: str) -> str:
    """SHA-256 hex digest of a file's bytes, read in 16 MiB blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 24), b""):
            sha.update(block)
    return sha.hexdigest()


def file_fingerprint(path: str | None) -> dict | None:
    """Absolute path, size and modification time of a file (None stays None)."""
    if path is None:
        return None
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def pixel_settings(processor) -> dict:
    """The processor settings that change the pixels a model sees (frame count, size, crop, normalisation)."""
    from ..video_processing_eva02at import PIXEL_SETTINGS  # the processor's own list (it imports torch)

    video = processor.image_processor
    return {key: getattr(video, key) for key in PIXEL_SETTINGS}


def canonical_json(value) -> str:
    """JSON with sorted keys and no spaces: equal values give equal strings (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# -- what differs, in words -------------------------------------------------------------------------------------------

_DIGESTS = {
    "weights": "the weights differ (another checkpoint, or the same one trained further)",
    "tokenizer": "the tokenizer differs (vocabulary, merges, normalisation, special tokens or length limit)",
}
_SETTING_NOTES = {
    "dtype": "the dtype the embeddings were computed in: bfloat16 and float32 embeddings differ slightly (--dtype)",
    "flip": "horizontal-flip test-time augmentation (--flip)",
}


def describe_differences(stored: dict, current: dict, stored_name: str, current_name: str, limit: int = 8):
    """What differs between two fingerprints (or two index headers, which hold one), one line each in words, the
    places left out: ``the weights differ (...)``, ``model config vision_config.num_frames: index 2, this run 4``,
    ``pixels.num_frames: index 2, this run 4 (the processor's pixel settings)``."""
    stored_flat = _flatten(json.loads(canonical_json(fingerprint_identity(stored))))
    current_flat = _flatten(json.loads(canonical_json(fingerprint_identity(current))))
    keys = [
        key for key in dict.fromkeys([*stored_flat, *current_flat]) if stored_flat.get(key) != current_flat.get(key)
    ]
    lines = []
    for key in keys:
        stored_value, current_value = stored_flat.get(key, "(absent)"), current_flat.get(key, "(absent)")
        parts = key.split(".")
        if parts[-1] in _DIGESTS and "(absent)" not in (stored_value, current_value):
            lines.append(
                f"{_DIGESTS[parts[-1]]} (SHA-256 {stored_name} {str(stored_value)[:12]}..., {current_name} "
                f"{str(current_value)[:12]}...)"
            )
            continue
        name = f"model config {'.'.join(parts[parts.index('config') + 1 :])}" if "config" in parts else key
        line = f"{name}: {stored_name} {stored_value!r}, {current_name} {current_value!r}"
        note = _SETTING_NOTES.get(key) or ("the processor's pixel settings" if parts[0] == "pixels" else None)
        lines.append(f"{line} ({note})" if note else line)
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more"]
    return lines


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


__all__ = [
    "canonical_json",
    "describe_differences",
    "file_fingerprint",
    "file_sha256",
    "fingerprint_identity",
    "forward_config",
    "model_fingerprint",
    "pixel_settings",
    "tokenizer_digest",
    "weights_digest",
]
