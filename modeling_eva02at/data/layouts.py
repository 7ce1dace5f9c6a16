"""How egocentric datasets store their videos, and one loader for a clip in any of these layouts.

Layouts (`<root>` is the dataset's video folder, `<ext>` its file ending):

* ``full``: one file per video, ``<root>/<video>.<ext>`` (EK-100's ``<participant>/<video_id>.MP4``, Ego4D's
  ``<video_uid>.mp4``);
* ``avion``: a folder per video of 15-second chunks named by their start second,
  ``<root>/<video>.<ext>/<start_sec>.<ext>`` (AVION's copies of EK-100 and Ego4D);
* ``lavila``: the same with 300-second chunks (LaViLa's copy of Ego4D);
* ``egovlp``: a folder per video of 600-second chunks named by their index, ``<root>/<video>/<k>.<ext>`` holding
  seconds ``[600 k, 600 (k + 1))`` (EgoVLP's copy of Ego4D); :func:`load_clip` reads it as an :class:`EgoVlpChunks`.

Every chunk folder is read as one video, as AVION's loader does: the chunk that starts at second ``c`` (its file name
for AVION / LaViLa, ``600 k`` for EgoVLP's chunk ``k``) holds the video's frames from ``int(c * fps)`` on, numbered
from 0 within the file. A clip is sampled as one range of the whole video's frames, so a clip that straddles chunks
gets the same frames from every layout as from the full video.

Decoding and frame sampling are the remote code's (`video_reading_eva02at.py`); this module only decides which
files and which times a clip is read from.
"""

from __future__ import annotations

import os
import re
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np


VIDEO_LAYOUTS = {"full": None, "egovlp": 600, "lavila": 300, "avion": 15}
"""Layout name -> chunk length in seconds (None: one file per video)."""


@dataclass(frozen=True)
class EgoVlpChunks:
    """One video in EgoVLP's chunk layout, for :func:`load_clip`: ``<folder>/<k>.<ext>`` holds seconds
    ``[k L, (k + 1) L)`` of the video (L = `chunk_seconds`), its frames numbered from 0 within the file.

    EgoVLP names its chunks by their index where AVION and LaViLa name them by their start second, so a bare folder
    would be ambiguous; clip times are the whole video's, as for every other layout.
    """

    folder: str
    chunk_seconds: int = VIDEO_LAYOUTS["egovlp"]
    ext: str = "mp4"


def check_layout(layout: str) -> str:
    if layout not in VIDEO_LAYOUTS:
        raise ValueError(f"video layout must be one of {', '.join(VIDEO_LAYOUTS)}, got {layout!r}")
    return layout


