"""A video index: clip embeddings in safetensors shards, with the model and settings they were made with.

An index is a folder::

    index.json                  the manifest: format and version, the header (model fingerprint, the processor's
                                pixel settings with the frame count, flip, autocast dtype), the live shard files
    shard-000000.safetensors    "embeddings": (clips, projection_dim) L2-normalised float32; the clips' records
                                (file, start / end seconds, the file's size and mtime) as JSON in the metadata

Building is incremental and resumable. A source (:class:`VideoFolder`, :class:`Ek100Clips`) plans the clips it wants;
clips already in the index (same file, size, mtime and times) are kept, the rest are encoded with
:func:`~modeling_eva02at.evaluation.encoding.encode_videos` one shard at a time (one batch per DataLoader worker), and
each shard is saved before the next starts: the shard file is written under a temporary name and moved into place,
then the manifest is replaced (`utils.files.atomic_path`). A run killed at any point leaves a consistent index that
holds every shard finished before the kill; files the manifest does not list are leftovers of a kill and are deleted
by the next run. One process writes an index at a time (a lock file enforces it where `fcntl` exists).

Embeddings of different models, frame counts or pixel settings live in different spaces: an index refuses to be
extended or queried with another model or settings than it was built with (:class:`IndexMismatchError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Iterator, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..evaluation.cache import _pixel_settings, fingerprint_identity
from ..evaluation.encoding import EncodeSettings, encode_texts, encode_videos
from ..utils.files import atomic_path, write_json
from ..video_processing_eva02at import _open_reader

logger = logging.getLogger(__name__)

INDEX_FORMAT = "eva02at-video-index"
INDEX_VERSION = 2
"""2: the model is identified by its files' content (version 1: their place and modification time)."""
MANIFEST_NAME = "index.json"
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
"""File endings (any case) that :class:`VideoFolder` indexes."""

MAX_SHARD_CLIPS = 50_000
"""Clips per shard when an index is rewritten; keeps the JSON records in a shard's metadata well below the 100 MB
header limit of safetensors."""

_SHARD_NAME = re.compile(r"shard-(\d{6})\.safetensors")
_TEMPORARY_PREFIXES = (".shard-", ".json-")  # atomic_path's temporary files, left behind only by a kill


class IndexMismatchError(ValueError):
    """An index was built with another model or other settings than the ones it is extended or queried with."""


# ---------------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """One entry of an index: the clip [start, end) seconds of a video file (or of an AVION chunk folder), with the
    file's size and modification time when it was planned: a file that changes is encoded again."""

    path: str  # absolute in memory; on disk relative to the index folder in a copy made by `copy_index_with_videos`
    start: float
    end: float
    size: int
    mtime_ns: int
    duration: float | None = None  # the whole video's, when a source probed it (VideoFolder)
    label: str = ""  # EK-100: the narration_id
    caption: str = ""  # EK-100: the narration

    @property
    def identity(self) -> tuple:
        """The same piece of the same version of the same file: an index holds each identity once."""
        return self.path, self.start, self.end, self.label, self.size, self.mtime_ns


@dataclass(frozen=True)
class Skipped:
    """A video that could not be read (`reason` is the decoder's message); `clips` of its clips were left out."""

    path: str
    reason: str
    clips: int = 1


@dataclass(frozen=True)
class Hit:
    """A search result: the `rank`-th best clip (from 1) for a query, with its cosine similarity `score`."""

    rank: int
    score: float
    path: str
    start: float
    end: float
    label: str = ""
    caption: str = ""


@dataclass
class SourcePlan:
    """What a source wants in the index: its `clips`, and the videos it found but could not read."""

    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------------


