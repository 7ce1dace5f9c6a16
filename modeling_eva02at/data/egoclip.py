"""EgoClip pretraining data (docs/data_formats.md, docs/pretraining.md): metadata readers, the clip dataset and its
collator for every Ego4D video layout.

Metadata comes in two forms, both turned into one columnar `pyarrow.Table` (never a Python dict per row: EgoClip has
3.8 M rows):

* EgoVLP's tab-separated ``egoclip.csv`` (columns clip_idx, video_uid, video_dur, narration_source, narration_ind,
  narration_time, clip_start, clip_end, clip_text, tag_verb, tag_noun), read by pyarrow's multi-threaded CSV reader;
* LaViLa / AVION's pickled lists of tuples ``(video_uid, start_sec, end_sec, narration[, ...])``, where a narration
  may be a list of sentences (LaViLa's rephrased EgoClip+) of which one is drawn per step. They are read through the
  restricted unpickler of :mod:`.relevancy`, so a tampered file cannot run code.

Videos are whole files or EgoVLP / LaViLa / AVION chunks (``layout``, see :mod:`.layouts`); a clip that straddles two
chunks is read from both. Decoding and frame sampling are the remote code's (`video_reading_eva02at.py`).

Bad input is never turned into a zero or black clip. Rows with missing columns, a missing or non-numeric time,
``clip_end <= clip_start``, a clip ending after ``video_dur`` or an empty caption are found when the metadata is
read; a missing video or chunk file, or a video that cannot be decoded, when the clip is loaded. Either is reported
with its row and raised (``on_bad_row="raise"``) or skipped and counted in the log (``"skip"``).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from torch.utils.data import Dataset

from .collate import VideoTextCollator
from .layouts import VIDEO_LAYOUTS, check_layout, chunk_paths, egovlp_chunk_spans
from .relevancy import RestrictedRelevancyUnpickler
from .rows import BadClipError, check_bad_row_setting, report_bad_rows


logger = logging.getLogger(__name__)

EGOCLIP_COLUMNS = (
    "clip_idx",
    "video_uid",
    "video_dur",
    "narration_source",
    "narration_ind",
    "narration_time",
    "clip_start",
    "clip_end",
    "clip_text",
    "tag_verb",
    "tag_noun",
)
"""The columns of EgoVLP's ``egoclip.csv``, in file order."""

EGOCLIP_REQUIRED_COLUMNS = ("video_uid", "clip_start", "clip_end", "clip_text")
"""What a clip needs; the others (``clip_idx`` names rows in reports, ``tag_*`` feed EgoNCE) are optional."""

EGOCLIP_NUM_VERBS = 118
EGOCLIP_NUM_NOUNS = 582
"""EgoVLP's verb / noun classes that ``tag_verb`` / ``tag_noun`` index."""


class RestrictedClipListUnpickler(RestrictedRelevancyUnpickler):
    """LaViLa / AVION clip lists are builtins (lists, tuples, strings, floats) plus, at most, numpy scalars."""

    what = "EgoClip metadata pickle"


@dataclass
class EgoClipMetadata:
    """Clips as a `pyarrow.Table` with columns ``row`` (the clip's name in reports: ``clip_idx`` of the TSV or the
    position in the pickled list), ``video_uid``, ``clip_start``, ``clip_end`` (seconds), ``captions`` (a list of
    sentences; one is drawn per step) and, where the source has them, ``video_dur``, ``tag_verb`` / ``tag_noun``
    (JSON-like list strings, parsed per item)."""

    table: pa.Table
    path: str
    skipped: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return self.table.num_rows

    def shard(self, index: int, count: int) -> EgoClipMetadata:
        """The `index`-th of `count` contiguous, disjoint shards (e.g. one per rank in a custom loop). The Trainer
        needs no shard: its sampler splits the indices across ranks."""
        if not 0 <= index < count:
            raise ValueError(f"shard index must be in [0, {count}), got {index}")
        start, stop = len(self) * index // count, len(self) * (index + 1) // count
        return EgoClipMetadata(self.table.slice(start, stop - start), self.path, self.skipped)


