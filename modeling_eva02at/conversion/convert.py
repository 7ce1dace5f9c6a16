"""Convert EVA02-CLIP / EVA02-AT checkpoints into a self-contained `Eva02AtModel` folder.

The file is read by `checkpoints.load_checkpoint` (safetensors or ``torch.load(weights_only=True)`` only: a pickle
that would run code is refused), its tensors renamed by `mapping.map_state_dict` (the source layouts are described
there) and their sizes checked against the configuration. Every tensor of the model is then either loaded or
initialised on purpose (new projection heads, a zero temporal embedding for image checkpoints, the text tower of a
vision-only checkpoint), and the `ConversionResult` says which. The output folder is written next to its
destination and renamed into place at the end, so a failed conversion leaves nothing behind.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import torch

from .. import register_auto_classes
from ..configuration_eva02at import Eva02AtConfig
from ..modeling_eva02at import Eva02AtModel, interpolate_temporal_embed
from ..utils.files import staged_folder
from ..utils.processor import match_processor_to_model
from . import SOURCES
from .checkpoints import CheckpointError, load_checkpoint
from .mapping import check_against_config, infer_architecture, map_state_dict


register_auto_classes()  # saved folders get auto_map and the remote-code files

logger = logging.getLogger(__name__)


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
        return not any(key.startswith("text_model.") for key in self.initialised)

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

    mapped, origin, dropped = map_state_dict(
        state_dict, source, config, notes, checkpoint_name=checkpoint_name, config_name=config_name
    )
    found = infer_architecture(mapped, origin)
    check_against_config(found, config, config_name, checkpoint_name)

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

    # Temporal embedding: zero for image checkpoints (the model is then EVA02-CLIP at T = 1), interpolated if T differs
    # (by the model's own function: converting to T' frames equals running the original at T').
    temporal_key = "vision_model.embeddings.temporal_embed"
    synthesised = []  # set here rather than by the model's random init, but still not from the checkpoint
    if not config.vision_config.use_temporal_embedding:
        if temporal_key in mapped:
            mapped.pop(temporal_key)
            dropped.setdefault("temporal_embed (the config sets use_temporal_embedding=false)", []).append(
                origin[temporal_key]
            )
        temporal = "none (use_temporal_embedding=false)"
    elif temporal_key in mapped:
        source_frames = mapped[temporal_key].shape[0]
        if source_frames != num_frames:
            mapped[temporal_key] = interpolate_temporal_embed(mapped[temporal_key], num_frames).contiguous()
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
        for k, t in mapped.items()
        if k in expected and tuple(t.shape) != tuple(expected[k].shape)
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
            + ", ".join(not_allowed[:20])
            + (" ..." if len(not_allowed) > 20 else "")
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
        allowed |= {k for k in expected if k.startswith("text_model.")}
    return allowed


# ---------------------------------------------------------------------------------------------------------------------
# Output folder
# ---------------------------------------------------------------------------------------------------------------------


def _check_output(output_dir: str, overwrite: bool) -> None:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output {output_dir} exists and is not a folder")
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise ValueError(f"output folder {output_dir} exists and is not empty; pass overwrite=True (--overwrite)")


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
    saved_dtype: torch.dtype = torch.float32,
    seed: int = 0,
    save_processor: bool = True,
) -> ConversionResult:
    """Convert `checkpoint` (layout `source`) into a complete model folder at `output_dir`.

    The folder holds config.json (with auto_map and custom_pipelines), model.safetensors, the remote-code .py files
    and, when `config_dir` has them, the processor and tokenizer files: `AutoModel.from_pretrained(output_dir,
    trust_remote_code=True)` loads it offline, and with the processor `pipeline(model=output_dir,
    trust_remote_code=True)` classifies videos. Nothing is written at `output_dir` unless the whole conversion
    succeeds.
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
        state_dict,
        source,
        config,
        projection_dim=projection_dim,
        num_frames=num_frames,
        checkpoint_name=checkpoint,
        config_name=config_dir,
        seed=seed,
    )
    del state_dict

    with staged_folder(output_dir) as staging:
        logger.info("Writing the model to %s", staging)
        model.to(saved_dtype).save_pretrained(staging)
        if save_processor:
            result.notes += _save_processor(config_dir, staging, result.config)
        _verify_saved(staging, model)
        result.files = sorted(os.listdir(staging))
        _check_output(output_dir, overwrite)  # again: the folder may have been filled while the model was written
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


# SOURCES, CheckpointError and load_checkpoint are re-exported: a caller of the conversion needs them together.
__all__ = [
    "SOURCES",
    "CheckpointError",
    "ConversionResult",
    "convert_checkpoint",
    "convert_state_dict",
    "load_checkpoint",
]