def window_bounds(duration: float, window: float | None = None, stride: float | None = None) -> list[tuple]:
    """The clips [start, end) seconds that cut a video of `duration` seconds into `window`-second windows, one every
    `stride` seconds (default: `window`, no overlap).

    Without `window`, the whole video is one clip. Every window is `window` seconds long: where the last regular
    window stops short of the end, one more window ends exactly at the end, so the whole video is covered. A video
    shorter than a window is one clip. Times are rounded to microseconds so that they compare equal across runs.
    """
    if window is None:
        if stride is not None:
            raise ValueError(f"stride={stride} needs a window (--window SECONDS)")
        return [(0.0, round(duration, 6))]
    stride = window if stride is None else stride
    if not (window > 0 and stride > 0 and math.isfinite(window) and math.isfinite(stride)):
        raise ValueError(f"window and stride must be positive seconds, got window={window}, stride={stride}")
    if duration <= window:
        return [(0.0, round(duration, 6))]
    count = int(math.floor((duration - window) / stride + 1e-9)) + 1
    bounds = [(k * stride, k * stride + window) for k in range(count)]
    if bounds[-1][1] < duration - 1e-6:
        bounds.append((duration - window, duration))
    return [(round(start, 6), round(end, 6)) for start, end in bounds]


class _ProbeDataset(Dataset):
    """Opens each video in a DataLoader worker and returns (path, duration in seconds or None, error message)."""

    def __init__(self, paths: Sequence[str], video_backend: str):
        self.paths, self.video_backend = list(paths), video_backend

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple:
        path = self.paths[index]
        try:
            # The processor's own reader: the duration is the one its frame sampling sees.
            with _open_reader(path, repr(path), self.video_backend, 1) as reader:
                if not reader.fps > 0:
                    return path, None, f"{path!r} has no frame rate"
                return path, reader.num_frames / reader.fps, ""
        except (OSError, ValueError) as error:  # VideoDecodeError is a ValueError
            return path, None, str(error)


def _identity(item):
    return item


@dataclass
class VideoFolder:
    """Every video under `folder` (recursively; by file ending, :data:`VIDEO_EXTENSIONS`), each one clip or cut into
    windows (:func:`window_bounds`). Videos new since the last run, or changed (size or mtime), are opened in
    DataLoader workers to read their duration; unchanged ones take it from the index."""

    folder: str
    window: float | None = None
    stride: float | None = None
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS

    def __post_init__(self):
        if not os.path.isdir(self.folder):
            raise FileNotFoundError(f"video folder {self.folder} does not exist or is not a folder")
        self.folder = os.path.abspath(self.folder)
        window_bounds(1.0, self.window, self.stride)  # checks window and stride before any video is opened

    def owns(self, path: str) -> bool:
        return path.startswith(self.folder + os.sep)

    def video_paths(self) -> list[str]:
        paths = []
        for root, directories, files in os.walk(self.folder):
            directories[:] = sorted(d for d in directories if not d.startswith("."))
            paths += [os.path.join(root, name) for name in sorted(files)
                      if not name.startswith(".") and name.lower().endswith(self.extensions)]  # fmt: skip
        return paths

    def plan(self, indexed: Sequence[Clip], *, video_backend: str = "auto", num_workers: int = 0,
             progress: bool = True) -> SourcePlan:  # fmt: skip
        known = {(c.path, c.size, c.mtime_ns): c.duration for c in indexed if c.duration is not None}
        stats, durations, to_probe = {}, {}, []
        for path in self.video_paths():
            stat = os.stat(path)
            stats[path] = stat
            duration = known.get((path, stat.st_size, stat.st_mtime_ns))
            if duration is None:
                to_probe.append(path)
            else:
                durations[path] = duration
        skipped = []
        if to_probe:
            loader = DataLoader(_ProbeDataset(to_probe, video_backend), batch_size=None, num_workers=num_workers,
                                collate_fn=_identity)  # fmt: skip
            for path, duration, error in tqdm(loader, total=len(to_probe), desc="Opening new videos", unit="video",
                                              disable=not progress):  # fmt: skip
                if duration is None:
                    logger.warning(f"skipping unreadable video: {error}")
                    skipped.append(Skipped(path, error, clips=0))
                else:
                    durations[path] = duration
        clips = [
            Clip(path, start, end, stats[path].st_size, stats[path].st_mtime_ns, duration=durations[path])
            for path in stats
            if path in durations
            for start, end in window_bounds(durations[path], self.window, self.stride)
        ]
        return SourcePlan(clips, skipped)