def _validate(table: pa.Table, path: str, on_bad_row: str, skipped: Counter) -> pa.Table:
    """Drop (or raise on) rows whose times or captions cannot make a clip, vectorised over the columns."""
    start = table["clip_start"].to_numpy(zero_copy_only=False).astype(np.float64)
    end = table["clip_end"].to_numpy(zero_copy_only=False).astype(np.float64)
    captions = table["captions"]
    empty = pc.fill_null(pc.equal(pc.list_value_length(captions), 0), True).to_numpy(zero_copy_only=False)
    sentences = pc.list_flatten(captions)
    if len(sentences):
        # a row is empty when every one of its sentences is blank
        blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(sentences, ""))), 0)
        parents = pc.list_parent_indices(captions).to_numpy()
        kept = np.bincount(parents[~blank.to_numpy(zero_copy_only=False)], minlength=len(table))
        empty |= kept == 0
    masks = {
        "a missing or non-finite clip_start / clip_end": ~(np.isfinite(start) & np.isfinite(end)),
        "clip_end <= clip_start": np.isfinite(start) & np.isfinite(end) & (end <= start),
        "a negative clip_start": start < 0,
        "an empty caption": empty,
    }
    if "video_dur" in table.column_names:
        duration = table["video_dur"].to_numpy(zero_copy_only=False).astype(np.float64)
        # a clip may end a little after the annotated duration (rounding), not a second past it
        masks["clip_end past video_dur (the video is shorter than the clip)"] = end > duration + 1.0
    rows = table["row"].to_numpy(zero_copy_only=False)
    report_bad_rows(path, {f"row {reason}": rows[mask].tolist() for reason, mask in masks.items()}, on_bad_row, skipped)
    bad = np.logical_or.reduce(list(masks.values()))
    return table.filter(pa.array(~bad)) if bad.any() else table


def read_egoclip_tsv(path: str | os.PathLike, *, on_bad_row: str = "raise") -> EgoClipMetadata:
    """Read EgoVLP's tab-separated ``egoclip.csv`` columnar (pyarrow, all cores).

    Raises:
        ValueError: a required column is missing from the header; with ``on_bad_row="raise"``, a row with too few
            or too many columns, or any bad row of the module docstring (the message names the rows).
    """
    check_bad_row_setting(on_bad_row)
    path = os.fspath(path)
    skipped: Counter = Counter()
    ragged = []

    def invalid_row(row) -> str:
        ragged.append(f"{row.text[:80]!r} ({row.actual_columns} of {row.expected_columns} columns)")
        return "skip"

    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\r\n").split("\t")
    missing = [column for column in EGOCLIP_REQUIRED_COLUMNS if column not in header]
    if missing:
        raise ValueError(
            f"EgoClip metadata {path} lacks the column(s) {missing}; its header has {header}. Is it "
            "tab-separated (EgoVLP's egoclip.csv)?"
        )
    types = {
        "video_uid": pa.string(),
        "clip_text": pa.string(),
        "tag_verb": pa.string(),
        "tag_noun": pa.string(),
        "clip_start": pa.float64(),
        "clip_end": pa.float64(),
        "video_dur": pa.float64(),
    }
    table = pa_csv.read_csv(
        path,
        parse_options=pa_csv.ParseOptions(delimiter="\t", invalid_row_handler=invalid_row),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: kind for name, kind in types.items() if name in header},
            include_columns=[name for name in header if name in types or name == "clip_idx"],
            strings_can_be_null=False,
        ),
    )
    report_bad_rows(path, {"missing or extra columns": ragged}, on_bad_row, skipped)
    rows = table["clip_idx"] if "clip_idx" in header else pa.array(np.arange(len(table)))
    captions = pa.ListArray.from_arrays(
        pa.array(np.arange(len(table) + 1, dtype=np.int32)), table["clip_text"].combine_chunks()
    )
    columns = {
        "row": rows,
        "video_uid": table["video_uid"],
        "clip_start": table["clip_start"],
        "clip_end": table["clip_end"],
        "captions": captions,
    }
    for optional in ("video_dur", "tag_verb", "tag_noun"):
        if optional in header:
            columns[optional] = table[optional]
    return EgoClipMetadata(_validate(pa.table(columns), path, on_bad_row, skipped), path, skipped)