def chunk_range(start, end, chunk_seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """The first and last index ``k`` of the chunks (seconds ``[k L, (k + 1) L)``) that the clip [start, end) seconds
    touches; scalars or arrays of clips. A clip that ends exactly on a chunk boundary does not touch the next chunk."""
    first = np.floor(np.asarray(start, dtype=np.float64) / chunk_seconds).astype(np.int64)
    last = np.ceil(np.asarray(end, dtype=np.float64) / chunk_seconds).astype(np.int64) - 1
    return first, np.maximum(first, last)


def video_path(video_root: str, video: str, layout: str, video_ext: str = "mp4") -> str:
    """The file (``full``) or chunk folder of `video`: ``<video>.<ext>`` (full; a folder for AVION / LaViLa) or
    ``<video>`` (EgoVLP)."""
    check_layout(layout)
    return os.path.join(video_root, video if layout == "egovlp" else f"{video}.{video_ext}")


def chunk_paths(
    video_root: str,
    video: str,
    start: float,
    end: float,
    layout: str,
    *,
    chunk_seconds: int | None = None,
    video_ext: str = "mp4",
) -> list[str]:
    """The files the clip [start, end) s of `video` is read from in `layout`, in time order."""
    path = video_path(video_root, video, layout, video_ext)
    if layout == "full":
        return [path]
    length = chunk_seconds or VIDEO_LAYOUTS[layout]
    first, last = chunk_range(start, end, length)
    # EgoVLP names its chunks by their index, AVION and LaViLa by their start second
    names = range(first, last + 1) if layout == "egovlp" else range(first * length, last * length + 1, length)
    return [os.path.join(path, f"{name}.{video_ext}") for name in names]


def _numbered_files(folder: str, ext: str) -> list[tuple[int, str]]:
    """The files ``<number>.<ext>`` of `folder` as (number, path), sorted by number; none where it is no folder."""
    if not os.path.isdir(folder):
        return []
    pattern = re.compile(rf"^(\d+)\.{re.escape(ext)}$")
    files = ((pattern.match(name), name) for name in os.listdir(folder))
    return sorted((int(match.group(1)), os.path.join(folder, name)) for match, name in files if match)


def chunks_on_disk(folder: str, layout: str, chunk_seconds: int, video_ext: str = "mp4") -> np.ndarray:
    """The indices k of the chunk files in the chunk folder of one video, sorted (none where it does not exist): one
    directory listing, where asking for each chunk would take a file-system call per chunk."""
    numbers = np.array([number for number, _ in _numbered_files(folder, video_ext)], dtype=np.int64)
    if layout == "egovlp":
        return numbers
    return numbers[numbers % chunk_seconds == 0] // chunk_seconds


def list_chunks(video_dir: str, ext: str, *, index_seconds: int | None = None) -> list[tuple[int, str]]:
    """The chunk files of a video folder as (start second, path), sorted by start.

    Args:
        index_seconds: None for AVION / LaViLa chunks, named by their start second; EgoVLP's chunk length L for its
            chunks named by their index k, which start at k L seconds.
    """
    chunks = _numbered_files(video_dir, ext)
    if not chunks:
        name = "<k>" if index_seconds else "<start_sec>"
        raise FileNotFoundError(f"no chunk files '{name}.{ext}' in video folder {video_dir}")
    if index_seconds:
        chunks = [(index * index_seconds, path) for index, path in chunks]
    return chunks


def load_clip(
    video_processor,
    video,
    start: float | None = None,
    end: float | None = None,
    *,
    num_frames: int | None = None,
    jitter: bool = False,
    seed: int | None = None,
    chunk_ext: str | None = None,
) -> np.ndarray:
    """The `num_frames` sampled frames (T, H, W, 3) of the clip [start, end) seconds of `video`, in any layout.

    Args:
        video_processor: an `Eva02AtVideoProcessor`: its decoder, frame sampling and settings.
        video: anything the processor reads (a file, bytes, frames in memory); an AVION / LaViLa chunk folder; or an
            :class:`EgoVlpChunks`. Times are always the whole video's.
        num_frames: default: the processor's.
        jitter / seed: training-time sampling within each segment, reproducible from `seed`.
        chunk_ext: the file ending of an AVION / LaViLa folder's chunks; default: the folder's own (AVION's
            ``P01_01.MP4/0.MP4``), or ``MP4`` for a folder without one.

    Resize, crop and normalisation are the processor's `transform_frames`, applied by the caller.
    """
    num_frames = num_frames or video_processor.num_frames
    generator = np.random.default_rng(seed) if jitter else None
    sample = dict(jitter=jitter, generator=generator)
    if isinstance(video, EgoVlpChunks):
        chunks = list_chunks(video.folder, video.ext, index_seconds=video.chunk_seconds)
        return _load_from_chunks(video_processor, video.folder, chunks, start, end, num_frames, **sample)
    if isinstance(video, (str, os.PathLike)) and os.path.isdir(video):
        video_dir = os.path.normpath(os.fspath(video))
        chunk_ext = chunk_ext or os.path.splitext(video_dir)[1].lstrip(".") or "MP4"
        chunks = list_chunks(video_dir, chunk_ext)
        return _load_from_chunks(video_processor, video_dir, chunks, start, end, num_frames, **sample)
    return video_processor.load_frames(video, num_frames, start=start, end=end, **sample)


def _load_from_chunks(video_processor, video_dir, chunks, start, end, num_frames, *, jitter, generator):
    """Sample the clip from the frames of all `chunks` ((start second, path), sorted) numbered as one video."""
    # Imported here: the layouts' path logic serves readers (EgoMCQ's, the metrics') that need no torch.
    from ..video_reading_eva02at import frame_range_from_seconds, open_video, sample_frame_indices

    backend, threads = video_processor.video_backend, video_processor.num_threads
    with ExitStack() as stack:
        readers = {}

        def reader_for(path):
            # Each chunk is opened at most once per clip and closed when the clip is read.
            if path not in readers:
                readers[path] = stack.enter_context(open_video(path, repr(path), backend, threads))
            return readers[path]

        fps = reader_for(chunks[0][1]).fps
        offsets = np.array([int(chunk_start * fps) for chunk_start, _ in chunks])
        total_frames = int(offsets[-1]) + reader_for(chunks[-1][1]).num_frames
        first, stop = frame_range_from_seconds(start, end, fps, total_frames, repr(video_dir))
        indices = sample_frame_indices(first, stop, num_frames, jitter=jitter, generator=generator)
        if indices.min() < offsets[0]:
            raise FileNotFoundError(
                f"{video_dir}: no chunk holds {indices.min() / fps:.2f} s; the first chunk is "
                f"{os.path.basename(chunks[0][1])}: a chunk file is missing"
            )
        # A frame belongs to the last chunk starting at or before it: a chunk's first frame is read from that chunk.
        owners = np.searchsorted(offsets, indices, side="right") - 1
        frames = [None] * len(indices)
        for chunk in np.unique(owners):
            positions = np.flatnonzero(owners == chunk)
            reader = reader_for(chunks[chunk][1])
            local = indices[positions] - offsets[chunk]
            if local.max() >= reader.num_frames + fps:
                # More than a second past this chunk's last frame and before the next chunk: a file is missing.
                chunk_start, path = chunks[chunk]
                raise FileNotFoundError(
                    f"{video_dir}: no chunk holds {local.max() / fps + chunk_start:.2f} s; {os.path.basename(path)} "
                    f"ends at {chunk_start + reader.num_frames / fps:.2f} s"
                    + (
                        f" and the next chunk is {os.path.basename(chunks[chunk + 1][1])}"
                        if chunk + 1 < len(chunks)
                        else ""
                    )
                    + ": a chunk file is missing"
                )
            # Chunk cuts are not frame exact: a frame just past a chunk's end is its last frame, as in AVION.
            local = np.minimum(local, reader.num_frames - 1)
            for position, frame in zip(positions, reader.get_frames(local)):
                frames[position] = frame
    return np.stack(frames)


__all__ = [
    "VIDEO_LAYOUTS",
    "EgoVlpChunks",
    "check_layout",
    "chunk_paths",
    "chunk_range",
    "chunks_on_disk",
    "list_chunks",
    "load_clip",
    "video_path",
]
