"""Source checkpoint layouts -> `Eva02AtModel` parameter names, and the architecture the tensors' shapes imply.

Four source layouts are understood (`modeling_eva02at.conversion.SOURCES`):

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
or reported as unexpected (`map_state_dict` refuses the checkpoint then). Keys go through a canonical naming first
(timm's EVA names under ``vision.``, open_clip's text names under ``text.``), so one set of rules serves every layout.
"""

from __future__ import annotations

import math
import re

import torch

from ..configuration_eva02at import Eva02AtConfig
from . import SOURCES
from .checkpoints import CheckpointError


# Source keys that carry no information the model lacks, dropped without a report line each (their count is given).
# Patterns are matched against the canonical names (vision keys prefixed "vision.", text keys "text.").
DROPPED_KEYS = {
    r"vision\.(blocks\.\d+\.attn\.)?rope\..*": "RoPE tables (the model recomputes them)",
    r"(text\.)?attn_mask": "the text tower's causal mask buffer (built by the model)",
    r"vision\.blocks\.\d+\.attn\.k_bias": "the fused-qkv layout's all-zero key bias (checked to be zero)",
}


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
        elif (
            text_prefix is not None and key.startswith(text_prefix) and (text_prefix or key.startswith(_TEXT_TOP_LEVEL))
        ):
            name = "text." + key[len(text_prefix) :]
        elif source == "timm" or key.startswith(vision_prefix):
            name = "vision." + key[len(vision_prefix) :]
            if source == "eva_clip":
                for old, new in _EVA_CLIP_RENAMES:
                    name = name.replace(old, new)
            elif source == "eva02at" and name.startswith("vision.conv1."):
                name = "vision.patch_embed.proj." + name[len("vision.conv1.") :]
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
            rules, local = _VISION_RULES, name[len("vision.") :]
        elif name.startswith("text."):
            rules, local = _TEXT_RULES, name[len("text.") :]
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


def map_state_dict(
    state_dict: dict[str, torch.Tensor],
    source: str,
    config: Eva02AtConfig,
    notes: list[str],
    *,
    checkpoint_name: str = "<state dict>",
    config_name: str = "<config>",
) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, list[str]]]:
    """Rename, split and reshape the tensors of a `source` state dict into `Eva02AtModel`'s names and shapes (fp32).

    Returns ``(mapped, origin, dropped)``: the model's ``{name: tensor}``, ``{model name: source key}`` and
    ``{reason: dropped source keys}``. A line is appended to `notes` for each layout change worth reporting (a fused
    q/k/v split). Sizes are not checked against `config` here (see :func:`check_against_config`), except the head
    width that only EVA-CLIP's RoPE buffers reveal.

    Raises:
        CheckpointError: the vision tower of `source` is not there, a tensor has no place in the model (the message
            guesses the layout the file does have), or two tensors map to one parameter.
    """
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
    return mapped, origin, dropped


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
    return max((k for k in keys if k.startswith(prefix)), key=lambda k: int(k[len(prefix) :].split(".", 1)[0]))


def check_against_config(found: dict[str, tuple[int, str]], config: Eva02AtConfig, config_name: str, path: str) -> None:
    mismatches = []
    for name, (value, evidence) in found.items():
        sub, attr = name.split(".")
        expected = getattr(getattr(config, sub), attr)
        if value != expected:
            mismatches.append(f"  {name}: the checkpoint has {value} ({evidence}), {config_name} has {expected}")
    if mismatches:
        raise CheckpointError(
            f"{path} does not match the configuration {config_name}:\n"
            + "\n".join(mismatches)
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


__all__ = ["DROPPED_KEYS", "check_against_config", "infer_architecture", "map_state_dict"]
