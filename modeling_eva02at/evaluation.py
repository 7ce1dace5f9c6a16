"""Zero-shot and fine-tuned evaluation of EVA02-AT on EK-100 MIR, EgoMCQ and Charades-Ego (SPEC sections 6, 7, 9).

The `examples/eval_*.py` scripts are thin command lines over this module:

* **Encoding.** :func:`encode_videos` / :func:`encode_texts` return L2-normalised float32 embeddings. Videos are
  decoded in the workers of a torch ``DataLoader`` (the collator calls the processor), the model runs under
  ``torch.inference_mode`` with optional autocast (bfloat16 on CUDA), and :func:`encode_videos` can average over a
  horizontal flip (test-time augmentation, see its docstring).
* **Feature caching.** :func:`cached_features` stores the embeddings of one evaluation as a safetensors file whose
  name is a hash of everything they depend on (model files, annotation files, video root, frames, flip, processor
  settings, autocast dtype), written atomically, so re-scoring (another relevancy matrix, another metric) is
  instant.
* **Readers.** :class:`EgoMcqQuestions` (EgoVLP's ``egomcq.json``) and :class:`CharadesEgoAnnotations`
  (``CharadesEgo_v1_test_only1st.csv`` + ``Charades_v1_classes.txt``) read and validate the annotation files, with
  errors that name the file, the question / row and the field. EK-100 MIR reuses
  :class:`modeling_eva02at.data.Ek100MirAnnotations`.
* **Tasks.** :func:`evaluate_ek100_mir`, :func:`evaluate_egomcq` and :func:`evaluate_charades_ego` encode (or load
  the cached features), score with :mod:`modeling_eva02at.metrics` and return an :class:`EvaluationResult`.

Example::

    from modeling_eva02at.data import Ek100MirAnnotations
    from modeling_eva02at.evaluation import EncodeSettings, evaluate_ek100_mir, load_model_and_processor

    model, processor = load_model_and_processor("eva02at-b16-ek100", num_frames=16)
    annotations = Ek100MirAnnotations.from_files("EPIC_100_retrieval_test.csv", "EPIC_100_retrieval_test_sentence.csv")
    result = evaluate_ek100_mir(model, processor, annotations, "/data/EK100_320p_15sec_30fps_libx264",
                                EncodeSettings(batch_size=32, num_workers=8, dtype=torch.bfloat16),
                                cache_dir="features", model_id=model_fingerprint("eva02at-b16-ek100"))
    result.metrics["avg_mAP"]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .data import Ek100MirAnnotations, Ek100MirDataset
from .metrics import EGOMCQ_INTER_VIDEO, EGOMCQ_INTRA_VIDEO, charades_ego_map, egomcq_accuracy, ek100_mir_metrics
from .video_processing_eva02at import ChunkSpan


logger = logging.getLogger(__name__)

FEATURE_CACHE_VERSION = 1
"""Part of every cache key: bumped when the way features are computed changes, so old cache files are not reused."""

EGOVLP_CHUNK_SECONDS = 600
"""EgoVLP's chunked Ego4D layout: ``<root>/<video_uid>/<k>.mp4`` holds seconds ``[600 k, 600 (k + 1))``."""

PAPER_RESULTS = {
    "EVA02-AT-B": {
        "ek100_mir_zero_shot": {"avg_mAP": 34.3, "avg_nDCG": 34.1},
        "ek100_mir_fine_tuned": {"avg_mAP": 59.0, "avg_nDCG": 70.8},
        "charades_ego_zero_shot": {"mAP": 27.8},
        "charades_ego_fine_tuned": {"mAP": 38.0},
        "egomcq": {"inter_video_accuracy": 95.0, "intra_video_accuracy": 63.2},
    },
    "EVA02-AT-L": {
        "ek100_mir_zero_shot": {"avg_mAP": 38.9, "avg_nDCG": 36.2},
        "ek100_mir_fine_tuned": {"avg_mAP": 63.5, "avg_nDCG": 74.2},
        "charades_ego_zero_shot": {"mAP": 30.9},
        "charades_ego_fine_tuned": {"mAP": 42.5},
        "egomcq": {"inter_video_accuracy": 95.9, "intra_video_accuracy": 66.5},
    },
}
"""The paper's reported numbers (SPEC section 9), in percent; EgoClip+ pretraining, SMS fine-tuning. The paper gives
only the mean of the two EK-100 MIR directions."""

# Processor attributes that change the pixels a model sees: part of the feature cache key.
_PIXEL_SETTINGS = ("num_frames", "size", "crop_size", "do_resize", "do_center_crop", "do_rescale", "rescale_factor",
                   "do_normalize", "image_mean", "image_std")  # fmt: skip
# Files of a model folder whose content determines the features.
_MODEL_FILE_PATTERN = re.compile(r"(config\.json|.*\.safetensors|.*\.bin|tokenizer.*\.json|processor_config\.json)$")


