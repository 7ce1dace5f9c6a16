"""EgoMCQ inter- / intra-video accuracy (docs/metrics.md) of the questions read by `modeling_eva02at.data.egomcq`."""

from __future__ import annotations

import os
import time

import torch

from ..data.egomcq import EgoMcqQuestions
from ..data.layouts import VIDEO_LAYOUTS
from .cache import cached_task_features
from .encoding import EncodeSettings, encode_texts, encode_videos
from .fingerprint import file_fingerprint
from .metrics import egomcq_accuracy
from .results import EvaluationResult


def evaluate_egomcq(
    model,
    processor,
    questions: EgoMcqQuestions,
    video_root: str,
    settings: EncodeSettings,
    *,
    layout: str = "auto",
    video_ext: str = "mp4",
    chunk_seconds: int = VIDEO_LAYOUTS["egovlp"],
    cache_dir: str | None = None,
    model_id=None,
) -> EvaluationResult:
    """EgoMCQ inter- / intra-video accuracy (docs/metrics.md): each question's query **text** against its candidate
    **clips** (prediction: the highest cosine similarity). Distinct clips and texts are encoded once."""
    started = time.perf_counter()
    videos, starts, ends = questions.clip_videos(video_root, layout, video_ext=video_ext, chunk_seconds=chunk_seconds)
    texts = list(dict.fromkeys(questions.query_texts))

    def compute():
        video = encode_videos(model, processor, videos, starts, ends, settings, description="Encoding EgoMCQ clips")
        text = encode_texts(model, processor, texts, settings, description="Encoding EgoMCQ queries")
        return {"video": video, "text": text}

    data_key = {
        "data": [file_fingerprint(questions.path)],
        "video_root": os.path.abspath(video_root),
        "layout": layout,
        "video_ext": video_ext,
        "chunk_seconds": chunk_seconds,
    }
    cached = cached_task_features("egomcq", processor, settings, cache_dir, model_id, data_key, compute)
    text_row = {text: row for row, text in enumerate(texts)}
    query = cached.features["text"][[text_row[t] for t in questions.query_texts]]  # (Q, D)
    candidates = cached.features["video"][torch.from_numpy(questions.choices)]  # (Q, C, D)
    similarity = torch.einsum("qd,qcd->qc", query, candidates).numpy()
    metrics = egomcq_accuracy(similarity, questions.answers, questions.types)
    return EvaluationResult(
        "egomcq",
        metrics,
        len(videos),
        len(texts),
        cached.path,
        cached.from_cache,
        time.perf_counter() - started,
        extra={"num_questions": len(questions)},
    )
