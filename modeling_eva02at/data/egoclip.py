"""EgoClip pretraining data (docs/data_formats.md, docs/pretraining.md): metadata readers, the clip dataset and its
collator for every Ego4D video layout.

Metadata comes in two forms, both turned into one columnar `pyarrow.Table` (never a Python dict per row: EgoClip has
3.8 M rows):

* EgoVLP's tab-separated ``egoclip.csv`` (columns clip_idx, video_uid, video_dur, narration_source, narration_ind,
  narration_time, clip_start, clip_end, clip_text, tag_verb, tag_noun), read by pyarrow's CSV reader;
* LaViLa / AVION's pickled lists of tuples ``(video_uid, start_sec, end_sec, narration[, ...])``, where a narration
  may be a list of sentences (LaViLa's rephrased EgoClip+) of which one is drawn per step. They are read through the
  restricted unpickler of :mod:`.relevancy`, so a tampered file cannot run code.

Videos are whole files or EgoVLP / LaViLa / AVION chunks (``layout``, see :mod:`.layouts`); a clip that straddles
chunks is sampled as one range over them, so it gets the same frames from every layout. Decoding and frame sampling
are the remote code's (`video_reading_eva02at.py`).

A ``clip_start`` before 0 s (EgoClip's windows around a narration near a video's start) is clamped to 0, as EgoVLP
does, and counted in the log. Bad input is never turned into a zero or black clip. Rows with missing columns, a
missing or non-numeric time, ``clip_end <= clip_start`` (after the clamp), a clip ending after ``video_dur`` or an
empty caption are found when the metadata is read; a missing video or chunk file when the dataset is built; a video
that cannot be decoded when the clip is loaded. Each is reported with its place in the file (``line 7 (clip_idx 5)``
in the TSV, as an editor numbers lines; ``item 5`` in a pickled list) and raised (``on_bad_row="raise"``) or skipped
and counted in the log (``"skip"``).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .collate import VideoTextCollator
from .layouts import VIDEO_LAYOUTS, EgoVlpChunks, check_layout, chunk_paths, chunk_range, chunks_on_disk, video_path
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
    """Clips as a `pyarrow.Table` with columns ``row`` (``clip_idx`` of the TSV, or its file line where it has no
    such column; the position in a pickled list), ``line`` (TSV only: the file line, counting the header as line 1, as
    an editor numbers them), ``video_uid``, ``clip_start``, ``clip_end`` (seconds; a negative start clamped to 0),
    ``captions`` (a list of sentences; one is drawn per step) and, where the source has them, ``video_dur``,
    ``tag_verb`` / ``tag_noun`` (JSON-like list strings, parsed per item).

    Attributes:
        row_label: what ``row`` is: ``"clip_idx"`` or ``"line"`` (TSV), ``"item"`` (pickle).
        skipped: bad rows skipped, by reason (``on_bad_row="skip"``).
        num_clamped: rows whose negative ``clip_start`` was clamped to 0.
    """

    table: pa.Table
    path: str
    skipped: Counter = field(default_factory=Counter)
    row_label: str = "item"
    num_clamped: int = 0

    def __len__(self) -> int:
        return self.table.num_rows

    def shard(self, index: int, count: int) -> EgoClipMetadata:
        """The `index`-th of `count` contiguous, disjoint shards (e.g. one per rank in a custom loop). The Trainer
        needs no shard: its sampler splits the indices across ranks."""
        if not 0 <= index < count:
            raise ValueError(f"shard index must be in [0, {count}), got {index}")
        start, stop = len(self) * index // count, len(self) * (index + 1) // count
        return replace(self, table=self.table.slice(start, stop - start))

    def row_name(self, row, line=None) -> str:
        """How messages name a row: ``line 7 (clip_idx 5)`` or ``line 7`` in the TSV, ``item 5`` in a pickle."""
        if self.row_label == "clip_idx":
            return f"line {line} (clip_idx {row})"
        return f"{self.row_label} {row}"

    def row_names(self, indices: np.ndarray) -> list[str]:
        """:meth:`row_name` of the table's rows `indices` (only the rows a message names: EgoClip has 3.8 M)."""
        rows = self.table["row"].take(pa.array(indices, pa.int64())).to_pylist()
        if "line" not in self.table.column_names:
            return [self.row_name(row) for row in rows]
        lines = self.table["line"].take(pa.array(indices, pa.int64())).to_pylist()
        return [self.row_name(row, line) for row, line in zip(rows, lines)]