# ---------------------------------------------------------------------------------------------------------------------
# Model loading and settings
# ---------------------------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model_and_processor(
    model_path: str,
    *,
    processor_path: str | None = None,
    num_frames: int | None = None,
    device: str | torch.device | None = None,
):
    """Load an `Eva02AtModel` (float32, eval mode, on `device`) and its `Eva02AtProcessor`.

    Args:
        model_path: a folder (or Hub id) saved with `save_pretrained` / `examples/convert_checkpoint.py`.
        processor_path: where the processor is, if not next to the model (e.g. `hub_configs/eva02at-b16`).
        num_frames: frames per clip; default: the frame count the model was built for
            (`config.vision_config.num_frames`). Written into the processor.

    Raises:
        FileNotFoundError: a local `model_path` without `config.json`, or no processor files where expected.
        ValueError: the processor's crop size differs from the model's `image_size`.
    """
    from .modeling_eva02at import Eva02AtModel  # local: keeps this module importable for readers-only use
    from .processing_eva02at import Eva02AtProcessor

    if os.path.isdir(model_path) and not os.path.isfile(os.path.join(model_path, "config.json")):
        raise FileNotFoundError(f"--model {model_path}: no config.json in this folder (not a saved model)")
    processor_path = processor_path or model_path
    if os.path.isdir(processor_path) and not os.path.isfile(os.path.join(processor_path, "processor_config.json")):
        raise FileNotFoundError(
            f"no processor_config.json in {processor_path}: pass the processor's folder (e.g. --processor "
            "hub_configs/eva02at-b16)"
        )
    model = Eva02AtModel.from_pretrained(model_path, dtype=torch.float32)
    model.eval().to(resolve_device(device))
    processor = Eva02AtProcessor.from_pretrained(processor_path)
    video = processor.image_processor
    video.num_frames = int(num_frames or model.config.vision_config.num_frames)
    if video.crop_size != model.config.vision_config.image_size:
        raise ValueError(
            f"the processor of {processor_path} crops {video.crop_size}x{video.crop_size} frames but the model "
            f"{model_path} takes {model.config.vision_config.image_size}x{model.config.vision_config.image_size}"
        )
    return model, processor


@dataclass
class EncodeSettings:
    """How clips and texts are encoded; everything here but the batch sizes, workers and device is in the cache key.

    Args:
        batch_size: clips per forward pass.
        text_batch_size: texts per forward pass.
        num_workers: DataLoader workers that decode videos (0: in the main process).
        flip: horizontal-flip test-time augmentation (see :func:`encode_videos`).
        device: default: CUDA when available.
        dtype: autocast dtype (e.g. `torch.bfloat16` on CUDA); None runs in float32.
        progress: tqdm progress bars.
    """

    batch_size: int = 16
    text_batch_size: int = 256
    num_workers: int = 0
    flip: bool = False
    device: str | torch.device | None = None
    dtype: torch.dtype | None = None
    progress: bool = True

    def cache_fields(self) -> dict:
        return {"flip": bool(self.flip), "dtype": str(self.dtype or torch.float32)}


def model_fingerprint(model_path: str, processor_path: str | None = None) -> dict:
    """What identifies a model for the feature cache: the path and the size / modification time of the config,
    weight, tokenizer and processor files of its folder, and of the processor's folder when given apart (a Hub id is
    used as is)."""
    identity = {"model": _folder_fingerprint(model_path)}
    if processor_path is not None:
        identity["processor"] = _folder_fingerprint(processor_path)
    return identity


def _folder_fingerprint(path: str):
    if not os.path.isdir(path):
        return path
    files = sorted(name for name in os.listdir(path) if _MODEL_FILE_PATTERN.fullmatch(name))
    return {"path": os.path.abspath(path), "files": [file_fingerprint(os.path.join(path, name)) for name in files]}


def file_fingerprint(path: str | None) -> dict | None:
    """Absolute path, size and modification time of a file (None stays None)."""
    if path is None:
        return None
    stat = os.stat(path)
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _pixel_settings(processor) -> dict:
    video = processor.image_processor
    return {key: getattr(video, key) for key in _PIXEL_SETTINGS}


# ---------------------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------------------


def split_frames(durations: Sequence[float], num_frames: int) -> list[int]:
    """Share `num_frames` among pieces of a clip in proportion to their durations (largest remainder; sums exactly)."""
    durations = np.asarray(durations, dtype=np.float64)
    exact = num_frames * durations / durations.sum()
    counts = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - counts), kind="stable")[: num_frames - counts.sum()]:
        counts[index] += 1
    return counts.tolist()


class _ClipDataset(Dataset):
    """Rows `{"video", "start", "end"}`; `video` is anything the processor reads or a tuple of `ChunkSpan`s."""

    def __init__(self, videos, starts, ends):
        self.videos, self.starts, self.ends = videos, starts, ends

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict:
        return {"video": self.videos[index], "start": self.starts[index], "end": self.ends[index]}