@dataclass
class Ek100Clips:
    """The clips of an EPIC-Kitchens-100 retrieval CSV (`EPIC_100_retrieval_*.csv`), each labelled with its
    narration_id and narration; videos at `<video_root>/<participant>/<video_id>.<video_ext>` (a file or AVION's
    chunk folder, docs/data_formats.md). Clips of a missing video are skipped (and listed)."""

    retrieval_csv: str
    video_root: str
    video_ext: str = "MP4"

    def __post_init__(self):
        if not os.path.isfile(self.retrieval_csv):
            raise FileNotFoundError(f"EK-100 retrieval CSV {self.retrieval_csv} not found")
        if not os.path.isdir(self.video_root):
            raise FileNotFoundError(f"EK-100 video root {self.video_root} is not a folder")
        self._paths = None

    def _dataset(self):
        from ..data.ek100 import Ek100MirAnnotations, Ek100MirDataset
        from ..data.relevancy import read_retrieval_csv

        # Evaluation items need neither the sentences nor the relevancy.
        annotations = Ek100MirAnnotations(read_retrieval_csv(self.retrieval_csv), sentences=None, relevancy=None)
        return Ek100MirDataset(annotations, self.video_root, train=False, video_ext=self.video_ext)

    def owns(self, path: str) -> bool:
        if self._paths is None:
            self._paths = {os.path.abspath(p) for p in self._dataset().video_paths()}
        return path in self._paths

    def plan(self, indexed: Sequence[Clip] = (), **_) -> SourcePlan:
        dataset = self._dataset()
        narration_ids = dataset.annotations.clips["narration_id"].astype(str).tolist()
        stats, missing, clips = {}, {}, []
        for index in range(len(dataset)):
            item = dataset[index]
            path = os.path.abspath(item["video"])
            if path not in stats:
                stats[path] = os.stat(path) if os.path.exists(path) else None
            if stats[path] is None:
                missing[path] = missing.get(path, 0) + 1
                continue
            clips.append(Clip(path, item["start"], item["end"], stats[path].st_size, stats[path].st_mtime_ns,
                              label=narration_ids[index], caption=item["caption"]))  # fmt: skip
        skipped = [Skipped(path, f"video not found: {path}", count) for path, count in missing.items()]
        for entry in skipped:
            logger.warning(f"skipping {entry.clips} clips of a missing video: {entry.path}")
        self._paths = set(stats)
        return SourcePlan(clips, skipped)


# ---------------------------------------------------------------------------------------------------------------------
# The index on disk
# ---------------------------------------------------------------------------------------------------------------------


def index_header(processor, settings: EncodeSettings, model_id) -> dict:
    """What the embeddings of an index depend on: the model (`model_id`, from
    :func:`~modeling_eva02at.evaluation.cache.model_fingerprint`), the processor's pixel settings (frame count, size,
    crop, normalisation) and the encoding's flip and dtype: the feature cache's key, less the data."""
    return {"model": model_id, "pixels": _pixel_settings(processor), **settings.cache_fields()}


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flatten(item, f"{prefix}{key}.").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flatten(item, f"{prefix}[{i}].").items()}
    return {prefix.rstrip("."): value}


def _model_path(model_id) -> str:
    """The model folder (or Hub id) a model fingerprint names."""
    model = model_id.get("model") if isinstance(model_id, dict) else model_id
    return model.get("path") if isinstance(model, dict) else str(model)


def _describe_differences(stored: dict, current: dict, what: str, limit: int = 8) -> list[str]:
    stored_flat, current_flat = _flatten(json.loads(json.dumps(stored))), _flatten(json.loads(json.dumps(current)))
    keys = [key for key in dict.fromkeys([*stored_flat, *current_flat])
            if stored_flat.get(key) != current_flat.get(key)]  # fmt: skip
    lines = [f"{key}: index {stored_flat.get(key, '(absent)')!r}, {what} {current_flat.get(key, '(absent)')!r}"
             for key in keys[:limit]]  # fmt: skip
    if len(keys) > limit:
        lines.append(f"... and {len(keys) - limit} more")
    return lines


