"""Convert EVA02-CLIP / EVA02-AT checkpoints into a self-contained `Eva02AtModel` folder.

Four source layouts are understood (`SOURCES`):

- ``open_clip``: open_clip's ``EVA02-B-16`` / ``EVA02-L-14`` (``CustomTextCLIP``): ``visual.trunk.*`` is a timm ``Eva``
  (``cls_token`` (1, 1, D), ``pos_embed`` (1, 1 + P, D), ``patch_embed.proj``, ``blocks.N.{norm1, attn.{q,k,v}_proj
  | attn.qkv + q_bias / v_bias, attn.norm, attn.proj, norm2, mlp.{fc1_g, fc1_x, norm, fc2}}``, ``norm``, ``head``),
  ``text.*`` is the OpenAI CLIP text transformer (``token_embedding``, ``positional_embedding``,
  ``transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``, ``ln_final``,
  ``text_projection`` (W, E) used as ``x @ P``), plus ``logit_scale``. Text keys at the top level (open_clip's
  ``CLIP`` class) are accepted too.
- ``eva_clip``: the original EVA-CLIP release (``EVA02_CLIP_B_psz16_s8B.pt``): ``visual.*`` in EVA-CLIP's own names
  (``attn.q_bias`` / ``attn.v_bias``, ``attn.inner_attn_ln``, ``mlp.w1 / w2 / w3`` = ``fc1_g / fc1_x / fc2``,
  ``mlp.ffn_ln``) and the text tower at the top level.
- ``timm``: a timm ``eva02_*_clip_224`` vision-only state dict; the text tower keeps its random initialisation.
- ``eva02at``: an EVA02-AT / AVION training checkpoint (``{"state_dict": ...}``, keys possibly ``module.``-prefixed):
  ``visual.*`` in timm names plus ``temporal_embed`` (T, D) and ``conv1`` (the patch embedding as a Linear over
  (channel, row, col)-flattened patches, or a Conv2d), ``textual.*`` in open_clip text names, ``logit_scale``.

Layout facts the conversion relies on (checked against timm 1.0.31 / open_clip 3.3.0 and EVA-CLIP's ``rope.py``):
timm's EVA02 RoPE (``rope_type="cat"``, ``rotate_half=False``), EVA-CLIP's ``VisionRotaryEmbeddingFast`` and this
model all rotate *adjacent* channel pairs, rows in pairs [0, d/4) and columns in [d/4, d/2), bands
``theta^(-j / (d/4))`` on a grid rescaled to 16: the q / k channels need no permutation. The RoPE tables are
recomputed by the model, so the checkpoints' RoPE buffers are dropped.

Every key of the checkpoint is either mapped, or dropped because it is documented as redundant (`DROPPED_KEYS`),
or reported as unexpected; every tensor of the model is either loaded or initialised on purpose (new projection
heads, a zero temporal embedding for image checkpoints, the text tower of a vision-only checkpoint), and the result
says which. Checkpoints are read with ``torch.load(weights_only=True)`` or safetensors only: a pickle that would run
code is refused. The output folder is written next to its destination and renamed into place at the end, so a
failed conversion leaves nothing behind.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import pickle
import re
import shutil
import struct
import tempfile
import zipfile
from dataclasses import dataclass, field

import torch

from .. import register_auto_classes
from ..configuration_eva02at import Eva02AtConfig
from ..modeling_eva02at import Eva02AtModel, interpolate_temporal_embed
from ..utils.processor import match_processor_to_model


register_auto_classes()  # saved folders get auto_map and the remote-code files

logger = logging.getLogger(__name__)

SOURCES = ("open_clip", "eva_clip", "timm", "eva02at")

# Source keys that carry no information the model lacks, dropped without a report line each (their count is given).
# Patterns are matched against the canonical names (vision keys prefixed "vision.", text keys "text.").
DROPPED_KEYS = {
    r"vision\.(blocks\.\d+\.attn\.)?rope\..*": "RoPE tables (the model recomputes them)",
    r"(text\.)?attn_mask": "the text tower's causal mask buffer (built by the model)",
    r"vision\.blocks\.\d+\.attn\.k_bias": "the fused-qkv layout's all-zero key bias (checked to be zero)",
}

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


# ---------------------------------------------------------------------------------------------------------------------
# Reading checkpoints
# ---------------------------------------------------------------------------------------------------------------------


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
            raise CheckpointError(f"{path} is not a readable checkpoint (not a torch / safetensors file, or "
                                  f"damaged): {_refusal_reason(error)}") from error
        # weights_only refused to build an object: the message names the global the file asked for.
        raise CheckpointError(
            f"{path} cannot be loaded safely: it needs Python objects that weights_only loading refuses to build "
            f"({_refusal_reason(error)}). If you trust the file, re-save only its "
            "state dict (torch.save(ckpt['state_dict'], 'weights.pt')) or convert it to safetensors."
        ) from error
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile, struct.error, KeyError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or not a torch / safetensors file): "
                              f"{_first_line(error)}") from error
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
                key = key[len(prefix):]
        if key in state_dict:
            raise CheckpointError(f"{path}: two tensors map to {key!r} once the 'module.' prefixes are removed")
        state_dict[key] = value
    if skipped:
        logger.warning("Ignoring %d non-tensor entries of the state dict: %s", len(skipped), ", ".join(skipped[:10]))
    return state_dict


# ---------------------------------------------------------------------------------------------------------------------
# Source layouts -> canonical names (timm EVA names under "vision.", open_clip text names under "text.")
# ---------------------------------------------------------------------------------------------------------------------

# EVA-CLIP's block names -> timm's.
_EVA_CLIP_RENAMES = (
    (".attn.inner_attn_ln.", ".attn.norm."),
    (".mlp.w1.", ".mlp.fc1_g."),
    (".mlp.w2.", ".mlp.fc1_x."),
    (".mlp.w3.", ".mlp.fc2."),
    (".mlp.ffn_ln.", ".mlp.norm."),
)
_TEXT_TOP_LEVEL = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def _text_prefix(state_dict: dict[str, torch.Tensor], preferred: str) -> str | None:
    """The prefix of the text tower keys: `preferred` ("text." / "textual."), or "" for top-level keys."""
    if any(key.startswith(preferred) for key in state_dict):
        return preferred
    if any(key.startswith(_TEXT_TOP_LEVEL) for key in state_dict):
        return ""
    return None


def _guess_source(keys) -> str:
    keys = list(keys)
    if any(k.startswith("visual.trunk.") for k in keys):
        return "open_clip"
    if any(k.startswith("textual.") or k.startswith("visual.conv1") or k == "visual.temporal_embed" for k in keys):
        return "eva02at"
    if any(".attn.inner_attn_ln." in k or ".mlp.w1." in k for k in keys):
        return "eva_clip"
    if any(k.startswith("blocks.") for k in keys):
        return "timm"
    return "unknown"


def _to_canonical(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, tuple[str, torch.Tensor]]:
    """Rename the source keys to canonical names; values are (original key, tensor). Unknown keys are kept as
    "unexpected.<key>" so that they are reported rather than lost."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    vision_prefix = {"open_clip": "visual.trunk.", "eva_clip": "visual.", "timm": "", "eva02at": "visual."}[source]
    text_prefix = None
    if source in ("open_clip", "eva_clip"):
        text_prefix = _text_prefix(state_dict, "text.")
    elif source == "eva02at":
        text_prefix = _text_prefix(state_dict, "textual.")

    vision_keys = [k for k in state_dict if k.startswith(vision_prefix)] if vision_prefix else None
    has_vision = bool(vision_keys) if vision_prefix else any(k.startswith("blocks.") for k in state_dict)
    if not has_vision:
        guess = _guess_source(state_dict)
        hint = f"; it looks like a {guess!r} checkpoint" if guess not in ("unknown", source) else ""
        raise CheckpointError(
            f"no {source} vision tower found (no keys starting with {vision_prefix or 'blocks.'!r}){hint}. "
            f"First keys: {list(state_dict)[:8]}"
        )

    canonical: dict[str, tuple[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        if key == "logit_scale":
            name = "logit_scale"
        elif key.split(".")[-1] == "attn_mask" and key.count(".") <= 1:  # (text. / textual.)attn_mask buffer
            name = "text.attn_mask"
        elif text_prefix is not None and key.startswith(text_prefix) and (
            text_prefix or key.startswith(_TEXT_TOP_LEVEL)
        ):
            name = "text." + key[len(text_prefix):]
        elif source == "timm" or key.startswith(vision_prefix):
            name = "vision." + key[len(vision_prefix):]
            if source == "eva_clip":
                for old, new in _EVA_CLIP_RENAMES:
                    name = name.replace(old, new)
            elif source == "eva02at" and name.startswith("vision.conv1."):
                name = "vision.patch_embed.proj." + name[len("vision.conv1."):]
        else:
            name = "unexpected." + key
        if source == "timm" and name.startswith("vision.") and not _is_timm_vision_key(name):
            name = "unexpected." + key
        canonical[name] = (key, value)
    return canonical


def _is_timm_vision_key(name: str) -> bool:
    # A timm state dict has no prefix, so anything that is not an EVA ViT name is foreign (e.g. a whole CLIP).
    pattern = r"vision\.(cls_token|pos_embed|patch_embed\.|blocks\.|norm\.|fc_norm\.|head\.|rope\.)"
    return re.match(pattern, name) is not None


def _unfuse_attention(canonical: dict[str, tuple[str, torch.Tensor]], notes: list[str]) -> None:
    """timm's fused `attn.qkv` + `q_bias` / `v_bias` and EVA-CLIP's separate `q_bias` / `v_bias` -> q/k/v_proj."""
    fused = [n for n in canonical if re.fullmatch(r"vision\.blocks\.\d+\.attn\.qkv\.(weight|bias)", n)]
    if fused:
        notes.append(f"fused attn.qkv of {len({n.rsplit('.qkv.', 1)[0] for n in fused})} blocks split into q/k/v")
    for name in fused:
        origin, tensor = canonical.pop(name)
        stem, kind = name.rsplit(".qkv.", 1)
        if tensor.shape[0] % 3:
            raise CheckpointError(f"{origin} {tuple(tensor.shape)}: the fused q/k/v rows are not divisible by 3")
        q, k, v = tensor.chunk(3, dim=0)
        canonical[f"{stem}.q_proj.{kind}"] = (origin, q)
        canonical[f"{stem}.v_proj.{kind}"] = (origin, v)
        if kind == "weight":
            canonical[f"{stem}.k_proj.weight"] = (origin, k)
        else:
            canonical[f"{stem}.k_bias"] = (origin, k)  # checked to be zero below
    for name in [n for n in canonical if re.fullmatch(r"vision\.blocks\.\d+\.attn\.[qv]_bias", n)]:
        stem, which = name.rsplit(".", 1)
        target = f"{stem}.{which[0]}_proj.bias"
        if target in canonical:
            raise CheckpointError(f"both {canonical[name][0]} and {canonical[target][0]} give the {which[0]} bias")
        canonical[target] = canonical.pop(name)
    for name in [n for n in canonical if re.fullmatch(r"vision\.blocks\.\d+\.attn\.k_bias", n)]:
        origin, tensor = canonical[name]
        if tensor.float().abs().max().item() != 0.0:
            # EVA02's key projection has no bias; a non-zero one would change attention: refuse rather than drop it.
            raise CheckpointError(f"{origin} holds a non-zero key bias, which EVA02's attention (k without bias) lacks")


# ---------------------------------------------------------------------------------------------------------------------
# Canonical names -> Eva02AtModel names
# ---------------------------------------------------------------------------------------------------------------------

_V, _L, _T = "vision_model.", "vision_model.encoder.layers.", "text_model."

# (pattern on the canonical name, target template, transform); the transform gets (tensor, hidden size or None).
_VISION_RULES: list[tuple[str, str]] = [
    (r"cls_token", _V + "embeddings.cls_token"),
    (r"pos_embed", _V + "embeddings.pos_embed"),
    (r"temporal_embed", _V + "embeddings.temporal_embed"),
    (r"patch_embed\.proj\.(weight|bias)", _V + r"embeddings.patch_embedding.\1"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", _L + r"\1.layer_norm1.\2"),
    (r"blocks\.(\d+)\.attn\.(q_proj|k_proj|v_proj)\.(weight|bias)", _L + r"\1.self_attn.\2.\3"),
    (r"blocks\.(\d+)\.attn\.norm\.(weight|bias)", _L + r"\1.self_attn.inner_norm.\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", _L + r"\1.self_attn.out_proj.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", _L + r"\1.layer_norm2.\2"),
    (r"blocks\.(\d+)\.mlp\.(fc1_g|fc1_x|norm|fc2)\.(weight|bias)", _L + r"\1.mlp.\2.\3"),
    (r"norm\.(weight|bias)", _V + r"post_layernorm.\1"),
    (r"head\.(weight|bias)", r"visual_projection.\1"),
]
_TEXT_RULES: list[tuple[str, str]] = [
    (r"token_embedding\.weight", _T + "embeddings.token_embedding.weight"),
    (r"positional_embedding", _T + "embeddings.position_embedding.weight"),
    (r"transformer\.resblocks\.(\d+)\.ln_1\.(weight|bias)", _T + r"encoder.layers.\1.layer_norm1.\2"),
    (r"transformer\.resblocks\.(\d+)\.attn\.out_proj\.(weight|bias)", _T + r"encoder.layers.\1.self_attn.out_proj.\2"),
    (r"transformer\.resblocks\.(\d+)\.ln_2\.(weight|bias)", _T + r"encoder.layers.\1.layer_norm2.\2"),
    (r"transformer\.resblocks\.(\d+)\.mlp\.c_fc\.(weight|bias)", _T + r"encoder.layers.\1.mlp.fc1.\2"),
    (r"transformer\.resblocks\.(\d+)\.mlp\.c_proj\.(weight|bias)", _T + r"encoder.layers.\1.mlp.fc2.\2"),
    (r"ln_final\.(weight|bias)", _T + r"final_layer_norm.\1"),
    # Newer open_clip can store the projection as an nn.Linear (E, W): that is already our layout.
    (r"text_projection\.weight", "text_projection.weight"),
]
_IN_PROJ = r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)"


def _map_to_model(
    canonical: dict[str, tuple[str, torch.Tensor]],
) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str], dict[str, list[str]]]:
    """Returns (model state dict, {model key: source key}, unexpected source keys, {reason: dropped source keys})."""
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    unexpected: list[str] = []
    dropped: dict[str, list[str]] = {}

    def put(target: str, source_key: str, tensor: torch.Tensor) -> None:
        if target in mapped:
            raise CheckpointError(f"{source_key} and {origin[target]} both map to {target}")
        mapped[target] = tensor
        origin[target] = source_key

    for name, (source_key, tensor) in canonical.items():
        reason = next((why for pattern, why in DROPPED_KEYS.items() if re.fullmatch(pattern, name)), None)
        if reason is not None:
            dropped.setdefault(reason, []).append(source_key)
            continue
        if name == "logit_scale":
            put("logit_scale", source_key, tensor.reshape(()))
            continue
        if name.startswith("vision."):
            rules, local = _VISION_RULES, name[len("vision."):]
        elif name.startswith("text."):
            rules, local = _TEXT_RULES, name[len("text."):]
            if local == "text_projection":  # open_clip's (W, E) parameter, applied as x @ P
                put("text_projection.weight", source_key, tensor.T)
                continue
            match = re.fullmatch(_IN_PROJ, local)
            if match:  # nn.MultiheadAttention's stacked [q; k; v] rows
                layer, kind = match.groups()
                if tensor.shape[0] % 3:
                    raise CheckpointError(f"{source_key} has shape {tuple(tensor.shape)}: rows not divisible by 3")
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0)):
                    put(f"{_T}encoder.layers.{layer}.self_attn.{proj}.{kind}", source_key, part)
                continue
        else:
            unexpected.append(source_key)
            continue
        for pattern, template in rules:
            match = re.fullmatch(pattern, local)
            if match:
                put(match.expand(template), source_key, tensor)
                break
        else:
            unexpected.append(source_key)
    return mapped, origin, unexpected, dropped


