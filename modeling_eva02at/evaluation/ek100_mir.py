"""EPIC-Kitchens-100 multi-instance retrieval: encode each clip and its own narration, score mAP / nDCG.

The annotations are read by :class:`modeling_eva02at.data.ek100.Ek100MirAnnotations`; the metric is
:func:`modeling_eva02at.evaluation.metrics.ek100_mir_metrics` (docs/metrics.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
import torch

from ..data.ek100 import Ek100MirAnnotations, Ek100MirDataset
from ..utils.files import require_paths
from .cache import cached_task_features
from .encoding import EncodeSettings, encode_texts, encode_videos
from .fingerprint import file_fingerprint
from .metrics import ek100_mir_metrics
from .results import EvaluationResult


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
    """EK-100 MIR mAP / nDCG (docs/metrics.md): each clip and its own narration are encoded (as
    `Eva02AtTrainer.evaluate`), the caption columns are those of the sentence CSV, scored against
    `annotations.relevancy`.

    The cached features (`video`, `text`: one row per clip) do not depend on the relevancy matrix, so re-scoring
    with another one is instant. `data_files` (the retrieval CSV) go into the cache key by fingerprint.
    """
    started = time.perf_counter()
    dataset = Ek100MirDataset(annotations, video_root, train=False, video_ext=video_ext)
    require_paths(dataset.video_paths(), "EK-100 videos", video_root)
    items = [dataset[i] for i in range(len(dataset))]

    def compute():
        videos, starts, ends = ([item[key] for item in items] for key in ("video", "start", "end"))
        video = encode_videos(model, processor, videos, starts, ends, settings, description="Encoding EK-100 clips")
        captions = [item["caption"] for item in items]
        text = encode_texts(model, processor, captions, settings, description="Encoding EK-100 narrations")
        return {"video": video, "text": text}

    data_key = {
        "data": [file_fingerprint(p) for p in data_files],
        "video_root": os.path.abspath(video_root),
        "video_ext": video_ext,
        "num_clips": len(items),
    }
    cached = cached_task_features("ek100_mir", processor, settings, cache_dir, model_id, data_key, compute)
    similarity = ek100_mir_similarity(cached.features["video"], cached.features["text"], annotations.caption_columns)
    metrics = ek100_mir_metrics(similarity, annotations.relevancy)
    return EvaluationResult(
        "ek100_mir",
        metrics,
        len(items),
        len(annotations.sentences),
        cached.path,
        cached.from_cache,
        time.perf_counter() - started,
    )
