"""EPIC-Kitchens-100 multi-instance retrieval data: the annotations and a clip dataset.

Rows stay light (a video path, timestamps, a caption and indices): decoding happens in the collator
(`collate.VideoTextCollator`), i.e. in the DataLoader workers, and never keeps a VideoReader on the dataset. The layer
knows nothing about losses: it hands the trainer the (clip index, sentence index, positive relevancy) triple that
relevancy-aware losses look up, and the clip's verb / noun classes that EgoNCE compares.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from ..video_reading_eva02at import time_to_seconds
from .relevancy import (
    POSITIVE_THRESHOLD,
    build_relevancy,
    load_relevancy_pickle,
    positive_sentences,
    read_retrieval_csv,
    read_sentence_csv,
)


logger = logging.getLogger(__name__)


def timestamp_to_seconds(stamp: str) -> float:
    """EK-100's "HH:MM:SS.ff" -> seconds. Stricter than the processor's `time_to_seconds`, which it uses: a CSV
    timestamp column must hold the full form."""
    if not isinstance(stamp, str) or stamp.count(":") != 2:
        raise ValueError(f"timestamp {stamp!r} is not of the form HH:MM:SS.ff")
    return time_to_seconds(stamp, "timestamp")


@dataclass
class Ek100MirAnnotations:
    """One split of EK-100 MIR: its clips (retrieval CSV rows), captions (sentence CSV rows) and relevancy."""

    clips: pd.DataFrame
    sentences: pd.DataFrame
    relevancy: np.ndarray  # (num_clips, num_sentences) float32

    @classmethod
    def from_files(cls, retrieval_csv, sentence_csv, relevancy=None) -> Ek100MirAnnotations:
        """Read the CSVs; `relevancy` is the official pickle's path, or None to build it from the CSVs
        (docs/relevancy.md)."""
        clips = read_retrieval_csv(retrieval_csv)
        sentences = read_sentence_csv(sentence_csv)
        if relevancy is None:
            matrix = build_relevancy(clips, sentences)
        else:
            matrix = load_relevancy_pickle(relevancy)
            expected = (len(clips), len(sentences))
            if matrix.shape != expected:
                raise ValueError(
                    f"relevancy {relevancy} has shape {matrix.shape} but {retrieval_csv} has {expected[0]} clips and "
                    f"{sentence_csv} has {expected[1]} sentences: the files are not of the same split"
                )
        return cls(clips=clips.reset_index(drop=True), sentences=sentences.reset_index(drop=True), relevancy=matrix)

    @property
    def caption_columns(self) -> np.ndarray:
        """For each sentence, the index of the clip whose narration it is: the columns of the clip x clip similarity
        (each clip against its own narration) that form the clip x caption matrix the metrics score."""
        position = pd.Series(np.arange(len(self.clips)), index=self.clips["narration_id"].to_numpy())
        missing = ~self.sentences["narration_id"].isin(position.index)
        if missing.any():
            raise ValueError(
                f"sentence narration_ids missing from the retrieval CSV: "
                f"{self.sentences['narration_id'][missing].head(5).tolist()}"
            )
        return position.loc[self.sentences["narration_id"].to_numpy()].to_numpy()

    def to_dataset(self, video_root: str, ext: str = "MP4"):
        """The clips as a `datasets.Dataset`: video paths as plain string columns (the `Video` feature decodes with
        torchcodec, unavailable with a CPU torch here), start / end seconds and narration. Decode in
        `set_transform` with the processor, e.g.::

            table.set_transform(
                lambda b: processor(text=b["narration"], videos=b["video"], start=b["start"], end=b["end"])
            )
        """
        import datasets

        clips = self.clips
        return datasets.Dataset.from_dict(
            {
                "narration_id": clips["narration_id"].astype(str).tolist(),
                "video": [self.video_path(video_root, i, ext) for i in range(len(clips))],
                "start": [timestamp_to_seconds(s) for s in clips["start_timestamp"]],
                "end": [timestamp_to_seconds(s) for s in clips["stop_timestamp"]],
                "narration": clips["narration"].astype(str).tolist(),
                "verb_class": clips["verb_class"].astype(int).tolist(),
            }
        )

    def video_path(self, video_root: str, index: int, ext: str = "MP4") -> str:
        """`<root>/<participant>/<video_id>.MP4`: a video file, or AVION's folder of 15-second chunks."""
        row = self.clips.iloc[index]
        return os.path.join(video_root, str(row["participant_id"]), f"{row['video_id']}.{ext}")


