"""Charades-Ego: the test videos' multi-hot labels and the zero-shot / fine-tuned mAP task (docs/metrics.md).

The CSV and classes-file readers are shared with the fine-tuning data (`modeling_eva02at.data.charades_ego`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.charades_ego import read_charades_classes, read_charades_ego_csv, split_actions
from ..utils.files import require_paths
from .cache import cached_task_features
from .encoding import EncodeSettings, encode_class_texts, encode_videos
from .fingerprint import file_fingerprint
from .metrics import charades_ego_map
from .results import EvaluationResult


DEFAULT_CHARADES_TEMPLATES = ("{}",)
"""Class texts are the bare class names, as LaViLa's zero-shot Charades-Ego evaluation (its default `['{}']`)."""


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
    def from_files(cls, csv_path: str, classes_path: str) -> CharadesEgoAnnotations:
        """Read ``CharadesEgo_v1_test_only1st.csv`` (columns id, subject, scene, quality, relevance, verified,
        script, objects, descriptions, actions, length; actions ``"c092 11.90 21.20;c147 0.00 12.60"``) and the
        classes file.

        Raises:
            ValueError: a required column is missing, an action is not ``<class> <start> <end>``, or names a class id
                that the classes file does not list (the message names the id, the CSV line and the video id).
        """
        class_ids, class_names = read_charades_classes(classes_path)
        column_of = {class_id: column for column, class_id in enumerate(class_ids)}
        frame = read_charades_ego_csv(csv_path)
        video_ids, rows, unlabelled = [], [], []
        for index, (video_id, actions) in enumerate(zip(frame["id"], frame["actions"])):
            where = f"Charades-Ego CSV {csv_path}, line {index + 2} (id {video_id!r})"  # line 1 is the header
            label = np.zeros(len(class_ids), dtype=np.uint8)
            for action in split_actions(actions):
                parts = action.split()
                if len(parts) != 3:
                    raise ValueError(f"{where}: action {action!r} is not '<class id> <start> <end>'")
                if parts[0] not in column_of:
                    raise ValueError(f"{where}: unknown class id {parts[0]!r} (not in the classes file {classes_path})")
                label[column_of[parts[0]]] = 1
            if not video_id:
                raise ValueError(f"{where}: empty id")
            if label.any():
                video_ids.append(video_id)
                rows.append(label)
            else:
                unlabelled.append(video_id)
        if not video_ids:
            raise ValueError(f"Charades-Ego CSV {csv_path} has no video with an action")
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
    """Charades-Ego mAP (docs/metrics.md): each labelled video, frames sampled over the whole video, against the
    class texts (`templates` filled with the class name; several templates are averaged, see
    :func:`encode_class_texts`)."""
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"prompt template {template!r} has no '{{}}' for the class name")
    started = time.perf_counter()
    paths = annotations.video_paths(video_root, video_ext)
    require_paths(paths, "Charades-Ego videos", video_root)

    def compute():
        video = encode_videos(model, processor, paths, settings=settings, description="Encoding Charades-Ego videos")
        text = encode_class_texts(model, processor, annotations.class_names, templates, settings)
        return {"video": video, "text": text}

    data_files = [file_fingerprint(annotations.csv_path or None), file_fingerprint(annotations.classes_path or None)]
    data_key = {
        "data": data_files,
        "video_root": os.path.abspath(video_root),
        "video_ext": video_ext,
        "templates": list(templates),
    }
    cached = cached_task_features("charades_ego", processor, settings, cache_dir, model_id, data_key, compute)
    scores = (cached.features["video"] @ cached.features["text"].T).numpy()
    metrics = charades_ego_map(scores, annotations.labels)
    return EvaluationResult(
        "charades_ego",
        metrics,
        len(paths),
        len(annotations.class_ids),
        cached.path,
        cached.from_cache,
        time.perf_counter() - started,
        extra={"num_unlabelled_videos_excluded": len(annotations.unlabelled_ids)},
    )