class ClipCollator:
    """Decodes a batch of clips with the processor (in DataLoader workers) into `pixel_values_videos`.

    A clip given as a tuple of :class:`ChunkSpan` (a clip over several chunk files) is decoded piece by piece, its
    frames shared among the pieces in proportion to their durations (each piece sampled at its segment midpoints),
    and the frames are concatenated before the processor's resize / crop / normalisation.
    """

    def __init__(self, processor, num_frames: int | None = None):
        self.processor = processor
        self.num_frames = num_frames or processor.image_processor.num_frames

    def _spans_to_frames(self, spans: tuple[ChunkSpan, ...]) -> np.ndarray:
        video = self.processor.image_processor
        counts = split_frames([span.local_end - span.local_start for span in spans], self.num_frames)
        pieces = [
            video.load_frames(span.path, count, start=span.local_start, end=span.local_end)
            for span, count in zip(spans, counts)
            if count > 0
        ]
        return np.concatenate(pieces)

    def __call__(self, items: list[dict]) -> torch.Tensor:
        videos, starts, ends = [], [], []
        for item in items:
            if isinstance(item["video"], tuple):  # already decoded here: no start / end left to apply
                videos.append(self._spans_to_frames(item["video"]))
                starts.append(None)
                ends.append(None)
            else:
                videos.append(item["video"])
                starts.append(item["start"])
                ends.append(item["end"])
        return self.processor(videos=videos, start=starts, end=ends, num_frames=self.num_frames)["pixel_values_videos"]


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _video_embedding(model, pixel_values: torch.Tensor, flip: bool) -> torch.Tensor:
    embeds = F.normalize(model.get_video_features(pixel_values_videos=pixel_values).pooler_output.float(), dim=-1)
    if flip:
        flipped = model.get_video_features(pixel_values_videos=pixel_values.flip(-1)).pooler_output.float()
        embeds = F.normalize(embeds + F.normalize(flipped, dim=-1), dim=-1)
    return embeds


def encode_videos(
    model,
    processor,
    videos: Sequence,
    *,
    starts: Sequence[float | None] | None = None,
    ends: Sequence[float | None] | None = None,
    batch_size: int = 16,
    num_workers: int = 0,
    flip: bool = False,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    num_frames: int | None = None,
    progress: bool = True,
    description: str = "Encoding videos",
) -> torch.Tensor:
    """L2-normalised float32 video embeddings `(len(videos), projection_dim)` on the CPU, in input order.

    Args:
        videos: one entry per clip: a path (a file or an AVION chunk folder), anything else the processor reads, or
            a tuple of :class:`ChunkSpan` for a clip spread over several chunk files.
        starts / ends: clip bounds in seconds (None: the whole video).
        batch_size / num_workers: DataLoader settings; decoding runs in the workers.
        flip: horizontal-flip test-time augmentation. The embedding is
            ``normalize(normalize(f(x)) + normalize(f(flip(x))))``, where ``flip`` mirrors every frame left-right
            (after the center crop): the mean of the two unit embeddings, re-normalised.
        device: default: CUDA when available (the model must already be there).
        dtype: autocast dtype, e.g. `torch.bfloat16` on CUDA; None runs in float32.
        num_frames: frames per clip (default: the processor's).

    Raises:
        FileNotFoundError, VideoDecodeError (a ValueError): a clip cannot be read (raised from the workers).
    """
    count = len(videos)
    starts = [None] * count if starts is None else list(starts)
    ends = [None] * count if ends is None else list(ends)
    if len(starts) != count or len(ends) != count:
        raise ValueError(f"{count} videos but {len(starts)} starts and {len(ends)} ends")
    device = resolve_device(device)
    loader = DataLoader(
        _ClipDataset(list(videos), starts, ends),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=ClipCollator(processor, num_frames),
        pin_memory=device.type == "cuda",
    )
    embeds = []
    with torch.inference_mode(), _autocast(device, dtype):
        for pixel_values in tqdm(loader, desc=description, disable=not progress, unit="batch"):
            embeds.append(_video_embedding(model, pixel_values.to(device, non_blocking=True), flip).cpu())
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
    batch_size: int = 256,
    device: str | torch.device | None = None,
    *,
    dtype: torch.dtype | None = None,
    progress: bool = True,
    description: str = "Encoding texts",
) -> torch.Tensor:
    """L2-normalised float32 text embeddings `(len(texts), projection_dim)` on the CPU, in input order.

    Texts are tokenized by the processor (CLIP BPE, 77 tokens) in the DataLoader's collate function; `dtype` is an
    optional autocast dtype as in :func:`encode_videos`.
    """
    device = resolve_device(device)
    loader = DataLoader(list(texts), batch_size=batch_size, collate_fn=_TextCollator(processor))
    embeds = []
    with torch.inference_mode(), _autocast(device, dtype):
        for batch in tqdm(loader, desc=description, disable=not progress, unit="batch"):
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
    embeds = encode_texts(model, processor, texts, settings.text_batch_size, settings.device, dtype=settings.dtype,
                          progress=settings.progress, description="Encoding class texts")  # fmt: skip
    return F.normalize(embeds.view(len(class_names), len(templates), -1).mean(dim=1), dim=-1)


# ---------------------------------------------------------------------------------------------------------------------
# Feature cache
# ---------------------------------------------------------------------------------------------------------------------


class CachedFeatures(NamedTuple):
    """What :func:`cached_features` returns: the tensors, the cache file (None without a cache) and whether the
    tensors were loaded from it."""

    features: dict[str, torch.Tensor]
    path: str | None
    from_cache: bool


def feature_cache_path(cache_dir: str, key_dict: dict) -> str:
    """`<cache_dir>/features-<first 20 hex digits of the SHA-256 of the canonical JSON of key_dict>.safetensors`."""
    digest = hashlib.sha256(_canonical_json(key_dict).encode()).hexdigest()[:20]
    return os.path.join(cache_dir, f"features-{digest}.safetensors")


