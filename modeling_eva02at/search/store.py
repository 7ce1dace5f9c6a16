"""A video index on disk: clip embeddings in safetensors shards, with the model and settings they were made with.

An index is a folder::

    index.json                  the manifest: format and version, the header (model fingerprint, the processor's
                                pixel settings with the frame count, flip, compute dtype), the live shard files
    shard-000000.safetensors    "embeddings": (clips, projection_dim) L2-normalised float32; the clips' records
                                (file, start / end seconds, the file's size and mtime) as JSON in the metadata

Every write is atomic: a shard file is written under a temporary name and moved into place, then the manifest is
replaced (`utils.files.atomic_path`). A run killed at any point leaves a consistent index that holds every shard
finished before the kill; files the manifest does not list are leftovers of a kill and are deleted by the next writer.
One process writes an index at a time (a lock file enforces it where `fcntl` exists).

Embeddings of different models, frame counts or pixel settings live in different spaces: an index refuses to be
extended or queried with another model or settings than it was built with (:class:`IndexMismatchError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save_file

from ..evaluation.encoding import EncodeSettings
from ..evaluation.fingerprint import describe_differences, pixel_settings
from ..utils.files import atomic_path, write_json
from .sources import Clip


logger = logging.getLogger(__name__)

INDEX_FORMAT = "eva02at-video-index"
INDEX_VERSION = 3
"""3: the model is identified by what changes its embeddings: weights by value, the forward's config fields, the
tokenizer's vocabulary and settings (version 2: its files' content, save-time bookkeeping included; version 1: their
place and modification time). Older indexes are refused with a message to rebuild them."""
MANIFEST_NAME = "index.json"
MAX_SHARD_CLIPS = 50_000
"""Clips per shard when an index is rewritten; keeps the JSON records in a shard's metadata well below the 100 MB
header limit of safetensors."""

_SHARD_NAME = re.compile(r"shard-(\d{6})\.safetensors")
_TEMPORARY_PREFIXES = (".shard-", ".json-")  # atomic_path's temporary files, left behind only by a kill


class IndexMismatchError(ValueError):
    """An index was built with another model or other settings than the ones it is extended or queried with."""


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


def index_header(processor, settings: EncodeSettings, model_id) -> dict:
    """What the embeddings of an index depend on: the model (`model_id`, from
    :func:`~modeling_eva02at.evaluation.fingerprint.model_fingerprint`), the processor's pixel settings (frame count,
    size, crop, normalisation) and the encoding's flip and dtype: the feature cache's key, less the data."""
    return {"model": model_id, "pixels": pixel_settings(processor), **settings.cache_fields()}


def _model_path(model_id) -> str:
    """The model folder (or Hub id) a model fingerprint names."""
    model = model_id.get("model") if isinstance(model_id, dict) else model_id
    return model.get("path") if isinstance(model, dict) else str(model)


class VideoIndex:
    """An index folder in memory: its header, clip records and embeddings. :meth:`load` reads one;
    :func:`writable_index` opens one for writing."""

    def __init__(
        self, path: str, header: dict, shards: list[str], clips: list[Clip], parts: list[torch.Tensor], next_shard: int
    ):
        self.path = path
        self.header = header
        self.shards = shards
        self.clips = clips
        self._parts = parts
        self.next_shard = next_shard

    # -- reading ------------------------------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str, header: dict) -> VideoIndex:
        """A new, empty index in the folder `path` (created if needed): its manifest lists no shard yet."""
        os.makedirs(path, exist_ok=True)
        index = cls(path, header, [], [], [], next_shard=0)
        index._write_manifest([])
        return index

    @classmethod
    def load(cls, path: str) -> VideoIndex:
        """Read the index folder `path`: its manifest and every shard it lists.

        A writer finishing a run rewrites the shards and then the manifest: a shard listed in the manifest read here
        can be gone a moment later. The manifest is then read again, once, and its shards read anew.
        """
        manifest = cls._read_manifest(path)
        try:
            return cls._from_manifest(path, manifest)
        except FileNotFoundError:
            return cls._from_manifest(path, cls._read_manifest(path))

    @staticmethod
    def _read_manifest(path: str) -> dict:
        manifest_path = os.path.join(path, MANIFEST_NAME)
        if not os.path.isfile(manifest_path):
            raise FileNotFoundError(
                f"{path} is not a video index (no {MANIFEST_NAME}): build one with "
                f"`python examples/index_videos.py --model DIR --videos FOLDER --index {path}`"
            )
        with open(manifest_path) as file:
            manifest = json.load(file)
        version = manifest.get("version")
        if manifest.get("format") == INDEX_FORMAT and isinstance(version, int) and version < INDEX_VERSION:
            raise ValueError(
                f"the index {path} was built by an older version of this package (index version {version}), whose "
                "model fingerprint also covered where and how the model's files were saved (it refused, e.g., the "
                "Hub repo pushed from the same training folder): rebuild it: delete the folder, or give a new "
                "--index folder, and run examples/index_videos.py again"
            )
        if manifest.get("format") != INDEX_FORMAT or version != INDEX_VERSION:
            raise ValueError(
                f"{manifest_path} is not a version-{INDEX_VERSION} {INDEX_FORMAT} manifest (format "
                f"{manifest.get('format')!r}, version {manifest.get('version')!r}): rebuild the index in a new folder"
            )
        return manifest

    @classmethod
    def _from_manifest(cls, path: str, manifest: dict) -> VideoIndex:
        clips, parts = [], []
        for name in manifest["shards"]:
            shard_clips, embeddings = cls._read_shard(os.path.join(path, name))
            clips += shard_clips
            parts.append(embeddings)
        return cls(path, manifest["header"], list(manifest["shards"]), clips, parts, int(manifest["next_shard"]))

    @staticmethod
    def _read_shard(shard_path: str) -> tuple[list[Clip], torch.Tensor]:
        if not os.path.isfile(shard_path):
            raise FileNotFoundError(f"index shard {shard_path} is listed in the manifest but missing")
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
        # what the embeddings depend on must match, not where the model's folder is or how it was saved (a copy, a
        # download, the Hub repo pushed from a training folder)
        differences = describe_differences(stored, current, "index", what)
        if differences:
            raise IndexMismatchError(
                f"the index {self.path} does not match {what} (the index was built with model "
                f"{_model_path(stored['model'])}, {what} uses {_model_path(current['model'])}):\n  "
                + "\n  ".join(differences)
                + "\n"
                "Embeddings of different models or settings cannot be compared: use a new --index folder, or the "
                "model, processor, --num-frames and encoding flags the index was built with."
            )

    def search(self, text_embeddings: torch.Tensor, top_k: int = 5) -> list[list[Hit]]:
        """The `top_k` clips with the highest cosine similarity to each of the L2-normalised `text_embeddings`."""
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if not self.clips:
            raise ValueError(f"the index {self.path} holds no clips: add videos with `index_videos.py`")
        text_embeddings = torch.as_tensor(text_embeddings, dtype=torch.float32)
        if text_embeddings.ndim != 2 or text_embeddings.shape[1] != self.embeddings.shape[1]:
            raise ValueError(
                f"text embeddings of shape {tuple(text_embeddings.shape)} do not fit the index {self.path}, whose "
                f"clips have {self.embeddings.shape[1]}-d embeddings"
            )
        scores, positions = (text_embeddings @ self.embeddings.T).topk(min(top_k, len(self.clips)), dim=1)
        results = []
        for row_scores, row_positions in zip(scores.tolist(), positions.tolist()):
            results.append(
                [
                    Hit(rank, score, clip.path, clip.start, clip.end, clip.label, clip.caption)
                    for rank, (score, clip) in enumerate(
                        ((s, self.clips[p]) for s, p in zip(row_scores, row_positions)), 1
                    )
                ]
            )
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
        names = [
            self._write_shard(clips[i : i + MAX_SHARD_CLIPS], embeddings[i : i + MAX_SHARD_CLIPS])
            for i in range(0, len(clips), MAX_SHARD_CLIPS)
        ]
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
        write_json(
            os.path.join(self.path, MANIFEST_NAME),
            {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "header": self.header,
                "shards": shards,
                "next_shard": self.next_shard,
            },
        )
        self.shards = list(shards)

    def _remove_leftovers(self) -> None:
        """Delete shard files the manifest does not list and temporary files: what a killed run left behind."""
        listed = set(self.shards)
        for name in os.listdir(self.path):
            if (_SHARD_NAME.fullmatch(name) and name not in listed) or name.startswith(_TEMPORARY_PREFIXES):
                logger.info(f"removing {name} from {self.path}: left by an interrupted run")
                os.remove(os.path.join(self.path, name))


class IndexBusyError(BlockingIOError):
    """Another process is writing the index."""


_HELD_LOCKS: dict[tuple, list] = {}  # (absolute index folder, thread): [lock file, nesting depth] held here


@contextlib.contextmanager
def index_lock(path: str) -> Iterator[None]:
    """Hold the index folder `path` for writing (created if needed): one process at a time, where `fcntl` exists.
    Re-entrant within a thread, so that a command line can take it before it loads a model and
    :func:`writable_index` takes it again inside; another thread or process is refused.

    Raises:
        IndexBusyError: another process holds it.
        FileExistsError: `path` is a file.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise FileExistsError(f"--index {path} is a file: give a folder (new, empty, or an index)")
    key = (os.path.abspath(path), threading.get_ident())
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key][1] += 1
        try:
            yield
        finally:
            _HELD_LOCKS[key][1] -= 1
        return
    try:
        import fcntl
    except ImportError:  # Windows: no lock; one writer at a time is the caller's business
        yield
        return
    os.makedirs(path, exist_ok=True)
    handle = open(os.path.join(path, ".lock"), "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise IndexBusyError(f"another process is writing the index {path}; wait for it to finish") from None
    _HELD_LOCKS[key] = [handle, 1]
    try:
        yield  # the lock goes with the file handle, also when the process is killed
    finally:
        del _HELD_LOCKS[key]
        handle.close()


@contextlib.contextmanager
def writable_index(path: str, header: dict) -> Iterator[VideoIndex]:
    """Open the index folder `path` for writing, creating it if needed; an existing index must have `header`.

    Raises:
        IndexMismatchError: the index was built with another model or settings.
        FileExistsError: `path` is a file, or a folder with other files that is not an index.
    """
    with index_lock(path):
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
            index = VideoIndex.create(path, header)
        index._remove_leftovers()
        yield index


__all__ = [
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "MANIFEST_NAME",
    "Hit",
    "IndexBusyError",
    "IndexMismatchError",
    "VideoIndex",
    "index_header",
    "index_lock",
    "writable_index",
]