def _numbers(table: pa.Table, column: str) -> np.ndarray:
    """A numeric column as float64, NaN where it is missing."""
    return table[column].to_numpy(zero_copy_only=False).astype(np.float64)


def _validate(metadata: EgoClipMetadata, on_bad_row: str) -> EgoClipMetadata:
    """Clamp negative starts to 0 and drop (or raise on) rows whose times or captions cannot make a clip, vectorised
    over the columns."""
    table, path = metadata.table, metadata.path
    start, end = _numbers(table, "clip_start"), _numbers(table, "clip_end")
    finite = np.isfinite(start) & np.isfinite(end)
    # EgoClip's windows around a narration near a video's start begin before 0 s: EgoVLP clamps them to 0 (so does
    # this package's EgoMCQ reader). A clip that still ends at or before its start is bad.
    clamped = finite & (start < 0)
    start = np.where(clamped, 0.0, start)
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
        "a missing or non-finite clip_start / clip_end": ~finite,
        "clip_end <= clip_start": finite & (end <= start),
        "an empty caption": empty,
    }
    if "video_dur" in table.column_names:
        # a clip may end a little after the annotated duration (rounding), not a second past it
        masks["clip_end past video_dur (the video is shorter than the clip)"] = end > _numbers(table, "video_dur") + 1.0
    bad = np.logical_or.reduce(list(masks.values()))
    bad_rows = np.flatnonzero(bad)
    names = np.array(metadata.row_names(bad_rows), dtype=object)
    skipped = Counter(metadata.skipped)
    report_bad_rows(
        path, {reason: names[mask[bad_rows]].tolist() for reason, mask in masks.items()}, on_bad_row, skipped
    )
    num_clamped = int(np.count_nonzero(clamped & ~bad))
    if num_clamped:
        logger.info(f"{path}: {num_clamped} rows start before 0 s; clamped to 0 as EgoVLP does")
    table = table.set_column(table.column_names.index("clip_start"), "clip_start", pa.array(start))
    if bad.any():
        table = table.filter(pa.array(~bad))
    return replace(metadata, table=table, skipped=skipped, num_clamped=num_clamped)