def read_clip_pickle(path: str | os.PathLike, *, on_bad_row: str = "raise") -> EgoClipMetadata:
    """Read a LaViLa / AVION pickled list of ``(video_uid, start_sec, end_sec, narration[, ...])`` tuples, where
    ``narration`` is a string or a list of strings, through :class:`RestrictedClipListUnpickler`.

    Raises:
        pickle.UnpicklingError: the file references a global other than numpy's reconstruction functions.
        ValueError: the file is not a list of such tuples; with ``on_bad_row="raise"``, a bad row.
    """
    check_bad_row_setting(on_bad_row)
    path = os.fspath(path)
    with open(path, "rb") as handle:
        clips = RestrictedClipListUnpickler(io.BytesIO(handle.read())).load()
    if not isinstance(clips, (list, tuple)):
        raise ValueError(
            f"{path}: expected a pickled list of (video_uid, start_sec, end_sec, narration) tuples, "
            f"got {type(clips).__name__}"
        )
    skipped: Counter = Counter()
    short = [row for row, clip in enumerate(clips) if not isinstance(clip, (list, tuple)) or len(clip) < 4]
    report_bad_rows(
        path, {"fewer than 4 fields (video_uid, start_sec, end_sec, narration)": short}, on_bad_row, skipped
    )
    keep = np.setdiff1d(np.arange(len(clips)), short)
    kept = [clips[row] for row in keep]

    def seconds(value) -> float:
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan  # reported as a bad time by _validate

    def sentences(narration) -> list[str]:
        return [str(text) for text in narration] if isinstance(narration, (list, tuple)) else [str(narration)]

    table = pa.table(
        {
            "row": pa.array(keep, pa.int64()),
            "video_uid": pa.array([str(clip[0]) for clip in kept], pa.string()),
            "clip_start": pa.array([seconds(clip[1]) for clip in kept], pa.float64()),
            "clip_end": pa.array([seconds(clip[2]) for clip in kept], pa.float64()),
            "captions": pa.array([sentences(clip[3]) for clip in kept], pa.list_(pa.string())),
        }
    )
    return EgoClipMetadata(_validate(table, path, on_bad_row, skipped), path, skipped)


def read_egoclip_metadata(path: str | os.PathLike, *, on_bad_row: str = "raise") -> EgoClipMetadata:
    """``.pkl`` files through :func:`read_clip_pickle`, anything else (``egoclip.csv``) as EgoVLP's TSV."""
    if os.fspath(path).endswith((".pkl", ".pickle")):
        return read_clip_pickle(path, on_bad_row=on_bad_row)
    return read_egoclip_tsv(path, on_bad_row=on_bad_row)


# ---------------------------------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------------------------------