class VideoIndex:
    """An index folder in memory: its header, clip records and embeddings. :meth:`load` reads one;
    :func:`writable_index` opens one for writing."""

    def __init__(self, path: str, header: dict, shards: list[str], clips: list[Clip], parts: list[torch.Tensor],
                 next_shard: int):  # fmt: skip
        self.path = path
        self.header = header
        self.shards = shards
        self.clips = clips
        self._parts = parts
        self.next_shard = next_shard

    # -- reading ------------------------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str) -> "VideoIndex":
        """Read the index folder `path`: its manifest and every shard it lists."""
        manifest_path = os.path.join(path, MANIFEST_NAME)
        if not os.path.isfile(manifest_path):
            raise FileNotFoundError(
                f"{path} is not a video index (no {MANIFEST_NAME}): build one with "
                f"`python examples/search_videos.py index --model DIR --videos FOLDER --index {path}`"
            )
        with open(manifest_path) as file:
            manifest = json.load(file)
        if manifest.get("format") != INDEX_FORMAT or manifest.get("version") != INDEX_VERSION:
            raise ValueError(
                f"{manifest_path} is not a version-{INDEX_VERSION} {INDEX_FORMAT} manifest (format "
                f"{manifest.get('format')!r}, version {manifest.get('version')!r}): rebuild the index in a new folder"
            )
        clips, parts = [], []
        for name in manifest["shards"]:
            shard_clips, embeddings = cls._read_shard(os.path.join(path, name))
            clips += shard_clips
            parts.append(embeddings)
        return cls(path, manifest["header"], list(manifest["shards"]), clips, parts, int(manifest["next_shard"]))

    @staticmethod
    def _read_shard(shard_path: str) -> tuple[list[Clip], torch.Tensor]:
        try:
            with safe_open(shard_path, framework="pt") as handle:
                records = json.loads((handle.metadata() or {})["clips"])
                embeddings = handle.get_tensor("embeddings")
        except (SafetensorError, OSError, KeyError, ValueError) as error:
            raise ValueError(
                f"index shard {shard_path} cannot be read ({error}): rebuild the index in a new folder"
            ) from None
        if len(records) != len(embeddings):
            raise ValueError(
                f"index shard {shard_path} holds {len(embeddings)} embeddings for {len(records)} clip records: "
                "rebuild the index in a new folder"
            )
        names = {f.name for f in fields(Clip)}
        folder = os.path.dirname(os.path.abspath(shard_path))
        clips = []
        for record in records:
            record = {k: v for k, v in record.items() if k in names}
            if not os.path.isabs(record["path"]):  # a copy that travels with its videos (copy_index_with_videos)
                record["path"] = os.path.normpath(os.path.join(folder, record["path"]))
            clips.append(Clip(**record))
        return clips, embeddings

    @property
    def embeddings(self) -> torch.Tensor:
        """(clips, projection_dim) float32, in the order of :attr:`clips`."""
        if len(self._parts) != 1:
            dim = self._parts[0].shape[1] if self._parts else 0
            self._parts = [torch.cat(self._parts) if self._parts else torch.empty(0, dim)]
        return self._parts[0]

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def model_path(self) -> str:
        """The model folder (or Hub id) the index was built with."""
        return _model_path(self.header["model"])

    @property
    def processor_path(self) -> str | None:
        """The processor folder the index was built with, when it was given apart from the model."""
        processor = self.header["model"].get("processor") if isinstance(self.header["model"], dict) else None
        return None if processor is None else _model_path({"model": processor})

    def check_header(self, header: dict, what: str = "this run") -> None:
        """Raise :class:`IndexMismatchError` (naming both sides) unless `header` is the index's."""
        self._check(self.header, header, what)

    def check_model(self, model_id, what: str = "this query") -> None:
        """Raise :class:`IndexMismatchError` unless `model_id` (a model fingerprint) is the index's model."""
        self._check({"model": self.header["model"]}, {"model": model_id}, what)

    def _check(self, stored: dict, current: dict, what: str) -> None:
        # the model's content must match, not where its folder is (a copy, a download, the Hub repo pushed from it)
        differences = _describe_differences(fingerprint_identity(stored), fingerprint_identity(current), what)
        if differences:
            raise IndexMismatchError(
                f"the index {self.path} does not match {what} (the index was built with model "
                f"{_model_path(stored['model'])}, {what} uses {_model_path(current['model'])}):\n  "
                + "\n  ".join(differences) + "\n"
                "Embeddings of different models or settings cannot be compared: use a new --index folder, or the "
                "model, processor, --num-frames and encoding flags the index was built with."
            )

    def search(self, text_embeddings: torch.Tensor, top_k: int = 5) -> list[list[Hit]]:
        """The `top_k` clips with the highest cosine similarity to each of the L2-normalised `text_embeddings`."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if not self.clips:
            raise ValueError(f"the index {self.path} holds no clips: add videos with `search_videos.py index`")
        text_embeddings = torch.as_tensor(text_embeddings, dtype=torch.float32)
        if text_embeddings.ndim != 2 or text_embeddings.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"text embeddings of shape {tuple(text_embeddings.shape)} do not fit the index {self.path}, whose "
                f"clips have {self.embeddings.shape[1]}-d embeddings"
            )
        scores, positions = (text_embeddings @ self.embeddings.T).topk(min(top_k, len(self.clips)), dim=1)
        results = []
        for row_scores, row_positions in zip(scores.tolist(), positions.tolist()):
            results.append([
                Hit(rank, score, clip.path, clip.start, clip.end, clip.label, clip.caption)
                for rank, (score, clip) in enumerate(((s, self.clips[p]) for s, p in zip(row_scores, row_positions)), 1)
            ])  # fmt: skip
        return results

    # -- writing (through writable_index) -------------------------------------------------------------------------

    def add(self, clips: Sequence[Clip], embeddings: torch.Tensor) -> None:
        """Save `clips` and their embeddings as a new shard; listed in the manifest once the shard is on disk."""
        name = self._write_shard(clips, embeddings)
        self._write_manifest([*self.shards, name])
        self.clips += list(clips)
        self._parts.append(embeddings)

    def keep(self, mask: Sequence[bool]) -> None:
        """Rewrite the index with the clips where `mask` is true, in shards of at most :data:`MAX_SHARD_CLIPS`."""
        keep = torch.tensor(list(mask), dtype=torch.bool)
        clips = [clip for clip, kept in zip(self.clips, mask) if kept]
        embeddings = self.embeddings[keep]
        old = self.shards
        names = [self._write_shard(clips[i : i + MAX_SHARD_CLIPS], embeddings[i : i + MAX_SHARD_CLIPS])
                 for i in range(0, len(clips), MAX_SHARD_CLIPS)]  # fmt: skip
        self._write_manifest(names)
        self.clips, self._parts = clips, [embeddings]
        for name in old:  # no longer listed: a kill before this point leaves them to the next run's clean-up
            os.remove(os.path.join(self.path, name))

    def _write_shard(self, clips: Sequence[Clip], embeddings: torch.Tensor) -> str:
        name = f"shard-{self.next_shard:06d}.safetensors"
        self.next_shard += 1
        records = json.dumps([asdict(clip) for clip in clips])
        with atomic_path(os.path.join(self.path, name), prefix=".shard-") as temporary:
            save_file({"embeddings": embeddings.float().contiguous()}, temporary, metadata={"clips": records})
        return name

    def _write_manifest(self, shards: list[str]) -> None:
        write_json(os.path.join(self.path, MANIFEST_NAME), {
            "format": INDEX_FORMAT, "version": INDEX_VERSION, "header": self.header, "shards": shards,
            "next_shard": self.next_shard,
        })  # fmt: skip
        self.shards = list(shards)

    def _remove_leftovers(self) -> None:
        """Delete shard files the manifest does not list and temporary files: what a killed run left behind."""
        listed = set(self.shards)
        for name in os.listdir(self.path):
            if (_SHARD_NAME.fullmatch(name) and name not in listed) or name.startswith(_TEMPORARY_PREFIXES):
                logger.info(f"removing {name} from {self.path}: left by an interrupted run")
                os.remove(os.path.join(self.path, name))


@contextlib.contextmanager
def _writer_lock(path: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; one writer at a time is the caller's business
        yield
        return
    with open(os.path.join(path, ".lock"), "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another process is writing the index {path}; wait for it to finish") from None
        yield  # the lock goes with the file handle, also when the process is killed


@contextlib.contextmanager
def writable_index(path: str, header: dict) -> Iterator[VideoIndex]:
    """Open the index folder `path` for writing, creating it if needed; an existing index must have `header`.

    Raises:
        IndexMismatchError: the index was built with another model or settings.
        FileExistsError: `path` is a file, or a folder with other files that is not an index.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"--index {path} is a file: give a folder (new, empty, or an index)")
    os.makedirs(path, exist_ok=True)
    with _writer_lock(path):
        if os.path.isfile(os.path.join(path, MANIFEST_NAME)):
            index = VideoIndex.load(path)
            index.check_header(header)
        else:
            others = [name for name in os.listdir(path) if not name.startswith(".")]
            if others:
                raise FileExistsError(
                    f"--index {path} is not a video index (no {MANIFEST_NAME}) but holds other files "
                    f"({', '.join(sorted(others)[:3])}...): give a new or empty folder"
                )
            index = VideoIndex(path, header, [], [], [], next_shard=0)
            index._write_manifest([])
        index._remove_leftovers()
        yield index


