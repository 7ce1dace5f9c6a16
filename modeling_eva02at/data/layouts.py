"""How egocentric datasets store their videos, and one loader for a clip in any of these layouts.

Layouts (`<root>` is the dataset's video folder, `<ext>` its file ending):

* ``full``: one file per video, ``<root>/<video>.<ext>`` (EK-100's ``<participant>/<video_id>.MP4``, Ego4D's
  ``<video_uid>.mp4``);
* ``avion``: a folder per video of 15-second chunks named by their start second,
  ``<root>/<video>.<ext>/<start_sec>.<ext>`` (AVION's copies of EK-100 and Ego4D);
* ``lavila``: the same with 300-second chunks (LaViLa's copy of Ego4D);
* ``egovlp``: a folder per video of 600-second chunks named by their index, ``<root>/<video>/<k>.<ext>`` holding
  seconds ``[600 k, 600 (k + 1))`` (EgoVLP's copy of Ego4D).

Frames of an AVION / LaViLa chunk folder are numbered over the whole video, as AVION's loader does: chunk ``c``
(seconds) holds global frames from ``int(c * fps)`` on, so a clip that straddles chunks is sampled as one range. A clip
over several EgoVLP chunks is given as a tuple of :class:`ChunkSpan` (:func:`egovlp_chunk_spans`); its frames are
shared among the pieces in proportion to their durations.

Decoding and frame sampling are the remote code's (`video_reading_eva02at.py`); this module only decides which
files and which times a clip is read from.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np


VIDEO_LAYOUTS = {"full": None, "egovlp": 600, "lavila": 300, "avion": 15}
"""Layout name -> chunk length in seconds (None: one file per video)."""


@dataclass(frozen=True)
class ChunkSpan:
    """The part [local_start, local_end) seconds of chunk file `path`, which starts `chunk_start` s into the video."""

    path: str
    chunk_start: int
    local_start: float
    local_end: float


def check_layout(layout: str) -> str:
    if layout not in VIDEO_LAYOUTS:
        raise ValueError(f"video layout must be one of {', '.join(VIDEO_LAYOUTS)}, got {layout!r}")
    return layout


def egovlp_chunk_spans(
    video_dir: str, start: float, end: float, chunk_seconds: int = VIDEO_LAYOUTS["egovlp"], ext: str = "mp4"
) -> list[ChunkSpan]:
    """The pieces of the clip [start, end) seconds in EgoVLP's chunk folder ``<video_dir>/<k>.<ext>``."""
    spans = []
    for k in range(int(start // chunk_seconds), int(math.ceil(end / chunk_seconds))):
        chunk_start = k * chunk_seconds
        local_start = max(start, chunk_start) - chunk_start
        local_end = min(end, chunk_start + chunk_seconds) - chunk_start
        if local_end > local_start:
            spans.append(ChunkSpan(os.path.join(video_dir, f"{k}.{ext}"), chunk_start, local_start, local_end))
    return spans


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
    check_layout(layout)
    if layout == "full":
        return [os.path.join(video_root, f"{video}.{video_ext}")]
    length = chunk_seconds or VIDEO_LAYOUTS[layout]
    if layout == "egovlp":
        spans = egovlp_chunk_spans(os.path.join(video_root, video), start, end, length, video_ext)
        return [span.path for span in spans]
    folder = os.path.join(video_root, f"{video}.{video_ext}")
    first, last = int(start) // length * length, int(math.ceil(end)) - 1  # the last second the clip touches
    return [os.path.join(folder, f"{second}.{video_ext}") for second in range(first, max(first, last) + 1, length)]


def split_frames(durations: Sequence[float], num_frames: int) -> list[int]:
    """Share `num_frames` among pieces of a clip in proportion to their durations (largest remainder; sums exactly)."""
    durations = np.asarray(durations, dtype=np.float64)
    exact = num_frames * durations / durations.sum()
    counts = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - counts), kind="stable")[: num_frames - counts.sum()]:
        counts[index] += 1
    return counts.tolist()


def list_chunks(video_dir: str, ext: str) -> list[tuple[int, str]]:
    """The chunk files of an AVION / LaViLa video folder as (start second, path), sorted by start."""
    pattern = re.compile(rf"^(\d+)\.{re.escape(ext)}$")
    chunks = sorted(
        (int(match.group(1)), os.path.join(video_dir, name))
        for name in os.listdir(video_dir)
        if (match := pattern.match(name))
    )
    if not chunks:
        raise FileNotFoundError(f"no chunk files '<start_sec>.{ext}' in video folder {video_dir}")
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
        video: anything the processor reads (a file, bytes, frames in memory); an AVION / LaViLa chunk folder; or a
            tuple of :class:`ChunkSpan` (a clip over EgoVLP chunks; `start` / `end` are then the spans' own).
        num_frames: default: the processor's.
        jitter / seed: training-time sampling within each segment, reproducible from `seed`.
        chunk_ext: the file ending of a chunk folder's chunks; default: the folder's own (AVION's
            ``P01_01.MP4/0.MP4``), or ``MP4`` for a folder without one.

    Resize, crop and normalisation are the processor's `transform_frames`, applied by the caller.
    """
    num_frames = num_frames or video_processor.num_frames
    generator = np.random.default_rng(seed) if jitter else None
    sample = dict(jitter=jitter, generator=generator)
    if isinstance(video, tuple):
        counts = split_frames([span.local_end - span.local_start for span in video], num_frames)
        pieces = [
            video_processor.load_frames(span.path, count, start=span.local_start, end=span.local_end, **sample)
            for span, count in zip(video, counts)
            if count > 0
        ]
        return np.concatenate(pieces)
    if isinstance(video, (str, os.PathLike)) and os.path.isdir(video):
        video_dir = os.path.normpath(os.fspath(video))
        chunk_ext = chunk_ext or os.path.splitext(video_dir)[1].lstrip(".") or "MP4"
        return _load_from_chunk_folder(video_processor, video_dir, start, end, num_frames, chunk_ext, **sample)
    return video_processor.load_frames(video, num_frames, start=start, end=end, **sample)


def _load_from_chunk_folder(video_processor, video_dir, start, end, num_frames, ext, *, jitter, generator):
    # Imported here: the layouts' path logic serves readers (EgoMCQ's, the metrics') that need no torch.
    from ..video_reading_eva02at import frame_range_from_seconds, open_video, sample_frame_indices

    chunks = list_chunks(video_dir, ext)
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
    "ChunkSpan",
    "check_layout",
    "chunk_paths",
    "egovlp_chunk_spans",
    "list_chunks",
    "load_clip",
    "split_frames",
]
