"""Encode clips and texts into L2-normalised embeddings for evaluation.

Videos are decoded in the workers of a torch ``DataLoader`` (the collator calls the processor); the model runs under
``torch.inference_mode`` with optional autocast, and :func:`encode_videos` can average over a horizontal flip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..data.layouts import load_clip
from ..utils.processor import match_processor_to_model
from ..utils.runtime import resolve_device


def load_model_for_inference(
    model_path: str,
    *,
    processor_path: str | None = None,
    num_frames: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
):
    """Load an `Eva02AtModel` (in `dtype`, default float32; eval mode, on `device`) and its `Eva02AtProcessor`.

    Args:
        model_path: a folder (or Hub id) saved with `save_pretrained` / `examples/convert_checkpoint.py`.
        processor_path: where the processor is, if not next to the model (e.g. `hub_configs/eva02at-b16`).
        num_frames: frames per clip; default: the frame count the model was built for
            (`config.vision_config.num_frames`). Written into the processor.
        dtype: the weights' dtype, e.g. the bfloat16 of `resolve_dtype` (None: float32).

    Raises:
        FileNotFoundError: a local `model_path` without `config.json`, or no processor files where expected.
        ValueError: the processor's crop size differs from the model's `image_size`.
    """
    from .. import register_auto_classes
    from ..modeling_eva02at import Eva02AtModel  # local: keeps the readers importable without the model
    from ..processing_eva02at import Eva02AtProcessor

    # A saved processor config names its classes through auto_map: registered, they resolve to the package's own
    # classes instead of asking for trust_remote_code.
    register_auto_classes()

    if os.path.isdir(model_path) and not os.path.isfile(os.path.join(model_path, "config.json")):
        raise FileNotFoundError(f"model folder {model_path} has no config.json (not a saved model)")
    processor_path = processor_path or model_path
    if os.path.isdir(processor_path) and not os.path.isfile(os.path.join(processor_path, "processor_config.json")):
        raise FileNotFoundError(
            f"no processor_config.json in {processor_path}: give the processor's folder as processor_path (e.g. "
            "hub_configs/eva02at-b16)"
        )
    # bfloat16 weights for bfloat16 compute (--dtype): half the memory, and no per-call weight casts as in autocast.
    # The RoPE tables stay exact float32 (Eva02AtRotaryEmbedding).
    try:
        model = Eva02AtModel.from_pretrained(model_path, dtype=dtype or torch.float32)
        processor = Eva02AtProcessor.from_pretrained(processor_path)
    except OSError as error:  # transformers' message does not always name what it looked for
        what = model_path if processor_path == model_path else f"{model_path} (processor {processor_path})"
        raise OSError(
            f"cannot load the model {what}: not a saved model folder, and not a Hub id "
            f"{'in the local cache (offline)' if _offline() else 'that loads'}: {error}"
        ) from None
    model.eval().to(resolve_device(device))
    try:
        match_processor_to_model(processor, model.config, num_frames)
    except ValueError as error:
        raise ValueError(f"{error}: the processor of {processor_path} does not fit the model {model_path}") from None
    return model, processor


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


@dataclass
class EncodeSettings:
    """How clips and texts are encoded; everything here but the batch sizes, workers and device is in the cache key.

    Args:
        batch_size: clips per forward pass.
        text_batch_size: texts per forward pass.
        num_workers: DataLoader workers that decode videos (0: in the main process).
        flip: horizontal-flip test-time augmentation (see :func:`encode_videos`).
        device: default: CUDA when available (the model must already be there).
        compute_dtype: the dtype the forward passes compute in (e.g. `torch.bfloat16`; None: float32): the model's
            weights' dtype when it was loaded in it, else autocast to it.
        progress: tqdm progress bars.
    """

    batch_size: int = 16
    text_batch_size: int = 256
    num_workers: int = 0
    flip: bool = False
    device: str | torch.device | None = None
    compute_dtype: torch.dtype | None = None
    progress: bool = True

    def cache_fields(self) -> dict:
        """What a feature cache key and an index header record of these settings (the key "dtype" is the compute
        dtype: the name on disk since the first index format)."""
        return {"flip": bool(self.flip), "dtype": str(self.compute_dtype or torch.float32)}


class _ClipDataset(Dataset):
    """Rows `{"video", "start", "end"}`; `video` is anything `load_clip` reads."""

    def __init__(self, videos, starts, ends):
        self.videos, self.starts, self.ends = videos, starts, ends

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        return {"video": self.videos[index], "start": self.starts[index], "end": self.ends[index]}


class ClipCollator:
    """Decodes a batch of clips (in DataLoader workers) into `pixel_values_videos`: each clip is read by
    :func:`~modeling_eva02at.data.layouts.load_clip` (any layout) and resized, cropped and normalised by the video
    processor."""

    def __init__(self, processor, num_frames: int | None = None):
        self.video_processor = processor.image_processor
        self.num_frames = num_frames or self.video_processor.num_frames

    def __call__(self, items: list[dict]) -> torch.Tensor:
        clips = [
            load_clip(self.video_processor, item["video"], item["start"], item["end"], num_frames=self.num_frames)
            for item in items
        ]
        return torch.stack([self.video_processor.transform_frames(frames) for frames in clips])


def compute_in(dtype: torch.dtype | None, device: torch.device, model: torch.nn.Module):
    """Autocast to `dtype` for a float32 `model`; nothing for float32, or for a model already in `dtype` (loaded so
    by `load_model_for_inference(dtype=...)`: faster than autocast, which casts the weights at every call)."""
    if dtype is None or dtype == torch.float32 or next(model.parameters()).dtype == dtype:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def embed_video_batch(model, pixel_values: torch.Tensor, flip: bool = False) -> torch.Tensor:
    """L2-normalised float32 embeddings of a batch of `pixel_values_videos` (flip: see :func:`encode_videos`)."""
    embeds = F.normalize(model.get_video_features(pixel_values_videos=pixel_values).pooler_output.float(), dim=-1)
    if flip:
        flipped = model.get_video_features(pixel_values_videos=pixel_values.flip(-1)).pooler_output.float()
        embeds = F.normalize(embeds + F.normalize(flipped, dim=-1), dim=-1)
    return embeds


def encode_videos(
    model,
    processor,
    videos: Sequence,
    starts: Sequence[float | None] | None = None,
    ends: Sequence[float | None] | None = None,
    settings: EncodeSettings | None = None,
    *,
    num_frames: int | None = None,
    description: str = "Encoding videos",
) -> torch.Tensor:
    """L2-normalised float32 video embeddings `(len(videos), projection_dim)` on the CPU, in input order.

    Args:
        videos: one entry per clip, anything :func:`~modeling_eva02at.data.layouts.load_clip` reads: a path (a file
            or an AVION / LaViLa chunk folder), frames in memory, or an `EgoVlpChunks` (EgoVLP's chunk folder).
        starts / ends: clip bounds in seconds (None: the whole video).
        settings: batch size, DataLoader workers (decoding runs in them), flip, device, compute dtype, progress bar.
            Flip is horizontal-flip test-time augmentation: the embedding is
            ``normalize(normalize(f(x)) + normalize(f(flip(x))))``, where ``flip`` mirrors every frame left-right
            (after the center crop), the mean of the two unit embeddings, re-normalised.
        num_frames: frames per clip (default: the processor's).

    Raises:
        FileNotFoundError, VideoDecodeError (a ValueError): a clip cannot be read (raised from the workers).
    """
    settings = settings or EncodeSettings()
    count = len(videos)
    starts = [None] * count if starts is None else list(starts)
    ends = [None] * count if ends is None else list(ends)
    if len(starts) != count or len(ends) != count:
        raise ValueError(f"{count} videos but {len(starts)} starts and {len(ends)} ends")
    device = resolve_device(settings.device)
    loader = DataLoader(
        _ClipDataset(list(videos), starts, ends),
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        collate_fn=ClipCollator(processor, num_frames),
        pin_memory=device.type == "cuda",
    )
    embeds = []
    with torch.inference_mode(), compute_in(settings.compute_dtype, device, model):
        for pixel_values in tqdm(loader, desc=description, disable=not settings.progress, unit="batch"):
            embeds.append(embed_video_batch(model, pixel_values.to(device, non_blocking=True), settings.flip).cpu())
    return torch.cat(embeds) if embeds else torch.empty(0, model.config.projection_dim)


class _TextCollator:
    def __init__(self, processor):
        self.processor = processor

    def __call__(self, texts: list[str]) -> dict:
        return dict(self.processor(text=list(texts), return_tensors="pt"))


def encode_texts(
    model,
    processor,
    texts: Sequence[str],
    settings: EncodeSettings | None = None,
    *,
    description: str = "Encoding texts",
) -> torch.Tensor:
    """L2-normalised float32 text embeddings `(len(texts), projection_dim)` on the CPU, in input order.

    Texts are tokenized by the processor (CLIP BPE, 77 tokens) in the DataLoader's collate function, `text_batch_size`
    of `settings` at a time (its device, compute dtype and progress bar apply as in :func:`encode_videos`).
    """
    settings = settings or EncodeSettings()
    device = resolve_device(settings.device)
    loader = DataLoader(list(texts), batch_size=settings.text_batch_size, collate_fn=_TextCollator(processor))
    embeds = []
    with torch.inference_mode(), compute_in(settings.compute_dtype, device, model):
        for batch in tqdm(loader, desc=description, disable=not settings.progress, unit="batch"):
            features = model.get_text_features(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            ).pooler_output
            embeds.append(F.normalize(features.float(), dim=-1).cpu())
    return torch.cat(embeds) if embeds else torch.empty(0, model.config.projection_dim)


def encode_class_texts(
    model, processor, class_names: Sequence[str], templates: Sequence[str], settings: EncodeSettings
) -> torch.Tensor:
    """One embedding per class: the normalised mean of its normalised embeddings over `templates` (as LaViLa)."""
    texts = [template.format(name) for name in class_names for template in templates]
    embeds = encode_texts(model, processor, texts, settings, description="Encoding class texts")
    return F.normalize(embeds.view(len(class_names), len(templates), -1).mean(dim=1), dim=-1)
