"""Charades-Ego fine-tuning data (docs/data_formats.md, docs/pretraining.md): the CSV and classes-file readers, the
trimmed-action dataset and its collator.

``CharadesEgo_v1_{train,test}_only1st.csv`` has one row per video (columns id, subject, scene, quality, relevance,
verified, script, objects, descriptions, actions, length, egocentric, charades_video); ``actions`` lists the video's
action segments ``"c092 11.90 21.20;c147 0.00 12.60"`` (class id, start and end in seconds; may be empty).
``Charades_v1_classes.txt`` names the classes, one ``c000 Holding some clothes`` per line.

Training is on trimmed actions, as LaViLa fine-tunes: every action segment is one sample, its caption the class
name, its label the class index (`class_ids`, which the ``sms_hard`` loss turns into 0/1 relevancy: two samples are
relevant when they share the class). Evaluation (`modeling_eva02at.evaluation.charades_ego`) scores whole videos
against every class.

Bad input is never turned into a zero or black clip. An action that is not ``<class id> <start> <end>``, names a
class the classes file lacks, or has ``end <= start``, and a row whose video file is missing, are found when the CSV
is read; a video that cannot be decoded (or ends before the segment starts) when the segment is loaded. Either is
reported with its CSV line and raised (``on_bad_row="raise"``) or skipped and counted in the log (``"skip"``).
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from ..utils.files import read_text, read_text_csv
from .collate import VideoTextCollator
from .rows import BadClipError, check_bad_row_setting, report_bad_rows


CHARADES_EGO_COLUMNS = (
    "id",
    "subject",
    "scene",
    "quality",
    "relevance",
    "verified",
    "script",
    "objects",
    "descriptions",
    "actions",
    "length",
    "egocentric",
    "charades_video",
)
"""The columns of ``CharadesEgo_v1_{train,test}_only1st.csv``, in file order."""

CHARADES_EGO_REQUIRED_COLUMNS = ("id", "actions")
"""What the readers need; the others are descriptive."""

CHARADES_NUM_CLASSES = 157
"""Classes of ``Charades_v1_classes.txt`` (the metric is over the classes file's classes)."""

ACTION_FORMAT = "'<class id> <start> <end>'"


def read_charades_classes(path: str) -> tuple[list[str], list[str]]:
    """``Charades_v1_classes.txt`` (lines ``c000 Holding some clothes``) -> (class ids, class names), in file order.

    The name is the rest of the line after the id and one space, commas included.
    """
    ids, names = [], []
    for number, line in enumerate(read_text(path, "classes file").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise ValueError(f"classes file {path}: line {number} {line!r} is not '<class id> <class name>'")
        if parts[0] in ids:
            raise ValueError(f"classes file {path}: class id {parts[0]!r} appears twice (line {number})")
        ids.append(parts[0])
        names.append(parts[1])
    if not ids:
        raise ValueError(f"classes file {path} lists no class")
    return ids, names


def read_charades_ego_csv(path: str) -> pd.DataFrame:
    """A Charades-Ego CSV as strings (empty cells stay ``""``); row ``i`` is line ``i + 2`` of the file.

    Raises:
        ValueError: a required column (``id``, ``actions``) is missing.
    """
    frame = read_text_csv(path, "Charades-Ego CSV")
    missing = [c for c in CHARADES_EGO_REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"Charades-Ego CSV {path} lacks column(s) {missing}; it has {list(frame.columns)}")
    return frame


def split_actions(actions: str) -> list[str]:
    """The non-empty ``;``-separated actions of an ``actions`` cell, stripped."""
    return [action for action in (a.strip() for a in actions.split(";")) if action]


class CharadesEgoDataset(Dataset):
    """Trimmed Charades-Ego action segments for fine-tuning.

    Items: `video` (``<video_root>/<id>.<video_ext>``), `start` / `end` (seconds), `caption` (the class name),
    `class_ids` (the class's index in the classes file), `video_index` (the segment's index, named in error
    reports), `jitter` (train: frames jittered within their segments, else midpoints), `sample_seed` (from
    (seed, epoch, index), so a resumed run draws what an uninterrupted one would) and `where` (the CSV line, for
    messages). Decoding is :class:`CharadesEgoCollator`'s, in the DataLoader workers.

    Attributes:
        class_ids / class_names: the classes file, in its order.
        skipped: bad segments / rows skipped, by reason (``on_bad_row="skip"``).
        num_unlabelled_videos: rows with an empty ``actions`` (allowed; they give no segment).
    """

    def __init__(
        self,
        csv_path: str,
        classes_path: str,
        video_root: str,
        *,
        train: bool = True,
        seed: int = 0,
        on_bad_row: str = "raise",
        video_ext: str = "mp4",
    ):
        """Read the CSV and the classes file and check every action and video file.

        Raises:
            ValueError: a required column is missing; no usable segment; with ``on_bad_row="raise"``, any bad action
                or missing video (the message names the CSV lines and says how to skip them instead).
        """
        check_bad_row_setting(on_bad_row)
        self.csv_path, self.video_root, self.video_ext = csv_path, video_root, video_ext
        self.train, self.seed, self.epoch = train, seed, 0
        self.class_ids, self.class_names = read_charades_classes(classes_path)
        column_of = {class_id: column for column, class_id in enumerate(self.class_ids)}
        frame = read_charades_ego_csv(csv_path)
        bad = defaultdict(list)  # reason -> the CSV lines (and actions) that have it
        segments = []  # (where, video id, class index, start, end)
        self.num_unlabelled_videos = 0
        for index, (video_id, actions) in enumerate(zip(frame["id"], frame["actions"])):
            where = f"line {index + 2} (id {video_id!r})"  # line 1 is the header
            actions = split_actions(actions)
            if not actions:
                self.num_unlabelled_videos += 1
                continue
            if not video_id:
                bad["an empty id"].append(where)
                continue
            if not os.path.isfile(self.video_path(video_id)):
                bad["a missing video file"].append(f"{where}: {self.video_path(video_id)}")
                continue
            for action in actions:
                parts = action.split()
                times = [_seconds(text) for text in parts[1:]]
                if len(parts) != 3 or not all(math.isfinite(t) for t in times):
                    bad[f"an action that is not {ACTION_FORMAT}"].append(f"{where} {action!r}")
                elif parts[0] not in column_of:
                    bad[f"a class id missing from the classes file {classes_path}"].append(f"{where} {action!r}")
                elif times[1] <= times[0] or times[0] < 0:
                    bad["end <= start or a negative start"].append(f"{where} {action!r}")
                else:
                    segments.append((f"{where} action {action!r}", video_id, column_of[parts[0]], *times))
        self.skipped: Counter = Counter()
        report_bad_rows(csv_path, bad, on_bad_row, self.skipped)
        if not segments:
            raise ValueError(
                f"Charades-Ego CSV {csv_path}: no usable action segment (every row was bad, unlabelled "
                "or the file is empty)"
            )
        self.segments = pd.DataFrame(segments, columns=["where", "video_id", "class_index", "start", "end"])

    def video_path(self, video_id: str) -> str:
        return os.path.join(self.video_root, f"{video_id}.{self.video_ext}")

    def __len__(self) -> int:
        return len(self.segments)

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's data loader each epoch: a new draw of frame jitter."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        segment = self.segments.iloc[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return {
            "video": self.video_path(segment["video_id"]),
            "start": float(segment["start"]),
            "end": float(segment["end"]),
            "caption": self.class_names[segment["class_index"]],
            "class_ids": int(segment["class_index"]),
            "video_index": index,
            "jitter": self.train,
            "sample_seed": int(rng.integers(2**31)),
            "where": f"Charades-Ego CSV {self.csv_path}, {segment['where']}",
        }


def _seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


class CharadesEgoCollator(VideoTextCollator):
    """Decodes a batch of Charades-Ego segments and tokenizes their class names; batches `class_ids` for
    ``sms_hard``. A segment that cannot be decoded raises :class:`BadClipError` naming its CSV line
    (``on_bad_row="raise"``), or is dropped from the batch and counted in `skipped` (``on_bad_row="skip"``)."""

    LABELS = {**VideoTextCollator.LABELS, "class_ids": torch.long}

    def load(self, item: dict) -> torch.Tensor:
        try:
            return super().load(item)
        except (OSError, ValueError) as error:
            raise BadClipError(f"{item['where']}: {error}") from error


__all__ = [
    "CHARADES_EGO_COLUMNS",
    "CHARADES_EGO_REQUIRED_COLUMNS",
    "CHARADES_NUM_CLASSES",
    "CharadesEgoCollator",
    "CharadesEgoDataset",
    "read_charades_classes",
    "read_charades_ego_csv",
    "split_actions",
]