# ---------------------------------------------------------------------------------------------------------------------
# Building and querying
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class IndexReport:
    """What :func:`update_index` did. `seconds` is the time spent encoding the `encoded` clips."""

    index: str
    total: int
    encoded: int
    unchanged: int
    removed: int
    skipped: list[Skipped]
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else float("nan")


def _encode_shard(clips: list[Clip], model, processor, settings: EncodeSettings):
    """Embeddings of the readable clips: (kept clips, embeddings, skipped)."""

    def encode(videos, starts, ends, num_workers):
        return encode_videos(model, processor, videos, starts=starts, ends=ends, batch_size=settings.batch_size,
                             num_workers=num_workers, flip=settings.flip, device=settings.device,
                             dtype=settings.dtype, progress=False)  # fmt: skip

    try:
        return clips, encode([c.path for c in clips], [c.start for c in clips], [c.end for c in clips],
                             settings.num_workers), []  # fmt: skip
    except (OSError, ValueError):  # FileNotFoundError, VideoDecodeError
        pass
    # A clip of this shard cannot be decoded: decode them one by one here to tell which, then encode the frames of
    # the others (an error that is not the decoder's is raised by this second encode).
    kept, frames, skipped = [], [], []
    for clip in clips:
        try:
            frames.append(processor.image_processor.load_frames(clip.path, start=clip.start, end=clip.end))
        except (OSError, ValueError) as error:
            logger.warning(f"skipping unreadable clip [{clip.start}, {clip.end}) s: {error}")
            skipped.append(Skipped(clip.path, str(error)))
            continue
        kept.append(clip)
    embeddings = encode(frames, None, None, 0) if frames else torch.empty(0)
    return kept, embeddings, skipped