class Ek100MirDataset(Dataset):
    """EK-100 MIR clips with their captions.

    Training (`train=True`): each clip is paired with a sentence drawn uniformly from those with R > 0.1 (EgoVLP hard
    mining), reproducibly from (seed, epoch, clip), so a resumed run draws what an uninterrupted one would.
    Evaluation: each clip with its own narration (the metrics keep the caption columns, see `caption_columns`).

    Items: `video` (path), `start` / `end` (seconds), `caption`, `video_index`, `sentence_index` (-1 in evaluation),
    `positive_relevancy` (r_a, unquantised), `jitter` (train: frames jittered within segments, else midpoints),
    `sample_seed` (the jitter's seed), and EgoNCE's class labels of the item's *clip* (retrieval CSV), multi-hot:
    `verb_multi_hot` (its `verb_class`, `num_verb_classes` wide) and `noun_multi_hot` (its `all_noun_classes`,
    `num_noun_classes` wide, so that two clips share a noun as they do in the relevancy, docs/relevancy.md). They are
    the clip's classes, not its drawn caption's (one of the clip's R > 0.1 sentences, whose verb or nouns may differ):
    every split's retrieval CSV has them, the test sentence CSV has no classes.
    """

    def __init__(
        self,
        annotations: Ek100MirAnnotations,
        video_root: str,
        *,
        train: bool,
        seed: int = 0,
        positive_threshold: float = POSITIVE_THRESHOLD,
        video_ext: str = "MP4",
    ):
        self.annotations = annotations
        self.video_root = video_root
        self.train = train
        self.seed = seed
        self.video_ext = video_ext
        self.epoch = 0
        self.positives = positive_sentences(annotations.relevancy, positive_threshold) if train else None
        clips = annotations.clips
        self.num_verb_classes = 1 + int(clips["verb_class"].max())
        self.num_noun_classes = 1 + max((noun for nouns in clips["all_noun_classes"] for noun in nouns), default=-1)
        self._starts = np.array([timestamp_to_seconds(s) for s in clips["start_timestamp"]])
        self._ends = np.array([timestamp_to_seconds(s) for s in clips["stop_timestamp"]])
        bad = np.flatnonzero(self._ends <= self._starts)
        if len(bad):
            raise ValueError(
                f"clips with stop_timestamp <= start_timestamp: {clips['narration_id'].iloc[bad[:5]].tolist()}"
            )

    @property
    def relevancy(self) -> np.ndarray:
        return self.annotations.relevancy

    @property
    def caption_columns(self) -> np.ndarray:
        return self.annotations.caption_columns

    def __len__(self) -> int:
        return len(self.annotations.clips)

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's data loader each epoch: a new draw of positives and frame jitter."""
        self.epoch = int(epoch)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.epoch, index))

    def __getitem__(self, index: int) -> dict:
        clips = self.annotations.clips
        rng = self._rng(index)
        if self.train:
            sentence = int(rng.choice(self.positives.sentences_of(index)))
            caption = self.annotations.sentences["narration"].iloc[sentence]
            positive_relevancy = float(self.annotations.relevancy[index, sentence])
        else:
            sentence, caption, positive_relevancy = -1, clips["narration"].iloc[index], 1.0
        verb_multi_hot = np.zeros(self.num_verb_classes, dtype=np.uint8)
        verb_multi_hot[clips["verb_class"].iloc[index]] = 1
        noun_multi_hot = np.zeros(self.num_noun_classes, dtype=np.uint8)
        noun_multi_hot[clips["all_noun_classes"].iloc[index]] = 1
        return {
            "video": self.annotations.video_path(self.video_root, index, self.video_ext),
            "start": float(self._starts[index]),
            "end": float(self._ends[index]),
            "caption": str(caption),
            "video_index": index,
            "sentence_index": sentence,
            "positive_relevancy": positive_relevancy,
            "jitter": self.train,
            "sample_seed": int(rng.integers(2**31)),
            "verb_multi_hot": verb_multi_hot,
            "noun_multi_hot": noun_multi_hot,
        }

    def video_paths(self) -> list[str]:
        """The video path of every clip, in row order (check them with `utils.files.require_paths` before a run)."""
        return [self.annotations.video_path(self.video_root, i, self.video_ext) for i in range(len(self))]