def read_egoclip_tsv(path: str | os.PathLike, *, on_bad_row: str = "raise") -> EgoClipMetadata:
    """Read EgoVLP's tab-separated ``egoclip.csv`` columnar (pyarrow). Blank lines are ignored.

    Raises:
        ValueError: a required column is missing from the header; with ``on_bad_row="raise"``, a row with too few
            or too many columns, or any bad row of the module docstring (the message names the file lines).
    """
    check_bad_row_setting(on_bad_row)
    path = os.fspath(path)
    skipped: Counter = Counter()
    ragged, ragged_lines = [], []

    def invalid_row(row) -> str:
        ragged_lines.append(row.number)
        ragged.append(f"line {row.number} {row.text[:80]!r} ({row.actual_columns} of {row.expected_columns} columns)")
        return "skip"

    try:
        with open(path, encoding="utf-8") as handle:
            header = handle.readline().rstrip("\r\n").split("\t")
    except UnicodeDecodeError as error:
        raise ValueError(f"EgoClip metadata {path} is not a UTF-8 text file: {error}") from error
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
    # Messages name file lines, as an editor numbers them. pyarrow numbers the rows it skips only when it reads on
    # one thread (3.8 M rows still take seconds), and blank lines are kept as empty rows, dropped below, so that
    # every other row's line follows from its position.
    try:
        table = pa_csv.read_csv(
            path,
            read_options=pa_csv.ReadOptions(use_threads=False),
            parse_options=pa_csv.ParseOptions(
                delimiter="\t", invalid_row_handler=invalid_row, ignore_empty_lines=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: kind for name, kind in types.items() if name in header},
                include_columns=[name for name in header if name in types or name == "clip_idx"],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:  # e.g. invalid UTF-8 past the header, or a number column that is not numbers
        raise ValueError(f"EgoClip metadata {path} does not parse: {error}") from error
    report_bad_rows(path, {"missing or extra columns": ragged}, on_bad_row, skipped)
    # line 1 is the header; every later line is a row of the table, or one skipped above
    lines = np.setdiff1d(np.arange(2, 2 + len(table) + len(ragged_lines)), ragged_lines)
    blank = (
        pc.equal(table["video_uid"], "").to_numpy(zero_copy_only=False)
        & pc.equal(table["clip_text"], "").to_numpy(zero_copy_only=False)
        & np.isnan(_numbers(table, "clip_start"))
        & np.isnan(_numbers(table, "clip_end"))
    )
    if blank.any():
        table, lines = table.filter(pa.array(~blank)), lines[~blank]
    row_label = "clip_idx" if "clip_idx" in header else "line"
    captions = pa.ListArray.from_arrays(
        pa.array(np.arange(len(table) + 1, dtype=np.int32)), table["clip_text"].combine_chunks()
    )
    columns = {
        "row": table["clip_idx"] if row_label == "clip_idx" else pa.array(lines),
        "line": pa.array(lines),
        "video_uid": table["video_uid"],
        "clip_start": table["clip_start"],
        "clip_end": table["clip_end"],
        "captions": captions,
    }
    for optional in ("video_dur", "tag_verb", "tag_noun"):
        if optional in header:
            columns[optional] = table[optional]
    return _validate(EgoClipMetadata(pa.table(columns), path, skipped, row_label), on_bad_row)


def read_clip_pickle(path: str | os.PathLike, *, on_bad_row: str = "raise") -> EgoClipMetadata:
    """Read a LaViLa / AVION pickled list of ``(video_uid, start_sec, end_sec, narration[, ...])`` tuples, where
    ``narration`` is a string or a list of strings, through :class:`RestrictedClipListUnpickler`.

    Raises:
        PickleFileError: the file references a global other than numpy's reconstruction functions, or is no pickle.
        ValueError: the file is not a list of such tuples; with ``on_bad_row="raise"``, a bad row.
    """
    check_bad_row_setting(on_bad_row)
    path = os.fspath(path)
    clips = RestrictedClipListUnpickler.load_file(path)
    if not isinstance(clips, (list, tuple)):
        raise ValueError(
            f"{path}: expected a pickled list of (video_uid, start_sec, end_sec, narration) tuples, "
            f"got {type(clips).__name__}"
        )
    skipped: Counter = Counter()
    short = [row for row, clip in enumerate(clips) if not isinstance(clip, (list, tuple)) or len(clip) < 4]
    report_bad_rows(
        path,
        {"fewer than 4 fields (video_uid, start_sec, end_sec, narration)": [f"item {row}" for row in short]},
        on_bad_row,
        skipped,
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
    return _validate(EgoClipMetadata(table, path, skipped, "item"), on_bad_row)


def read_egoclip_metadata(path: str | os.PathLike, *, on_bad_row: str = "raise") -> EgoClipMetadata:
    """``.pkl`` files through :func:`read_clip_pickle`, anything else (``egoclip.csv``) as EgoVLP's TSV."""
    if os.fspath(path).endswith((".pkl", ".pickle")):
        return read_clip_pickle(path, on_bad_row=on_bad_row)
    return read_egoclip_tsv(path, on_bad_row=on_bad_row)


# ---------------------------------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------------------------------


def _end_within_video(start, end, video_dur):
    """Where a clip's frames end: EgoClip clips may end up to 1 s past ``video_dur`` (see :func:`_validate`), and no
    file holds the time past the video's end. Scalars (``video_dur`` None where unknown) or arrays."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    duration = np.asarray(np.nan if video_dur is None else video_dur, np.float64)
    return np.where(np.isfinite(duration) & (duration > start), np.minimum(end, duration), end)


class EgoClipDataset(Dataset):
    """EgoClip clips for contrastive pretraining.

    Every clip's video file or chunks are checked when the dataset is built (one file-system call per video: a chunk
    folder is listed once), so a missing file stops the run at once, naming the file line, rather than a DataLoader
    worker hours into training.

    Items: `video` (what :func:`~.layouts.load_clip` reads: the clip's file, AVION / LaViLa chunk folder or
    :class:`~.layouts.EgoVlpChunks`), `files` (the files the clip is read from), `video_uid`, `start` / `end`,
    `caption` (drawn from the row's sentences, reproducibly from (seed, epoch, index)), `jitter`, `sample_seed`,
    `row`, `where` (the metadata file and line, for messages) and, where the metadata has tags, EgoNCE's
    `verb_multi_hot` / `noun_multi_hot` (over EgoVLP's 118 verbs / 582 nouns). Decoding is :class:`EgoClipCollator`'s,
    in the DataLoader workers.

    Raises:
        FileNotFoundError: `video_root` is not a folder.
        ValueError: no usable clip; with ``on_bad_row="raise"``, a clip whose video file or chunk is missing (the
            message names the file lines and the files, and says how to skip them instead).
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
        on_bad_row: str = "raise",
        num_verb_classes: int = EGOCLIP_NUM_VERBS,
        num_noun_classes: int = EGOCLIP_NUM_NOUNS,
    ):
        check_layout(layout)
        check_bad_row_setting(on_bad_row)
        if len(metadata) == 0:
            raise ValueError(f"{metadata.path}: no usable clip (every row was bad or the file is empty)")
        self.video_root = video_root
        self.layout = layout
        self.chunk_seconds = chunk_seconds or VIDEO_LAYOUTS[layout]
        self.video_ext = video_ext
        self.train = train
        self.seed = seed
        self.epoch = 0
        self.num_classes = {"tag_verb": num_verb_classes, "tag_noun": num_noun_classes}
        self.metadata = self._drop_missing_videos(metadata, on_bad_row)
        if len(self.metadata) == 0:
            raise ValueError(f"{metadata.path}: no usable clip: every clip's video is missing under {video_root}")
        columns = metadata.table.column_names
        self.has_tags = "tag_verb" in columns and "tag_noun" in columns

    def __len__(self) -> int:
        return len(self.metadata)

    def set_epoch(self, epoch: int) -> None:
        """Called by accelerate's data loader each epoch: a new draw of captions and frame jitter."""
        self.epoch = int(epoch)

    def clip_files(self, video_uid: str, start: float, end: float, video_dur: float | None = None) -> list[str]:
        """The files the clip [start, end) s of `video_uid` is read from: its video, or the chunks it touches up to
        the video's end (`video_dur`, where known)."""
        end = float(_end_within_video(start, end, video_dur))
        return chunk_paths(
            self.video_root,
            video_uid,
            start,
            end,
            self.layout,
            chunk_seconds=self.chunk_seconds,
            video_ext=self.video_ext,
        )

    def _missing_rows(self, table: pa.Table) -> np.ndarray:
        """Which rows' video file, or one of the chunks they touch, is not on disk. Each video is looked up once (a
        full video: one `isfile`; a chunk folder: one `listdir`), not each of EgoClip's 3.8 M rows."""
        encoded = table["video_uid"].combine_chunks().dictionary_encode()
        codes = encoded.indices.to_numpy().astype(np.int64)
        videos = tqdm(
            encoded.dictionary.to_pylist(),
            desc="Checking the EgoClip videos",
            unit="video",
            disable=len(encoded.dictionary) < 1000,
        )
        if self.layout == "full":
            present = [os.path.isfile(video_path(self.video_root, uid, "full", self.video_ext)) for uid in videos]
            return ~np.array(present)[codes]
        start = _numbers(table, "clip_start")
        video_dur = _numbers(table, "video_dur") if "video_dur" in table.column_names else None
        end = _end_within_video(start, _numbers(table, "clip_end"), video_dur)
        first, last = chunk_range(start, end, self.chunk_seconds)
        # Each (video, chunk index) as one number: in the sorted numbers of the chunks on disk, two binary searches per
        # row count the chunks it needs that exist.
        stride = int(last.max()) + 1
        on_disk = []
        for code, uid in enumerate(videos):
            folder = video_path(self.video_root, uid, self.layout, self.video_ext)
            chunks = chunks_on_disk(folder, self.layout, self.chunk_seconds, self.video_ext)
            on_disk.append(code * stride + chunks[chunks < stride])
        on_disk = np.sort(np.concatenate(on_disk))
        found = np.searchsorted(on_disk, codes * stride + last, side="right")
        found -= np.searchsorted(on_disk, codes * stride + first, side="left")
        return found < last - first + 1

    def _drop_missing_videos(self, metadata: EgoClipMetadata, on_bad_row: str) -> EgoClipMetadata:
        """Raise on (or skip) the rows whose video file or chunks do not exist, naming their lines and files."""
        if not os.path.isdir(self.video_root):
            raise FileNotFoundError(f"EgoClip video root {self.video_root} is not a folder (--video-root)")
        table = metadata.table
        missing = self._missing_rows(table)
        if not missing.any():
            return metadata
        bad_rows = np.flatnonzero(missing)
        columns = [name for name in ("video_uid", "clip_start", "clip_end", "video_dur") if name in table.column_names]
        details = []
        for name, row in zip(metadata.row_names(bad_rows), table.take(pa.array(bad_rows)).select(columns).to_pylist()):
            files = self.clip_files(row["video_uid"], row["clip_start"], row["clip_end"], row.get("video_dur"))
            details.append(f"{name}: {', '.join(path for path in files if not os.path.isfile(path))}")
        what = "a missing video file" if self.layout == "full" else f"a missing {self.layout} chunk file"
        skipped = Counter(metadata.skipped)
        report_bad_rows(metadata.path, {f"{what} under {self.video_root}": details}, on_bad_row, skipped)
        return replace(metadata, table=table.filter(pa.array(~missing)), skipped=skipped)

    def _multi_hot(self, text: str, column: str, where: str) -> np.ndarray:
        try:
            ids = json.loads(text)
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and 0 <= i < self.num_classes[column] for i in ids
            ):
                raise ValueError
        except ValueError:
            raise BadClipError(
                f"{where}: {column} {text!r} is not a list of class ids in [0, {self.num_classes[column]})"
            ) from None
        multi_hot = np.zeros(self.num_classes[column], dtype=np.uint8)
        multi_hot[ids] = 1
        return multi_hot

    def __getitem__(self, index: int) -> dict:
        row = self.metadata.table.slice(index, 1).to_pylist()[0]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        captions = [text for text in row["captions"] if text and text.strip()]
        caption = captions[int(rng.integers(len(captions)))] if self.train else captions[0]
        uid, start, end = row["video_uid"], float(row["clip_start"]), float(row["clip_end"])
        video = video_path(self.video_root, uid, self.layout, self.video_ext)
        if self.layout == "egovlp":
            video = EgoVlpChunks(video, self.chunk_seconds, self.video_ext)
        item = {
            "video": video,
            "files": self.clip_files(uid, start, end, row.get("video_dur")),
            "video_uid": uid,
            "start": start,
            "end": end,
            "caption": caption,
            "row": row["row"],
            "where": f"{self.metadata.path}, {self.metadata.row_name(row['row'], row.get('line'))}",
            "jitter": self.train,
            "sample_seed": int(rng.integers(2**31)),
        }
        if self.has_tags:
            item["verb_multi_hot"] = self._multi_hot(row["tag_verb"], "tag_verb", item["where"])
            item["noun_multi_hot"] = self._multi_hot(row["tag_noun"], "tag_noun", item["where"])
        return item


class EgoClipCollator(VideoTextCollator):
    """Decodes EgoClip clips in any Ego4D layout (:mod:`.layouts`) and tokenizes their captions; batches the tags'
    multi-hot rows for EgoNCE. Every file a clip needs must exist. A clip that fails raises :class:`BadClipError`
    naming its metadata file and line (``on_bad_row="raise"``), or is dropped from the batch and counted
    (``on_bad_row="skip"``).
    """

    def __init__(self, processor, dataset: EgoClipDataset, *, num_frames: int | None = None, on_bad_row: str = "raise"):
        super().__init__(processor, num_frames=num_frames, on_bad_row=on_bad_row, chunk_ext=dataset.video_ext)
        self.dataset = dataset

    def load(self, item: dict):
        try:
            # Checked when the dataset was built; a file gone since is named here, not read as a shorter video.
            missing = [path for path in item["files"] if not os.path.isfile(path)]
            if missing:
                what = "video file" if self.dataset.layout == "full" else f"{self.dataset.layout} chunk(s)"
                raise FileNotFoundError(f"{what} missing: {', '.join(missing)}")
            return super().load(item)
        except (OSError, ValueError) as error:
            hint = "; --on-bad-row skip drops such clips and counts them" if self.on_bad_row == "raise" else ""
            raise BadClipError(
                f"EgoClip metadata {item['where']} (video_uid {item['video_uid']}, "
                f"[{item['start']:.2f}, {item['end']:.2f}) s): {error}{hint}"
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