def _canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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
    key_json = _canonical_json(key_dict)
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
    os.makedirs(cache_dir, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".features-", suffix=".tmp", dir=cache_dir)
    os.close(handle)
    try:
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in features.items()}
        save_file(tensors, temporary, metadata={"key": key_json})
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    logger.info(f"cached features in {path}")
    return CachedFeatures(features, path, False)


def _cache_key(task: str, processor, settings: EncodeSettings, model_id, **data) -> dict:
    return {"version": FEATURE_CACHE_VERSION, "task": task, "model": model_id, "pixels": _pixel_settings(processor),
            **settings.cache_fields(), **data}  # fmt: skip


def _features(task, processor, settings, cache_dir, model_id, data_key: dict, compute_fn) -> CachedFeatures:
    if cache_dir is not None and model_id is None:
        raise ValueError("a feature cache needs model_id (e.g. model_fingerprint(model_path)) to tell models apart")
    key = _cache_key(task, processor, settings, model_id, **data_key) if cache_dir is not None else {}
    return cached_features(cache_dir, key, compute_fn)


def missing_paths(paths, limit: int = 10) -> list[str]:
    """The first `limit` of `paths` (duplicates skipped) that do not exist."""
    missing = []
    for path in dict.fromkeys(paths):
        if not os.path.exists(path):
            missing.append(path)
            if len(missing) >= limit:
                break
    return missing


def _raise_if_missing(paths, what: str, option: str) -> None:
    missing = missing_paths(paths)
    if missing:
        raise FileNotFoundError(f"{what} missing under {option} (first {len(missing)}):\n  " + "\n  ".join(missing))


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class EvaluationResult:
    """Metrics (fractions in [0, 1]) of one evaluation, with where its features came from."""

    task: str
    metrics: dict
    num_videos: int
    num_texts: int
    features_path: str | None = None
    from_cache: bool = False
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_json_dict(self, **settings) -> dict:
        """A JSON-ready dict: metrics (fractions), counts, cache information and the given settings."""
        return {
            "task": self.task,
            "metrics": self.metrics,
            "num_videos": self.num_videos,
            "num_texts": self.num_texts,
            "features_cache": {"path": self.features_path, "hit": self.from_cache},
            "seconds": round(self.seconds, 3),
            **self.extra,
            "settings": settings,
            "paper_percent": {
                name: {setting: numbers for setting, numbers in results.items() if setting.startswith(self.task)}
                for name, results in PAPER_RESULTS.items()
            },
        }


def write_json(path: str, data: dict) -> None:
    """Write `data` as indented JSON through a temporary file and `os.replace` (NaN written as null)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    handle, temporary = tempfile.mkstemp(prefix=".eval-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w") as file:
            json.dump(clean(data), file, indent=2, default=str)
            file.write("\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


# ---------------------------------------------------------------------------------------------------------------------
# EK-100 multi-instance retrieval
# ---------------------------------------------------------------------------------------------------------------------


def ek100_mir_similarity(video_embeds, text_embeds, caption_columns) -> np.ndarray:
    """`S = V T^T` of each clip against each clip's own narration, restricted to the sentence CSV's captions."""
    text = torch.as_tensor(text_embeds)[torch.tensor(np.asarray(caption_columns), dtype=torch.long)]
    return (torch.as_tensor(video_embeds) @ text.T).numpy()


def evaluate_ek100_mir(
    model,
    processor,
    annotations: Ek100MirAnnotations,
    video_root: str,
    settings: EncodeSettings,
    *,
    video_ext: str = "MP4",
    cache_dir: str | None = None,
    model_id=None,
    data_files: Sequence[str] = (),
) -> EvaluationResult:
    """EK-100 MIR mAP / nDCG (SPEC 6): each clip and its own narration are encoded (as `Eva02AtTrainer.evaluate`),
    the caption columns are those of the sentence CSV, scored against `annotations.relevancy`.

    The cached features (`video`, `text`: one row per clip) do not depend on the relevancy matrix, so re-scoring
    with another one is instant. `data_files` (the retrieval CSV) go into the cache key by fingerprint.
    """
    started = time.perf_counter()
    dataset = Ek100MirDataset(annotations, video_root, train=False, video_ext=video_ext)
    missing = dataset.missing_videos()
    if missing:
        raise FileNotFoundError(f"videos missing under --video-root {video_root} (first {len(missing)}):\n  "
                                + "\n  ".join(missing))  # fmt: skip
    items = [dataset[i] for i in range(len(dataset))]

    def compute():
        video = encode_videos(
            model, processor, [item["video"] for item in items], starts=[item["start"] for item in items],
            ends=[item["end"] for item in items], batch_size=settings.batch_size, num_workers=settings.num_workers,
            flip=settings.flip, device=settings.device, dtype=settings.dtype, progress=settings.progress,
            description="Encoding EK-100 clips",
        )  # fmt: skip
        text = encode_texts(model, processor, [item["caption"] for item in items], settings.text_batch_size,
                            settings.device, dtype=settings.dtype, progress=settings.progress,
                            description="Encoding EK-100 narrations")  # fmt: skip
        return {"video": video, "text": text}

    data_key = {"data": [file_fingerprint(p) for p in data_files], "video_root": os.path.abspath(video_root),
                "video_ext": video_ext, "num_clips": len(items)}  # fmt: skip
    cached = _features("ek100_mir", processor, settings, cache_dir, model_id, data_key, compute)
    similarity = ek100_mir_similarity(cached.features["video"], cached.features["text"], annotations.caption_columns)
    metrics = ek100_mir_metrics(similarity, annotations.relevancy)
    return EvaluationResult("ek100_mir", metrics, len(items), len(annotations.sentences), cached.path,
                            cached.from_cache, time.perf_counter() - started)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# EgoMCQ
# ---------------------------------------------------------------------------------------------------------------------

_EGOMCQ_CLIP_FIELDS = ("video_uid", "clip_start", "clip_end")
EGOMCQ_VIDEO_LAYOUTS = ("auto", "full", "chunked")


def _check_egomcq_types(path: str, clips: pd.DataFrame, choices: list, types: list) -> None:
    """Warn where a question's type disagrees with its candidates: inter-video candidates come from several videos."""
    uids = clips["video_uid"].to_numpy()
    from_several_videos = np.array([len(set(uids[row])) > 1 for row in choices])
    expected = np.where(from_several_videos, EGOMCQ_INTER_VIDEO, EGOMCQ_INTRA_VIDEO)
    disagree = int((expected != np.array(types)).sum())
    if disagree:
        warnings.warn(
            f"{path}: {disagree} of {len(types)} questions have a `types` value that disagrees with their candidates "
            f"(expected {EGOMCQ_INTER_VIDEO} = inter-video where candidates come from several videos, "
            f"{EGOMCQ_INTRA_VIDEO} = intra-video otherwise); accuracy is reported by the file's types",
            stacklevel=3,
        )


