"""What goes into a video index: clip records, and the sources that plan them (a folder of videos, an EK-100 CSV).

A source plans the clips it wants (:class:`SourcePlan`); `modeling_eva02at.search.build.update_index` compares them with
the index's and encodes what is new. A clip's identity includes its file's size and modification time, so a file that
changes is encoded again.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..video_reading_eva02at import open_video


logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
"""File endings (any case) that :class:`VideoFolder` indexes."""


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


@dataclass
class SourcePlan:
    """What a source wants in the index: its `clips`, and the videos it found but could not read."""

    clips: list[Clip]
    skipped: list[Skipped] = field(default_factory=list)


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
            with open_video(path, repr(path), self.video_backend, 1) as reader:
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
            paths += [
                os.path.join(root, name)
                for name in sorted(files)
                if not name.startswith(".") and name.lower().endswith(self.extensions)
            ]
        return paths

    def plan(
        self, indexed: Sequence[Clip], *, video_backend: str = "auto", num_workers: int = 0, progress: bool = True
    ) -> SourcePlan:
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
            loader = DataLoader(
                _ProbeDataset(to_probe, video_backend), batch_size=None, num_workers=num_workers, collate_fn=_identity
            )
            for path, duration, error in tqdm(
                loader, total=len(to_probe), desc="Opening new videos", unit="video", disable=not progress
            ):
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

    @cached_property
    def _dataset(self):
        from ..data.ek100 import Ek100MirAnnotations, Ek100MirDataset
        from ..data.relevancy import read_retrieval_csv

        # Evaluation items need neither the sentences nor the relevancy.
        annotations = Ek100MirAnnotations(read_retrieval_csv(self.retrieval_csv), sentences=None, relevancy=None)
        return Ek100MirDataset(annotations, self.video_root, train=False, video_ext=self.video_ext)

    def video_paths(self) -> list[str]:
        """The videos the CSV's clips are read from, each once, whether or not it exists."""
        return sorted(self._video_path_set)

    @cached_property
    def _video_path_set(self) -> set[str]:
        return {os.path.abspath(path) for path in self._dataset.video_paths()}

    def owns(self, path: str) -> bool:
        return path in self._video_path_set

    def plan(self, indexed: Sequence[Clip] = (), **_) -> SourcePlan:
        dataset = self._dataset
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
            clips.append(
                Clip(
                    path,
                    item["start"],
                    item["end"],
                    stats[path].st_size,
                    stats[path].st_mtime_ns,
                    label=narration_ids[index],
                    caption=item["caption"],
                )
            )
        skipped = [Skipped(path, f"video not found: {path}", count) for path, count in missing.items()]
        for entry in skipped:
            logger.warning(f"skipping {entry.clips} clips of a missing video: {entry.path}")
        return SourcePlan(clips, skipped)


__all__ = ["VIDEO_EXTENSIONS", "Clip", "Ek100Clips", "Skipped", "SourcePlan", "VideoFolder", "window_bounds"]