def _merge_skipped(skipped: Sequence[Skipped]) -> list[Skipped]:
    """One entry per video: the first reason, the clips counted."""
    merged: dict[str, Skipped] = {}
    for entry in skipped:
        if entry.path in merged:
            previous = merged[entry.path]
            merged[entry.path] = Skipped(entry.path, previous.reason, previous.clips + entry.clips)
        else:
            merged[entry.path] = entry
    return list(merged.values())


def update_index(
    path: str,
    source: VideoFolder | Ek100Clips,
    model,
    processor,
    settings: EncodeSettings,
    *,
    model_id,
    shard_size: int | None = None,
) -> IndexReport:
    """Bring the index at `path` up to date with `source`: encode its new clips, drop the index's clips of its
    videos that changed or are gone, keep the rest (and every clip of other sources).

    Args:
        model / processor: from :func:`~modeling_eva02at.evaluation.encoding.load_model_and_processor`.
        settings: batch size, DataLoader workers (decoding), flip, device, autocast dtype, progress bar.
        model_id: the model's fingerprint (:func:`~modeling_eva02at.evaluation.cache.model_fingerprint`), stored in
            the index and compared on every later update and query.
        shard_size: clips encoded and saved together (default: one batch per DataLoader worker); a kill loses at
            most the shard in flight.

    Unreadable videos are skipped with a warning and listed in the report's `skipped`; they are tried again by the
    next run.

    Raises:
        IndexMismatchError: the index was built with another model or settings.
    """
    shard_size = shard_size or settings.batch_size * max(1, settings.num_workers)
    header = index_header(processor, settings, model_id)
    with writable_index(path, header) as index:
        plan = source.plan(index.clips, video_backend=processor.image_processor.video_backend,
                           num_workers=settings.num_workers, progress=settings.progress)  # fmt: skip
        wanted = {clip.identity for clip in plan.clips}
        # Clips of this source's videos that it no longer plans: the file changed, was deleted or is cut otherwise.
        keep = [not source.owns(clip.path) or clip.identity in wanted for clip in index.clips]
        removed = keep.count(False)
        if removed:
            logger.info(f"removing {removed} clips of changed or deleted videos from {path}")
            index.keep(keep)
        indexed = {clip.identity for clip in index.clips}
        todo = list({clip.identity: clip for clip in plan.clips if clip.identity not in indexed}.values())

        skipped, encoded, started = list(plan.skipped), 0, time.perf_counter()
        with tqdm(total=len(todo), desc="Indexing", unit="clip", disable=not settings.progress) as bar:
            for first in range(0, len(todo), shard_size):
                kept, embeddings, failed = _encode_shard(todo[first : first + shard_size], model, processor, settings)
                if kept:
                    index.add(kept, embeddings)
                skipped += failed
                encoded += len(kept)
                bar.update(len(kept) + len(failed))
        seconds = time.perf_counter() - started
        if len(index.shards) > 1:  # one file per run (or per MAX_SHARD_CLIPS) keeps loading fast
            index.keep([True] * len(index))
        return IndexReport(path, len(index), encoded, len(plan.clips) - len(todo), removed,
                           _merge_skipped(skipped), seconds)  # fmt: skip