class EgoClipDataset(Dataset):
    """EgoClip clips for contrastive pretraining.

    Items: `video` (the clip's file or chunk folder, for messages), `video_uid`, `start` / `end`, `caption` (drawn
    from the row's sentences, reproducibly from (seed, epoch, index)), `jitter`, `sample_seed`, `row` and, where the
    metadata has tags, EgoNCE's `verb_multi_hot` / `noun_multi_hot` (over EgoVLP's 118 verbs / 582 nouns). Decoding is
    :class:`EgoClipCollator`'s, in the DataLoader workers.
    """

    def __init__(
        self,
        metadata: EgoClipMetadata,
        video_root: str,
        layout: str = "full",
        *,
        chunk_seconds: int | None = None,
        video_ext: str = "mp4",
        train: bool = True,
        seed: int = 0,
        num_verb_classes: int = EGOCLIP_NUM_VERBS,
        num_noun_classes: int = EGOCLIP_NUM_NOUNS,
    ):
        check_layout(layout)
        if len(metadata) == 0:
            raise ValueError(f"{metadata.path}: no usable clip (every row was bad or the file is empty)")
        self.metadata = metadata
        self.video_root = video_root
        self.layout = layout
        self.chunk_seconds = chunk_seconds or VIDEO_LAYOUTS[layout]
        self.video_ext = video_ext
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.num_classes = {"tag_verb": num_verb_classes, "tag_noun": num_noun_classes}
        columns = metadata.table.column_names
        self.has_tags = "tag_verb" in columns and "tag_noun" in columns

    def __len__(self) -> int:
        return len(self.metadata)

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's data loader each epoch: a new draw of captions and frame jitter."""
        self.epoch = int(epoch)

    def _multi_hot(self, text: str, column: str, row) -> np.ndarray:
        try:
            ids = json.loads(text)
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and 0 <= i < self.num_classes[column] for i in ids
            ):
                raise ValueError
        except ValueError:
            raise BadClipError(
                f"{self.metadata.path}: row {row}: {column} {text!r} is not a list of class ids in "
                f"[0, {self.num_classes[column]})"
            ) from None
        multi_hot = np.zeros(self.num_classes[column], dtype=np.uint8)
        multi_hot[ids] = 1
        return multi_hot

    def __getitem__(self, index: int) -> dict:
        row = self.metadata.table.slice(index, 1).to_pylist()[0]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        captions = [text for text in row["captions"] if text and text.strip()]
        caption = captions[int(rng.integers(len(captions)))] if self.train else captions[0]
        # a file (full layout) or a chunk folder: <uid>.mp4/ (LaViLa, AVION), <uid>/ (EgoVLP)
        name = row["video_uid"] if self.layout == "egovlp" else f"{row['video_uid']}.{self.video_ext}"
        item = {
            "video": os.path.join(self.video_root, name),
            "video_uid": row["video_uid"],
            "start": float(row["clip_start"]),
            "end": float(row["clip_end"]),
            "caption": caption,
            "row": row["row"],
            "jitter": self.train,
            "sample_seed": int(rng.integers(2**31)),
        }
        if self.has_tags:
            item["verb_multi_hot"] = self._multi_hot(row["tag_verb"], "tag_verb", row["row"])
            item["noun_multi_hot"] = self._multi_hot(row["tag_noun"], "tag_noun", row["row"])
        return item


class EgoClipCollator(VideoTextCollator):
    """Decodes EgoClip clips in any Ego4D layout (:mod:`.layouts`) and tokenizes their captions; batches the tags'
    multi-hot rows for EgoNCE. Every file a clip needs must exist. A clip that fails raises :class:`BadClipError`
    naming its row (``on_bad_row="raise"``), or is dropped from the batch and counted (``on_bad_row="skip"``).
    """

    def __init__(self, processor, dataset: EgoClipDataset, *, num_frames: int | None = None, on_bad_row: str = "raise"):
        super().__init__(processor, num_frames=num_frames, on_bad_row=on_bad_row, chunk_ext=dataset.video_ext)
        self.dataset = dataset

    def load(self, item: dict):
        data = self.dataset
        try:
            paths = chunk_paths(
                data.video_root,
                item["video_uid"],
                item["start"],
                item["end"],
                data.layout,
                chunk_seconds=data.chunk_seconds,
                video_ext=data.video_ext,
            )
            missing = [path for path in paths if not os.path.isfile(path)]
            if missing:
                what = "video file" if data.layout == "full" else f"{data.layout} chunk(s)"
                raise FileNotFoundError(f"{what} missing (or the video ends before the clip): {', '.join(missing)}")
            if data.layout == "egovlp":
                spans = egovlp_chunk_spans(
                    item["video"], item["start"], item["end"], data.chunk_seconds, data.video_ext
                )
                item = {**item, "video": tuple(spans)}
            return super().load(item)
        except (OSError, ValueError) as error:
            raise BadClipError(
                f"EgoClip row {item['row']} (video_uid {item['video_uid']}, "
                f"[{item['start']:.2f}, {item['end']:.2f}) s): {error}"
            ) from error


__all__ = [
    "EGOCLIP_COLUMNS",
    "EgoClipCollator",
    "EgoClipDataset",
    "EgoClipMetadata",
    "RestrictedClipListUnpickler",
    "read_clip_pickle",
    "read_egoclip_metadata",
    "read_egoclip_tsv",
]