# ---------------------------------------------------------------------------------------------------------------------
# Architecture read from the shapes, checked against the configuration
# ---------------------------------------------------------------------------------------------------------------------


def _layer_count(keys, prefix: str) -> int:
    indices = {int(m.group(1)) for k in keys if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def infer_architecture(mapped: dict[str, torch.Tensor], origin: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Sizes the checkpoint implies, as {"vision_config.hidden_size": (value, evidence), ...}."""
    found: dict[str, tuple[int, str]] = {}

    def evidence(key: str) -> str:
        return f"{origin[key]} {tuple(mapped[key].shape)}"

    def shape_of(key: str):
        return tuple(mapped[key].shape) if key in mapped else None

    if (shape := shape_of(_V + "embeddings.cls_token")) is not None:
        found["vision_config.hidden_size"] = (shape[-1], evidence(_V + "embeddings.cls_token"))
    patch_key = _V + "embeddings.patch_embedding.weight"
    if (shape := shape_of(patch_key)) is not None:
        if len(shape) == 2:  # AVION's Linear over (channel, row, col)-flattened patches: 3 * p * p inputs
            patch = math.isqrt(shape[1] // 3)
            if 3 * patch * patch != shape[1]:
                raise CheckpointError(f"{evidence(patch_key)}: {shape[1]} inputs are not 3 x p x p patch pixels")
            found["vision_config.num_channels"] = (3, evidence(patch_key))
        elif len(shape) == 4 and shape[2] == shape[3]:
            patch = shape[3]
            found["vision_config.num_channels"] = (shape[1], evidence(patch_key))
        else:
            raise CheckpointError(f"{evidence(patch_key)}: not a square patch embedding")
        found["vision_config.patch_size"] = (patch, evidence(patch_key))
        found["vision_config.hidden_size"] = found.get("vision_config.hidden_size", (shape[0], evidence(patch_key)))
    pos_key = _V + "embeddings.pos_embed"
    if pos_key in mapped and "vision_config.patch_size" in found:
        num_patches = mapped[pos_key].reshape(-1, mapped[pos_key].shape[-1]).shape[0] - 1
        grid = math.isqrt(num_patches)
        if grid * grid != num_patches:
            raise CheckpointError(f"{evidence(pos_key)}: {num_patches} patch positions do not form a square grid")
        found["vision_config.image_size"] = (grid * found["vision_config.patch_size"][0], evidence(pos_key))
    if layers := _layer_count(mapped, _L):
        found["vision_config.num_hidden_layers"] = (layers, f"{layers} blocks (last: {origin[_last(mapped, _L)]})")
    if (shape := shape_of(_L + "0.mlp.fc1_g.weight")) is not None:
        found["vision_config.intermediate_size"] = (shape[0], evidence(_L + "0.mlp.fc1_g.weight"))

    if (shape := shape_of(_T + "embeddings.token_embedding.weight")) is not None:
        found["text_config.vocab_size"] = (shape[0], evidence(_T + "embeddings.token_embedding.weight"))
        found["text_config.hidden_size"] = (shape[1], evidence(_T + "embeddings.token_embedding.weight"))
    if (shape := shape_of(_T + "embeddings.position_embedding.weight")) is not None:
        found["text_config.max_position_embeddings"] = (shape[0], evidence(_T + "embeddings.position_embedding.weight"))
    if layers := _layer_count(mapped, _T + "encoder.layers."):
        last = _last(mapped, _T + "encoder.layers.")
        found["text_config.num_hidden_layers"] = (layers, f"{layers} resblocks (last: {origin[last]})")
    if (shape := shape_of(_T + "encoder.layers.0.mlp.fc1.weight")) is not None:
        found["text_config.intermediate_size"] = (shape[0], evidence(_T + "encoder.layers.0.mlp.fc1.weight"))
    return found


def _last(keys, prefix: str) -> str:
    return max((k for k in keys if k.startswith(prefix)), key=lambda k: int(k[len(prefix):].split(".", 1)[0]))


def _check_against_config(
    found: dict[str, tuple[int, str]], config: Eva02AtConfig, config_name: str, path: str
) -> None:
    mismatches = []
    for name, (value, evidence) in found.items():
        sub, attr = name.split(".")
        expected = getattr(getattr(config, sub), attr)
        if value != expected:
            mismatches.append(f"  {name}: the checkpoint has {value} ({evidence}), {config_name} has {expected}")
    if mismatches:
        raise CheckpointError(
            f"{path} does not match the configuration {config_name}:\n" + "\n".join(mismatches)
            + "\n(is this a checkpoint of another model size? pick the matching --config)"
        )


def _check_head_dim(canonical: dict[str, tuple[str, torch.Tensor]], config: Eva02AtConfig, config_name: str) -> None:
    """EVA-CLIP's RoPE buffers are (positions, head_dim): the one place a checkpoint reveals its head count."""
    vision = config.vision_config
    head_dim = vision.hidden_size // vision.num_attention_heads
    for name, (source_key, tensor) in canonical.items():
        if re.fullmatch(r"vision\.rope\.freqs_(cos|sin)", name) and tensor.dim() == 2 and tensor.shape[-1] != head_dim:
            raise CheckpointError(
                f"{source_key} {tuple(tensor.shape)} implies attention heads of {tensor.shape[-1]} channels, but "
                f"{config_name} has {vision.num_attention_heads} heads of {head_dim}"
            )


# ---------------------------------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------------------------------


def resample_temporal_embed(temporal_embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """`temporal_embed` (T, D) linearly resampled to (num_frames, D) by the model's own interpolation, so that a
    checkpoint converted to T' frames and the unconverted one run at T' frames see the same embedding."""
    return interpolate_temporal_embed(temporal_embed, num_frames).contiguous()


@dataclass
class ConversionResult:
    """What `convert_checkpoint` did; `summary()` is the CLI's closing report."""

    output_dir: str
    source: str
    checkpoint: str
    config: Eva02AtConfig
    checkpoint_dtypes: list[str]
    num_source_tensors: int
    heads_kept: dict[str, bool]
    temporal: str
    logit_scale: str
    initialised: list[str] = field(default_factory=list)
    dropped: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def text_tower_converted(self) -> bool:
        return not any(key.startswith(_T) for key in self.initialised)

    def summary(self) -> str:
        vision, text = self.config.vision_config, self.config.text_config
        heads = ", ".join(f"{name} {'kept' if kept else 'NEW (random init)'}" for name, kept in self.heads_kept.items())
        lines = [
            f"Converted {self.source} checkpoint {self.checkpoint} ({self.num_source_tensors} tensors, "
            f"{'/'.join(self.checkpoint_dtypes)}) -> {self.output_dir}",
            f"  video tower: width {vision.hidden_size}, {vision.num_hidden_layers} layers, "
            f"{vision.num_attention_heads} heads, patch {vision.patch_size}, {vision.image_size} px, "
            f"{vision.num_frames} frames",
            f"  text tower: width {text.hidden_size}, {text.num_hidden_layers} layers"
            + ("" if self.text_tower_converted else "  -- NOT in the checkpoint: randomly initialised"),
            f"  projection: {self.config.projection_dim}-d; {heads}",
            f"  temporal_embed: {self.temporal}",
            f"  logit_scale: {self.logit_scale}",
        ]
        for reason, keys in self.dropped.items():
            lines.append(f"  dropped {len(keys)} source tensor{'s' if len(keys) > 1 else ''}: {reason}")
        if self.initialised:
            shown = ", ".join(self.initialised[:6])
            if len(self.initialised) > 6:
                shown += f", ... ({len(self.initialised)} in all)"
            lines.append(f"  initialised (not from the checkpoint): {shown}")
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"  files: {', '.join(self.files)}")
        return "\n".join(lines)


def convert_state_dict(
    state_dict: dict[str, torch.Tensor],
    source: str,
    config: Eva02AtConfig,
    *,
    projection_dim: int | None = None,
    num_frames: int | None = None,
    checkpoint_name: str = "<state dict>",
    config_name: str = "<config>",
    seed: int = 0,
) -> tuple[Eva02AtModel, ConversionResult]:
    """Map a source state dict onto a new `Eva02AtModel` (fp32); returns the model and a partly filled result.

    `config` gives the sizes the checkpoint must have (checked) and the head count; `projection_dim` and
    `num_frames` default to its values. Heads whose size equals `projection_dim` are kept, others are replaced by
    freshly initialised ones (seeded by `seed`).
    """
    config = Eva02AtConfig.from_dict(config.to_dict())  # a private copy: the caller's config is not modified
    projection_dim = projection_dim or config.projection_dim
    num_frames = num_frames or config.vision_config.num_frames
    notes: list[str] = []
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state_dict.values()})

    canonical = _to_canonical(state_dict, source)
    # Everything in float32 from here: fp16 checkpoints convert exactly, and interpolation runs at full precision.
    canonical = {k: (o, t.float() if t.is_floating_point() else t) for k, (o, t) in canonical.items()}
    _check_head_dim(canonical, config, config_name)
    _unfuse_attention(canonical, notes)
    mapped, origin, unexpected, dropped = _map_to_model(canonical)
    if unexpected:
        guess = _guess_source(state_dict)
        hint = f" (it looks like a {guess!r} checkpoint: check --source)" if guess not in ("unknown", source) else ""
        raise CheckpointError(
            f"{checkpoint_name}: {len(unexpected)} tensors of the {source} checkpoint have no place in Eva02AtModel"
            f"{hint}: " + ", ".join(unexpected[:20]) + (" ..." if len(unexpected) > 20 else "")
        )
    if source == "eva02at" and (key := _V + "embeddings.patch_embedding.weight") in mapped and mapped[key].dim() == 2:
        # AVION's Linear(3 * p * p, D) flattens patches as (channel, row, col), the order of a Conv2d weight.
        patch = math.isqrt(mapped[key].shape[1] // 3)
        mapped[key] = mapped[key].reshape(-1, 3, patch, patch)
    # timm keeps a batch axis on cls_token / pos_embed, AVION on neither: bring them to the model's shapes.
    if (key := _V + "embeddings.cls_token") in mapped:
        mapped[key] = mapped[key].reshape(1, 1, -1)
    for key in (_V + "embeddings.pos_embed", _V + "embeddings.temporal_embed"):
        if key in mapped:
            mapped[key] = mapped[key].reshape(-1, mapped[key].shape[-1])

    found = infer_architecture(mapped, origin)
    _check_against_config(found, config, config_name, checkpoint_name)

    # Projection heads: kept when their size is the requested one, else re-initialised (and the logit scale with them).
    heads_kept = {}
    for head, key in (("visual_projection", "visual_projection.weight"), ("text_projection", "text_projection.weight")):
        if key not in mapped:
            heads_kept[head] = False
            continue
        size = mapped[key].shape[0]
        heads_kept[head] = size == projection_dim
        if size != projection_dim:
            for suffix in ("weight", "bias"):
                if (dropped_key := f"{head}.{suffix}") in mapped:
                    mapped.pop(dropped_key)
                    dropped.setdefault(
                        f"the checkpoint's {size}-d {head} (replaced by a new {projection_dim}-d one)", []
                    ).append(origin[dropped_key])
    config.projection_dim = projection_dim
    config.text_config.projection_dim = projection_dim

    # Temporal embedding: zero for image checkpoints (the model is then EVA02-CLIP at T = 1), resampled if T differs.
    temporal_key = _V + "embeddings.temporal_embed"
    synthesised = []  # set here rather than by the model's random init, but still not from the checkpoint
    if temporal_key in mapped:
        source_frames = mapped[temporal_key].shape[0]
        if source_frames != num_frames:
            mapped[temporal_key] = resample_temporal_embed(mapped[temporal_key], num_frames)
            temporal = f"linearly interpolated from {source_frames} to {num_frames} frames"
        else:
            temporal = f"kept ({num_frames} frames)"
    elif "vision_config.hidden_size" in found:
        mapped[temporal_key] = torch.zeros(num_frames, found["vision_config.hidden_size"][0])
        synthesised.append(temporal_key)
        temporal = f"zeros for {num_frames} frames (image checkpoint: the model equals EVA02-CLIP at T = 1)"
    else:
        temporal = "missing"
    config.vision_config.num_frames = num_frames
    if num_frames > config.vision_config.max_num_frames:
        config.vision_config.max_num_frames = num_frames
    config.vision_config.validate_architecture()

    all_heads_kept = all(heads_kept.values())
    if "logit_scale" in mapped and not all_heads_kept:
        reason = "logit_scale (it belongs to the replaced projection heads)"
        dropped.setdefault(reason, []).append(origin["logit_scale"])
        mapped.pop("logit_scale")
    if "logit_scale" in mapped:
        logit_scale = f"kept ({mapped['logit_scale'].item():.4f}, scale {mapped['logit_scale'].exp().item():.2f})"
    else:
        init_value = config.logit_scale_init_value
        logit_scale = f"initialised to {init_value:.4f} (scale {math.exp(init_value):.2f})"

    # Build the model (seeded random init for whatever the checkpoint does not provide) and load.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Eva02AtModel(config)
    model.eval()
    expected = model.state_dict()
    misshaped = [
        f"{origin.get(k, k)} {tuple(t.shape)} -> {k} {tuple(expected[k].shape)}"
        for k, t in mapped.items() if k in expected and tuple(t.shape) != tuple(expected[k].shape)
    ]
    extra = [f"{origin.get(k, k)} -> {k}" for k in mapped if k not in expected]
    if misshaped or extra:
        raise CheckpointError(
            f"{checkpoint_name} does not fit Eva02AtModel({config_name}):"
            + "".join(f"\n  wrong shape: {line}" for line in misshaped)
            + "".join(f"\n  no such parameter: {line}" for line in extra)
        )
    missing = [k for k in expected if k not in mapped]
    allowed = _allowed_missing(source, heads_kept, expected)
    not_allowed = [k for k in missing if k not in allowed]
    if not_allowed:
        raise CheckpointError(
            f"{checkpoint_name}: the {source} checkpoint lacks {len(not_allowed)} tensors the model needs: "
            + ", ".join(not_allowed[:20]) + (" ..." if len(not_allowed) > 20 else "")
        )
    model.load_state_dict(mapped, strict=False)
    if source == "timm":
        notes.append("vision-only checkpoint: the text tower and text_projection are randomly initialised, not trained")
        logger.warning("The timm checkpoint has no text tower: text_model.* keeps its random initialisation")
    for head, kept in heads_kept.items():
        if not kept:
            logger.warning("%s: new %d-d head, randomly initialised", head, projection_dim)

    result = ConversionResult(
        output_dir="",
        source=source,
        checkpoint=checkpoint_name,
        config=config,
        checkpoint_dtypes=dtypes,
        num_source_tensors=len(state_dict),
        heads_kept=heads_kept,
        temporal=temporal,
        logit_scale=logit_scale,
        initialised=synthesised + missing,
        dropped=dropped,
        notes=notes,
    )
    return model, result


def _allowed_missing(source: str, heads_kept: dict[str, bool], expected) -> set[str]:
    allowed = {"logit_scale"}
    if not heads_kept["visual_projection"]:
        allowed |= {"visual_projection.weight", "visual_projection.bias"}
    if not heads_kept["text_projection"]:
        allowed.add("text_projection.weight")
    if source == "timm":
        allowed |= {k for k in expected if k.startswith(_T)}
    return allowed


# ---------------------------------------------------------------------------------------------------------------------
# Output folder
# ---------------------------------------------------------------------------------------------------------------------


def _check_output(output_dir: str, overwrite: bool) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output {output_dir} exists and is not a folder")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise ValueError(f"output folder {output_dir} exists and is not empty; pass overwrite=True (--overwrite)")


def _publish(staging: str, output_dir: str, overwrite: bool) -> None:
    """Move the finished staging folder into place (same file system: a rename)."""
    _check_output(output_dir, overwrite)
    if os.path.isdir(output_dir):
        if os.listdir(output_dir):
            backup = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.old-", dir=os.path.dirname(output_dir))
            os.rmdir(backup)
            os.rename(output_dir, backup)
            os.rename(staging, output_dir)
            shutil.rmtree(backup, ignore_errors=True)
            return
        os.rmdir(output_dir)
    os.rename(staging, output_dir)


def _makedirs(path: str) -> list[str]:
    """os.makedirs that returns the folders it created (outermost first), to remove them again on failure."""
    created = []
    while path and not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    for folder in reversed(created):
        os.mkdir(folder)
    return list(reversed(created))


def _save_processor(config_dir: str, staging: str, config: Eva02AtConfig) -> list[str]:
    """Copy the processor (video processor + CLIP tokenizer) of `config_dir` into `staging`, if it has one, set to
    the converted model's frame count and image size."""
    if not os.path.isfile(os.path.join(config_dir, "processor_config.json")) or not os.path.isfile(
        os.path.join(config_dir, "tokenizer.json")
    ):
        logger.warning("%s has no processor files: the output has no processor", config_dir)
        return [f"no processor: {config_dir} has no processor_config.json / tokenizer.json"]
    from transformers import AutoTokenizer

    from ..processing_eva02at import Eva02AtProcessor
    from ..video_processing_eva02at import Eva02AtVideoProcessor

    # Built from the package's classes rather than AutoProcessor: the config folder holds no processing code, so
    # AutoProcessor would ask for trust_remote_code (and prompt on a terminal).
    video_processor = Eva02AtVideoProcessor.from_pretrained(config_dir)
    notes = match_processor_to_model(video_processor, config, resize=True)
    processor = Eva02AtProcessor(image_processor=video_processor, tokenizer=AutoTokenizer.from_pretrained(config_dir))
    Eva02AtVideoProcessor.register_for_auto_class("AutoImageProcessor")
    Eva02AtProcessor.register_for_auto_class("AutoProcessor")
    processor.save_pretrained(staging)
    return notes


def convert_checkpoint(
    source: str,
    checkpoint: str | os.PathLike,
    config_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    projection_dim: int | None = None,
    num_frames: int | None = None,
    overwrite: bool = False,
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
    save_processor: bool = True,
) -> ConversionResult:
    """Convert `checkpoint` (layout `source`) into a complete model folder at `output_dir`.

    The folder holds config.json (with auto_map), model.safetensors, the remote-code .py files and, when `config_dir`
    has them, the processor and tokenizer files: `AutoModel.from_pretrained(output_dir, trust_remote_code=True)`
    loads it offline. Nothing is written at `output_dir` unless the whole conversion succeeds.
    """
    checkpoint, config_dir, output_dir = os.fspath(checkpoint), os.fspath(config_dir), os.fspath(output_dir)
    output_dir = os.path.abspath(output_dir)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    _check_output(output_dir, overwrite)  # fail before reading a multi-GB checkpoint
    config = Eva02AtConfig.from_pretrained(config_dir)

    state_dict = load_checkpoint(checkpoint)
    logger.info("Mapping %d tensors from the %s layout", len(state_dict), source)
    model, result = convert_state_dict(
        state_dict, source, config, projection_dim=projection_dim, num_frames=num_frames,
        checkpoint_name=checkpoint, config_name=config_dir, seed=seed,
    )
    del state_dict

    created = _makedirs(os.path.dirname(output_dir))
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=os.path.dirname(output_dir))
    try:
        logger.info("Writing the model to %s", staging)
        model.to(dtype).save_pretrained(staging)
        if save_processor:
            result.notes += _save_processor(config_dir, staging, result.config)
        _verify_saved(staging, model)
        result.files = sorted(os.listdir(staging))
        # mkdtemp makes a private (0700) folder: give the result the permissions a plain mkdir would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)
        _publish(staging, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
    result.output_dir = output_dir
    logger.info("Done: %s", output_dir)
    return result


def _verify_saved(folder: str, model: Eva02AtModel) -> None:
    """Re-read the written weights and compare them bit for bit with the converted model."""
    from safetensors.torch import load_file

    files = [name for name in os.listdir(folder) if name.endswith(".safetensors")]
    saved: dict[str, torch.Tensor] = {}
    for name in files:
        saved.update(load_file(os.path.join(folder, name)))
    expected = model.state_dict()
    differing = [k for k, v in expected.items() if k not in saved or not torch.equal(saved[k], v)]
    if differing:
        raise RuntimeError(f"the written weights differ from the converted model: {differing[:10]}")


__all__ = [
    "DROPPED_KEYS",
    "SOURCES",
    "CheckpointError",
    "ConversionResult",
    "convert_checkpoint",
    "convert_state_dict",
    "infer_architecture",
    "load_checkpoint",
    "resample_temporal_embed",
]