def copy_index_with_videos(index: VideoIndex, output: str, video_folder: str) -> list[str]:
    """Copy `index` to the new folder `output`, and each video it holds into `video_folder`, the copy's clips naming
    their videos relative to `output`: the two folders can then move together (to a Space, another machine) and the
    copy stays searchable, its hits pointing at the copied videos. Videos keep their layout under their common folder.

    Returns:
        The copied videos' paths, sorted.

    Raises:
        FileExistsError: `output` or `video_folder` exists and is not empty.
        FileNotFoundError: a video of the index is gone (it could not be shown in a search result).
    """
    import shutil

    for folder in (output, video_folder):
        if os.path.isdir(folder) and os.listdir(folder):
            raise FileExistsError(f"{folder} is not empty: give a new folder for the copy")
    sources = sorted({clip.path for clip in index.clips})
    missing = [path for path in sources if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(f"the index {index.path} holds clips of {len(missing)} videos that are gone (first: "
                                f"{missing[0]}): update it with `search_videos.py index` first")  # fmt: skip
    root = os.path.commonpath(sources) if len(sources) > 1 else os.path.dirname(sources[0]) if sources else ""
    copies = {}
    for path in tqdm(sources, desc="Copying videos", disable=len(sources) < 20):
        target = os.path.join(video_folder, os.path.relpath(path, root))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(path):  # an AVION chunk folder
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)  # keeps the modification time, part of a clip's identity
        copies[path] = target
    output = os.path.abspath(output)
    os.makedirs(output, exist_ok=True)
    clips = [replace(clip, path=os.path.relpath(copies[clip.path], output)) for clip in index.clips]
    embeddings = index.embeddings
    copy = VideoIndex(output, index.header, [], [], [], 0)
    copy._write_manifest([])
    for start in range(0, len(clips), MAX_SHARD_CLIPS):
        copy.add(clips[start : start + MAX_SHARD_CLIPS], embeddings[start : start + MAX_SHARD_CLIPS])
    return sorted(copies.values())


def search_index(index: VideoIndex, model, processor, texts: Sequence[str], *, model_id,
                 top_k: int = 5) -> list[list[Hit]]:  # fmt: skip
    """The `top_k` clips of `index` for each text, encoded on the model's device; refuses a model other than the
    index's (`model_id`, a model fingerprint)."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts or any(not str(text).strip() for text in texts):
        raise ValueError(f"queries must be non-empty texts, got {list(texts)!r}")
    index.check_model(model_id)
    text_embeddings = encode_texts(model, processor, list(texts), device=model.device, progress=False)
    return index.search(text_embeddings, top_k)


__all__ = [
    "Clip",
    "Ek100Clips",
    "Hit",
    "IndexMismatchError",
    "IndexReport",
    "Skipped",
    "VideoFolder",
    "VideoIndex",
    "copy_index_with_videos",
    "index_header",
    "search_index",
    "update_index",
    "window_bounds",
    "writable_index",
]