@dataclass
class EgoMcqQuestions:
    """EgoMCQ questions (EgoVLP's ``egomcq.json``): a text query and `num_choices` (5) candidate clips each.

    File format: ``{"0": {"query": {clip}, "choices": {"0": {clip}, ..., "4": {clip}}, "answer": int,
    "types": 1 | 2}, ...}`` where a clip is an EgoClip row as a dict: ``video_uid``, ``clip_start`` / ``clip_end``
    (seconds in the full Ego4D video), ``clip_text`` (the narration; the query's is the question's text) and other
    fields (``tag_verb``, ``tag_noun``, ...) that are ignored. ``types``: 1 = intra-video, 2 = inter-video (see
    `metrics.egomcq_accuracy`; a warning counts questions whose candidates' videos disagree with their type). Choices
    are ordered by their integer keys; ``answer`` indexes them. Negative clip times are clamped to 0 (as EgoVLP).

    Attributes:
        path: the file read.
        question_ids: the top-level keys, in file order.
        query_texts: the query's ``clip_text`` per question.
        clips: the distinct candidate clips, columns ``video_uid``, ``start``, ``end``.
        choices: ``(num_questions, num_choices)`` row of `clips` of each candidate.
        answers / types: ``(num_questions,)`` ints.
    """

    path: str
    question_ids: list[str]
    query_texts: list[str]
    clips: pd.DataFrame
    choices: np.ndarray
    answers: np.ndarray
    types: np.ndarray

    @classmethod
    def from_json(cls, path: str) -> "EgoMcqQuestions":
        """Read and validate ``egomcq.json``.

        Raises:
            ValueError: the JSON is not an object of questions, a question lacks a field, its choices are not keyed
                ``"0".."n-1"`` or not as many as the other questions', ``answer`` is not an integer in
                ``[0, n)``, ``types`` is not 1 or 2, or a clip lacks ``video_uid`` / ``clip_start`` / ``clip_end``
                or has non-numeric times. Messages name the file and the question key.
        """
        with open(path) as file:
            try:
                data = json.load(file)
            except json.JSONDecodeError as error:
                raise ValueError(f"--egomcq-json {path} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or not data:
            raise ValueError(f"--egomcq-json {path}: expected a non-empty JSON object of questions keyed '0', '1', ...")
        clip_rows: dict[tuple, int] = {}
        query_texts, choices, answers, types = [], [], [], []
        num_choices = None
        for key, question in data.items():
            where = f"{path}: question {key!r}"
            if not isinstance(question, dict):
                raise ValueError(f"{where} is not an object")
            for name in ("query", "choices", "answer", "types"):
                if name not in question:
                    raise ValueError(f"{where} has no {name!r} field")
            query = question["query"]
            if not isinstance(query, dict) or not isinstance(query.get("clip_text"), str):
                raise ValueError(f"{where}: 'query' must be a clip object with a 'clip_text' string")
            options = question["choices"]
            if not isinstance(options, dict) or not options:
                raise ValueError(f"{where}: 'choices' must be a non-empty object keyed '0', '1', ...")
            expected_keys = [str(i) for i in range(len(options))]
            if sorted(options, key=lambda k: (len(k), k)) != expected_keys:
                raise ValueError(f"{where}: choices must be keyed {expected_keys}, got {list(options)}")
            if num_choices is None:
                num_choices = len(options)
            elif len(options) != num_choices:
                raise ValueError(f"{where} has {len(options)} choices where earlier questions have {num_choices}")
            answer = question["answer"]
            if not _is_integer(answer) or not 0 <= answer < num_choices:
                raise ValueError(f"{where}: answer {answer!r} is not an integer in [0, {num_choices})")
            if not _is_integer(question["types"]) or question["types"] not in (1, 2):
                raise ValueError(f"{where}: types {question['types']!r} must be 1 (intra-video) or 2 (inter-video)")
            rows = []
            for choice_key in expected_keys:
                uid, start, end = _egomcq_clip(options[choice_key], f"{where}, choice {choice_key!r}")
                rows.append(clip_rows.setdefault((uid, start, end), len(clip_rows)))
            query_texts.append(query["clip_text"])
            choices.append(rows)
            answers.append(int(answer))
            types.append(int(question["types"]))
        clips = pd.DataFrame(list(clip_rows), columns=["video_uid", "start", "end"])
        _check_egomcq_types(path, clips, choices, types)
        return cls(path=path, question_ids=list(data), query_texts=query_texts, clips=clips,
                   choices=np.array(choices, dtype=np.int64), answers=np.array(answers, dtype=np.int64),
                   types=np.array(types, dtype=np.int64))  # fmt: skip

    def __len__(self) -> int:
        return len(self.question_ids)

    def clip_videos(
        self,
        video_root: str,
        layout: str = "auto",
        *,
        video_ext: str = "mp4",
        chunk_seconds: int = EGOVLP_CHUNK_SECONDS,
    ) -> tuple[list, list, list]:
        """`(videos, starts, ends)` of every clip of `clips`, for :func:`encode_videos`.

        Layouts (`layout="auto"` picks, per video, the full file if it exists, else the chunk folder):

        * ``"full"``: ``<root>/<video_uid>.<ext>``, the whole Ego4D video; clip times are used as they are.
        * ``"chunked"``: EgoVLP's ``<root>/<video_uid>/<k>.<ext>``, chunk ``k`` holding seconds
          ``[k L, (k + 1) L)`` with L = `chunk_seconds` (600). A clip inside one chunk is read from it with local
          times; a clip crossing a boundary becomes a tuple of :class:`ChunkSpan` whose frames are shared in
          proportion to the time in each chunk (EgoVLP reads such clips from both chunks too).

        Raises:
            ValueError: unknown layout.
            FileNotFoundError: videos or chunk files that do not exist (the first ones are listed).
        """
        if layout not in EGOMCQ_VIDEO_LAYOUTS:
            raise ValueError(f"--video-layout must be one of {EGOMCQ_VIDEO_LAYOUTS}, got {layout!r}")
        videos, starts, ends, missing = [], [], [], []
        for uid, start, end in self.clips.itertuples(index=False):
            full = os.path.join(video_root, f"{uid}.{video_ext}")
            folder = os.path.join(video_root, str(uid))
            if layout == "full" or (layout == "auto" and (os.path.isfile(full) or not os.path.isdir(folder))):
                if not os.path.isfile(full):
                    missing.append(full if layout == "full" else f"{full} (nor a chunk folder {folder}/)")
                videos.append(full)
                starts.append(start)
                ends.append(end)
                continue
            spans = egovlp_chunk_spans(folder, start, end, chunk_seconds, video_ext)
            missing += [span.path for span in spans if not os.path.isfile(span.path)]
            if len(spans) == 1:
                videos.append(spans[0].path)
                starts.append(spans[0].local_start)
                ends.append(spans[0].local_end)
            else:
                videos.append(tuple(spans))
                starts.append(None)
                ends.append(None)
        if missing:
            unique = list(dict.fromkeys(missing))
            raise FileNotFoundError(
                f"EgoMCQ videos missing under --video-root {video_root} (first {min(len(unique), 10)} of "
                f"{len(unique)}):\n  " + "\n  ".join(unique[:10])
            )
        return videos, starts, ends


def _is_integer(value) -> bool:
    """An int, or an integral float (JSON writers sometimes write 3.0); never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _egomcq_clip(clip, where: str) -> tuple[str, float, float]:
    if not isinstance(clip, dict):
        raise ValueError(f"{where} is not a clip object")
    for name in _EGOMCQ_CLIP_FIELDS:
        if name not in clip:
            raise ValueError(f"{where} has no {name!r} field")
    try:
        start, end = max(float(clip["clip_start"]), 0.0), max(float(clip["clip_end"]), 0.0)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: clip_start / clip_end must be numbers, got {clip['clip_start']!r}, "
                         f"{clip['clip_end']!r}") from None  # fmt: skip
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"{where}: clip_end {end} is before clip_start {start}")
    if end == start:  # a zero-length clip shows its frame at `start`
        end = start + 1e-3
    return str(clip["video_uid"]), start, end


def egovlp_chunk_spans(
    video_dir: str, start: float, end: float, chunk_seconds: int = EGOVLP_CHUNK_SECONDS, ext: str = "mp4"
) -> list[ChunkSpan]:
    """The pieces of the clip [start, end) seconds in EgoVLP's chunk folder ``<video_dir>/<k>.<ext>``."""
    spans = []
    for k in range(int(start // chunk_seconds), int(math.ceil(end / chunk_seconds))):
        chunk_start = k * chunk_seconds
        local_start = max(start, chunk_start) - chunk_start
        local_end = min(end, chunk_start + chunk_seconds) - chunk_start
        if local_end > local_start:
            spans.append(ChunkSpan(os.path.join(video_dir, f"{k}.{ext}"), chunk_start, local_start, local_end))
    return spans


def evaluate_egomcq(
    model,
    processor,
    questions: EgoMcqQuestions,
    video_root: str,
    settings: EncodeSettings,
    *,
    layout: str = "auto",
    video_ext: str = "mp4",
    chunk_seconds: int = EGOVLP_CHUNK_SECONDS,
    cache_dir: str | None = None,
    model_id=None,
) -> EvaluationResult:
    """EgoMCQ inter- / intra-video accuracy (SPEC 6): each question's query **text** against its candidate **clips**
    (prediction: the highest cosine similarity). Distinct clips and texts are encoded once."""
    started = time.perf_counter()
    videos, starts, ends = questions.clip_videos(video_root, layout, video_ext=video_ext, chunk_seconds=chunk_seconds)
    texts = list(dict.fromkeys(questions.query_texts))

    def compute():
        video = encode_videos(model, processor, videos, starts=starts, ends=ends, batch_size=settings.batch_size,
                              num_workers=settings.num_workers, flip=settings.flip, device=settings.device,
                              dtype=settings.dtype, progress=settings.progress, description="Encoding EgoMCQ clips")
        text = encode_texts(model, processor, texts, settings.text_batch_size, settings.device, dtype=settings.dtype,
                            progress=settings.progress, description="Encoding EgoMCQ queries")
        return {"video": video, "text": text}  # fmt: skip

    data_key = {"data": [file_fingerprint(questions.path)], "video_root": os.path.abspath(video_root),
                "layout": layout, "video_ext": video_ext, "chunk_seconds": chunk_seconds}  # fmt: skip
    cached = _features("egomcq", processor, settings, cache_dir, model_id, data_key, compute)
    text_row = {text: row for row, text in enumerate(texts)}
    query = cached.features["text"][[text_row[t] for t in questions.query_texts]]  # (Q, D)
    candidates = cached.features["video"][torch.from_numpy(questions.choices)]  # (Q, C, D)
    similarity = torch.einsum("qd,qcd->qc", query, candidates).numpy()
    metrics = egomcq_accuracy(similarity, questions.answers, questions.types)
    return EvaluationResult("egomcq", metrics, len(videos), len(texts), cached.path, cached.from_cache,
                            time.perf_counter() - started, extra={"num_questions": len(questions)})  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Charades-Ego
# ---------------------------------------------------------------------------------------------------------------------

CHARADES_EGO_REQUIRED_COLUMNS = ("id", "actions")
DEFAULT_CHARADES_TEMPLATES = ("{}",)
"""Class texts are the bare class names, as LaViLa's zero-shot Charades-Ego evaluation (its default `['{}']`)."""


def read_charades_classes(path: str) -> tuple[list[str], list[str]]:
    """``Charades_v1_classes.txt`` (lines ``c000 Holding some clothes``) -> (class ids, class names), in file order.

    The name is the rest of the line after the id and one space, commas included.
    """
    ids, names = [], []
    with open(path) as file:
        for number, line in enumerate(file, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f"--classes {path}: line {number} {line!r} is not '<class id> <class name>'")
            if parts[0] in ids:
                raise ValueError(f"--classes {path}: class id {parts[0]!r} appears twice (line {number})")
            ids.append(parts[0])
            names.append(parts[1])
    if not ids:
        raise ValueError(f"--classes {path} lists no class")
    return ids, names


@dataclass
class CharadesEgoAnnotations:
    """Charades-Ego test videos with their multi-hot action labels.

    Attributes:
        video_ids: the ``id`` of each labelled video (``<video_root>/<id>.mp4``), in CSV order.
        labels: ``(num_videos, num_classes)`` uint8 multi-hot labels.
        class_ids / class_names: from the classes file, in its order (the label columns).
        unlabelled_ids: videos of the CSV without any action, left out (the metric excludes them).
    """

    video_ids: list[str]
    labels: np.ndarray
    class_ids: list[str]
    class_names: list[str]
    unlabelled_ids: list[str]
    csv_path: str = ""
    classes_path: str = ""

    @classmethod
    def from_files(cls, csv_path: str, classes_path: str) -> "CharadesEgoAnnotations":
        """Read ``CharadesEgo_v1_test_only1st.csv`` (columns id, subject, scene, quality, relevance, verified,
        script, objects, descriptions, actions, length; actions ``"c092 11.90 21.20;c147 0.00 12.60"``) and the
        classes file.

        Raises:
            ValueError: a required column is missing, an action is not ``<class> <start> <end>``, or names a class id
                that the classes file does not list (the message names the id, the CSV line and the video id).
        """
        class_ids, class_names = read_charades_classes(classes_path)
        column_of = {class_id: column for column, class_id in enumerate(class_ids)}
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        missing = [c for c in CHARADES_EGO_REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"--csv {csv_path} lacks column(s) {missing}; it has {list(frame.columns)}")
        video_ids, rows, unlabelled = [], [], []
        for index, (video_id, actions) in enumerate(zip(frame["id"], frame["actions"])):
            where = f"--csv {csv_path}, line {index + 2} (id {video_id!r})"  # line 1 is the header
            label = np.zeros(len(class_ids), dtype=np.uint8)
            for action in filter(None, (a.strip() for a in actions.split(";"))):
                parts = action.split()
                if len(parts) != 3:
                    raise ValueError(f"{where}: action {action!r} is not '<class id> <start> <end>'")
                if parts[0] not in column_of:
                    raise ValueError(f"{where}: unknown class id {parts[0]!r} (not in --classes {classes_path})")
                label[column_of[parts[0]]] = 1
            if not video_id:
                raise ValueError(f"{where}: empty id")
            if label.any():
                video_ids.append(video_id)
                rows.append(label)
            else:
                unlabelled.append(video_id)
        if not video_ids:
            raise ValueError(f"--csv {csv_path} has no video with an action")
        return cls(video_ids, np.stack(rows), class_ids, class_names, unlabelled, csv_path, classes_path)

    def video_paths(self, video_root: str, video_ext: str = "mp4") -> list[str]:
        return [os.path.join(video_root, f"{video_id}.{video_ext}") for video_id in self.video_ids]


def evaluate_charades_ego(
    model,
    processor,
    annotations: CharadesEgoAnnotations,
    video_root: str,
    settings: EncodeSettings,
    *,
    templates: Sequence[str] = DEFAULT_CHARADES_TEMPLATES,
    video_ext: str = "mp4",
    cache_dir: str | None = None,
    model_id=None,
) -> EvaluationResult:
    """Charades-Ego mAP (SPEC 6): each labelled video, frames sampled over the whole video, against the class texts
    (`templates` filled with the class name; several templates are averaged, see :func:`encode_class_texts`)."""
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"prompt template {template!r} has no '{{}}' for the class name")
    started = time.perf_counter()
    paths = annotations.video_paths(video_root, video_ext)
    _raise_if_missing(paths, "Charades-Ego videos", f"--video-root {video_root}")

    def compute():
        video = encode_videos(model, processor, paths, batch_size=settings.batch_size, num_workers=settings.num_workers,
                              flip=settings.flip, device=settings.device, dtype=settings.dtype,
                              progress=settings.progress, description="Encoding Charades-Ego videos")
        text = encode_class_texts(model, processor, annotations.class_names, templates, settings)
        return {"video": video, "text": text}

    data_files = [file_fingerprint(annotations.csv_path or None), file_fingerprint(annotations.classes_path or None)]
    data_key = {"data": data_files, "video_root": os.path.abspath(video_root), "video_ext": video_ext,
                "templates": list(templates)}  # fmt: skip
    cached = _features("charades_ego", processor, settings, cache_dir, model_id, data_key, compute)
    scores = (cached.features["video"] @ cached.features["text"].T).numpy()
    metrics = charades_ego_map(scores, annotations.labels)
    return EvaluationResult("charades_ego", metrics, len(paths), len(annotations.class_ids), cached.path,
                            cached.from_cache, time.perf_counter() - started,
                            extra={"num_unlabelled_videos_excluded": len(annotations.unlabelled_ids)})  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Command-line helpers shared by examples/eval_*.py
# ---------------------------------------------------------------------------------------------------------------------


def add_common_arguments(parser) -> None:
    """The arguments every `examples/eval_*.py` script takes (model, video root, encoding, cache, output)."""
    parser.add_argument("--model", required=True, help="model folder (save_pretrained / convert_checkpoint output)")
    parser.add_argument("--processor", default=None, help="processor folder if not in --model")
    parser.add_argument("--video-root", required=True, help="folder of the videos")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass")
    parser.add_argument("--text-batch-size", type=int, default=256, help="texts per forward pass")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers decoding videos")
    parser.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (meant for CUDA)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache-dir", default=None, help="feature cache folder (default: no cache)")
    parser.add_argument("--output-json", default=None, help="write the metrics and settings here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def settings_from_args(args) -> EncodeSettings:
    """:class:`EncodeSettings` from the arguments of :func:`add_common_arguments` (checked)."""
    for name in ("batch_size", "text_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.num_frames is not None and args.num_frames < 1:
        raise ValueError(f"--num-frames must be at least 1, got {args.num_frames}")
    if not os.path.isdir(args.video_root):
        raise FileNotFoundError(f"--video-root {args.video_root} is not a folder")
    return EncodeSettings(batch_size=args.batch_size, text_batch_size=args.text_batch_size,
                          num_workers=args.num_workers, flip=args.flip, device=resolve_device(args.device),
                          dtype=torch.bfloat16 if args.bf16 else None, progress=not args.no_progress)  # fmt: skip


def run_settings(args, processor) -> dict:
    """The settings a JSON report records."""
    return {"model": args.model, "video_root": args.video_root, "num_frames": processor.image_processor.num_frames,
            "flip": args.flip, "bf16": args.bf16, "batch_size": args.batch_size}  # fmt: skip


__all__ = [
    "CachedFeatures",
    "CharadesEgoAnnotations",
    "ClipCollator",
    "EGOVLP_CHUNK_SECONDS",
    "EgoMcqQuestions",
    "EncodeSettings",
    "EvaluationResult",
    "PAPER_RESULTS",
    "cached_features",
    "egovlp_chunk_spans",
    "encode_class_texts",
    "encode_texts",
    "encode_videos",
    "evaluate_charades_ego",
    "evaluate_egomcq",
    "evaluate_ek100_mir",
    "feature_cache_path",
    "file_fingerprint",
    "load_model_and_processor",
    "model_fingerprint",
    "read_charades_classes",
    "write_json",
]
