"""
Which frames of a video to read, and reading them: clip times in seconds or EPIC-Kitchens' clock format, AVION's frame
sampling, and the decoders (decord, or PyAV where decord has no wheels).

A reader is opened and closed around one read (`open_video`) and never stored, so a processor that uses it can be
pickled into DataLoader workers. Part of the remote code: the video processor imports it.
"""

import io
import math
import os
import re
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from transformers.utils import logging


# Optional decoders. The try blocks also tell transformers' remote-code import check to skip them.
try:
    import decord
except ImportError:
    decord = None

try:
    import av
except ImportError:
    av = None


logger = logging.get_logger(__name__)

VIDEO_BACKENDS = ("auto", "decord", "pyav")

# The PyAV reader seeks (instead of decoding from the first frame) when the first wanted frame is this many
# seconds into the video.
_PYAV_SEEK_THRESHOLD_SECONDS = 2.0


class VideoDecodeError(ValueError):
    """A video could not be read: not a video, truncated or corrupt, no video stream, or no frame at an index."""


# "SS", "MM:SS" or "HH:MM:SS", seconds with an optional fraction (EPIC-Kitchens writes "00:01:02.50").
_CLOCK_TIME = re.compile(r"(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?)")


def time_to_seconds(value, argument: str = "start") -> float | None:
    """
    A clip time as seconds: a number, a numeric string ("62.5"), "MM:SS(.ff)" or EK-100's "HH:MM:SS.ff"
    ("00:01:02.50" -> 62.5). None stays None. Minutes and seconds after a larger field must be below 60.
    """
    if value is None:
        return None
    if isinstance(value, str):
        clock = _CLOCK_TIME.fullmatch(value.strip())
        if clock:
            hours, minutes, seconds = clock.groups()
            if ":" not in value or (float(seconds) < 60 and (hours is None or int(minutes) < 60)):
                return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)
        raise ValueError(
            f"{argument}={value!r} is not a time: give seconds (62.5 or '62.5'), 'MM:SS.ff' or 'HH:MM:SS.ff' "
            f"(EPIC-Kitchens' '00:01:02.50')"
        )
    if isinstance(value, bool) or not hasattr(value, "__float__"):
        raise TypeError(f"{argument} must be seconds (a number) or a time string, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds):
        raise ValueError(f"{argument}={value!r} is not a finite number of seconds")
    return seconds


# ---------------------------------------------------------------------------------------------------------------------
# Frame sampling (docs/data_formats.md)
# ---------------------------------------------------------------------------------------------------------------------


def sample_frame_indices(
    start_frame: int,
    end_frame: int,
    num_frames: int,
    *,
    jitter: bool = False,
    generator: np.random.Generator | None = None,
) -> np.ndarray:
    """
    Indices of `num_frames` frames of the range [start_frame, end_frame) (end exclusive), as AVION samples them.

    The range is cut into `num_frames` equal segments of length (e - s) / T. Without jitter, frame i is the floor of
    segment i's midpoint, s + (e - s) * (2i + 1) / (2T), computed in integers so that no rounding error can move an
    exact midpoint down a frame. With jitter (training), the midpoint is shifted by U(-1/2, 1/2) * (e - s - 1) / T,
    as in AVION's `get_frame_ids`. A range shorter than `num_frames` yields repeated indices.

    Example: `sample_frame_indices(30, 90, 16)` -> 31, 35, 39, 43, 46, 50, 54, 58, 61, 65, 69, 73, 76, 80, 84, 88.
    """
    start_frame, end_frame, num_frames = int(start_frame), int(end_frame), int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if end_frame <= start_frame:
        raise ValueError(f"empty frame range [{start_frame}, {end_frame})")
    length = end_frame - start_frame
    segments = np.arange(num_frames, dtype=np.int64)
    if not jitter:
        return start_frame + (length * (2 * segments + 1)) // (2 * num_frames)
    generator = generator if generator is not None else np.random.default_rng()
    midpoints = start_frame + length * (2 * segments + 1) / (2 * num_frames)
    shifts = (generator.random(num_frames) - 0.5) * (length - 1) / num_frames
    indices = np.floor(midpoints + shifts).astype(np.int64)
    return np.clip(indices, start_frame, end_frame - 1)


def frame_range_from_seconds(
    start: float | None, end: float | None, fps: float, total_frames: int, name: str = "video"
) -> tuple[int, int]:
    """
    The frame range [s, e) of the clip [start, end) seconds: s = round(start * fps), e = round(end * fps).

    `start=None` means the first frame and `end=None` the end of the video. An `end` past the video's last frame is
    clamped (annotation times are often a little past the end); a `start` at or past the end, a negative `start` or
    `start >= end` raise ValueError naming the video.
    """
    if start is not None and start < 0:
        raise ValueError(f"start={start} s is negative for {name}")
    if start is not None and end is not None and start >= end:
        raise ValueError(f"start={start} s must be smaller than end={end} s for {name}")
    if start is not None or end is not None:
        if fps is None or not fps > 0:
            raise ValueError(f"{name}: start/end in seconds need a frame rate; pass video_fps=")
    first = 0 if start is None else int(np.round(start * fps))
    stop = total_frames if end is None else int(np.round(end * fps))
    if first >= total_frames:
        raise ValueError(
            f"start={start} s (frame {first}) is beyond the end of {name} ({total_frames} frames"
            + (f", {total_frames / fps:.2f} s)" if fps else ")")
        )
    if stop > total_frames:
        logger.debug(f"{name}: end frame {stop} clamped to the video's {total_frames} frames")
        stop = total_frames
    # A clip shorter than one frame still shows its first frame.
    return first, max(stop, first + 1)


# ---------------------------------------------------------------------------------------------------------------------
# Decoders. Each reader lives for one call only (see `open_video`).
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoInfo:
    """What a video's header says (`probe_video`), before any frame is decoded."""

    width: int
    height: int
    num_frames: int  # as the header states it; 0 where the container does not say
    fps: float
    seconds: float | None  # the container's duration, where it states one
    size: int  # bytes

    @property
    def frame_pixels(self) -> int:
        return self.width * self.height


def _source_size(source) -> int:
    if isinstance(source, io.BytesIO):
        return source.getbuffer().nbytes
    return os.path.getsize(source)


def _header_info(container, size: int, name: str) -> VideoInfo:
    """The header of an open PyAV container, refused with `VideoDecodeError` when it cannot be right: more frames
    than the file has bytes (no frame is stored in less than a byte). decord sizes its frame index from these numbers,
    and a crafted header (an `stts` box claiming 2^31 samples, a Matroska duration of 10^15 us) makes it allocate
    until the process aborts; PyAV reads the same files safely, so every file is checked here first."""
    if not container.streams.video:
        raise VideoDecodeError(f"{name} has no video stream")
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    if container.duration:
        seconds = container.duration / 1_000_000  # av.time_base
    elif stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    else:
        seconds = None
    claimed = max(stream.frames or 0, (seconds or 0.0) * fps)
    if claimed > size:
        duration = f", {seconds:.3g} s at {fps:.3g} fps" if seconds else ""
        raise VideoDecodeError(
            f"{name}: its header claims {claimed:.3g} frames{duration} in a file of {size} bytes: a damaged or crafted "
            "header, refused before decoding"
        )
    codec = stream.codec_context
    return VideoInfo(codec.width, codec.height, stream.frames or 0, fps, seconds, size)


def probe_video(source, name: str) -> VideoInfo:
    """Read the header of `source` (a path or a BytesIO) with PyAV, decoding nothing (a fraction of a millisecond).

    Raises:
        VideoDecodeError: not a readable video, no video stream, or a header that cannot be right (`_header_info`).
        ImportError: PyAV is not installed.
    """
    if av is None:
        raise ImportError("checking a video's header needs PyAV (`pip install av`)")
    size = _source_size(source)
    try:
        with av.open(source, mode="r") as container:
            return _header_info(container, size, name)
    except av.error.FFmpegError as error:
        raise VideoDecodeError(f"cannot open {name}: not a readable video ({_without_path(error, source)})") from None
    finally:
        if isinstance(source, io.BytesIO):
            source.seek(0)


_CHECKED_FILES: OrderedDict[tuple, None] = OrderedDict()  # (path, size, mtime) whose header passed, latest last
_CHECKED_FILES_LOCK = threading.Lock()
MAX_CHECKED_FILES = 4096


def _check_header(source, name: str) -> None:
    """`probe_video` before decord opens `source`, once per version of a file in this process: training and indexing
    open the same files over and over, and the check costs a third of a millisecond (about 7 % of a small clip's
    decode). A file changed since (size or modification time) is checked again; bytes are checked every time."""
    if isinstance(source, io.BytesIO):
        probe_video(source, name)
        return
    stat = os.stat(source)
    key = (os.fspath(source), stat.st_size, stat.st_mtime_ns)
    with _CHECKED_FILES_LOCK:
        if key in _CHECKED_FILES:
            _CHECKED_FILES.move_to_end(key)
            return
    probe_video(source, name)
    with _CHECKED_FILES_LOCK:
        _CHECKED_FILES[key] = None
        while len(_CHECKED_FILES) > MAX_CHECKED_FILES:
            _CHECKED_FILES.popitem(last=False)


# decord's exceptions start with its log prefix: "[12:00:00] /github/workspace/src/video/video_reader.cc:486: ".
_DECORD_PREFIX = re.compile(r"\[[\d:]+\] \S+\.cc:\d+: ")


def _without_path(error: Exception, source) -> str:
    """The decoder's message with the file's folder (and decord's source-file prefix) left out: messages name files,
    not the server's paths."""
    text = _DECORD_PREFIX.sub("", str(error))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        text = text.replace(path, os.path.basename(path))
    return text


class _DecordReader:
    """Frame-accurate random access with decord (the default). The header is checked with PyAV first (where
    installed: it is everywhere decord is, as a dependency of this package)."""

    def __init__(self, source, name: str, num_threads: int):
        self.name = name
        if av is not None:
            _check_header(source, name)
        _quiet_decord()
        try:
            self._reader = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=num_threads)
        except (decord.DECORDError, RuntimeError, AssertionError) as error:
            raise VideoDecodeError(
                f"cannot open {name}: not a readable video, or truncated ({_without_path(error, source)})"
            ) from None
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps())

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        # Short clips repeat frames: decode each distinct frame once.
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            frames = self._reader.get_batch(unique.tolist()).asnumpy()
        except (decord.DECORDError, RuntimeError) as error:
            raise VideoDecodeError(
                f"cannot decode frames {unique[0]}..{unique[-1]} of {self.name}: truncated or corrupt video "
                f"({_DECORD_PREFIX.sub('', str(error))})"
            ) from None
        return frames[inverse]

    def close(self):
        self._reader = None


_DECORD_QUIET = False


def _quiet_decord() -> None:
    """Keep decord's FFmpeg from logging to the terminal (its level is process-wide, and this only lowers it): its
    failures reach the caller as exceptions."""
    global _DECORD_QUIET
    if not _DECORD_QUIET:
        decord.logging.set_level(decord.logging.QUIET)
        _DECORD_QUIET = True


class _PyAVReader:
    """
    PyAV fallback. Frames are counted in presentation order from the start of the stream, as decord numbers them.
    When the first wanted frame is far into the video it seeks to the preceding keyframe instead and numbers frames
    from their timestamps, which is exact for constant-frame-rate videos (camera footage, EPIC-Kitchens).
    """

    def __init__(self, source, name: str, num_threads: int):
        self.name = name
        try:
            self._container = av.open(source, mode="r")
        except av.error.FFmpegError as error:
            raise VideoDecodeError(
                f"cannot open {name}: not a readable video ({_without_path(error, source)})"
            ) from None
        try:
            _header_info(self._container, _source_size(source), name)
        except VideoDecodeError:
            self._container.close()
            raise
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = num_threads
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else 0.0
        self.num_frames = stream.frames or self._count_frames()
        if self.num_frames <= 0:
            self._container.close()
            raise VideoDecodeError(f"{name} has no frames")

    def _count_frames(self) -> int:
        """Containers without a frame count in their header: count the packets (no decoding), then rewind."""
        try:
            count = sum(1 for packet in self._container.demux(self._stream) if packet.size)
            self._container.seek(0, stream=self._stream)
        except av.error.FFmpegError as error:
            raise VideoDecodeError(f"cannot read {self.name}: {error}") from None
        return count

    def _frame_index(self, frame) -> int:
        stream = self._stream
        offset = frame.pts - (stream.start_time or 0)
        return int(round(float(offset * stream.time_base) * self.fps))

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        wanted = set(int(i) for i in indices)
        found = {}
        if self.fps > 0 and min(wanted) >= _PYAV_SEEK_THRESHOLD_SECONDS * self.fps:
            found = self._decode(wanted, seek=True)
        if len(found) < len(wanted):
            # Decode from the first frame: always right, also where a seek landed badly.
            found = self._decode(wanted, seek=False)
        missing = sorted(wanted - set(found))
        if missing:
            raise VideoDecodeError(
                f"{self.name}: the decoder returned no frame for indices {missing[:5]}"
                f"{'...' if len(missing) > 5 else ''} (of {self.num_frames}); the video is truncated or corrupt"
            )
        return np.stack([found[int(i)] for i in indices])

    def _decode(self, wanted: set[int], seek: bool) -> dict[int, np.ndarray]:
        """Decode forward (from the keyframe before the first wanted frame when `seek`), keeping wanted frames."""
        stream, found, last = self._stream, {}, max(wanted)
        try:
            if seek:
                target = min(wanted) / self.fps / stream.time_base + (stream.start_time or 0)
                self._container.seek(int(target), stream=stream, backward=True, any_frame=False)
            else:
                self._container.seek(0, stream=stream)
            position = -1
            for frame in self._container.decode(stream):
                position = self._frame_index(frame) if seek and frame.pts is not None else position + 1
                if position in wanted and position not in found:
                    found[position] = frame.to_ndarray(format="rgb24")
                if position >= last:
                    break
        except av.error.FFmpegError as error:
            raise VideoDecodeError(f"cannot decode {self.name}: truncated or corrupt video ({error})") from None
        return found

    def close(self):
        self._container.close()


def _resolve_backend(backend: str) -> str:
    if backend not in VIDEO_BACKENDS:
        raise ValueError(f"video_backend must be one of {VIDEO_BACKENDS}, got {backend!r}")
    if backend == "auto":
        if decord is not None:
            return "decord"
        if av is not None:
            return "pyav"
        raise ImportError(
            "decoding a video file needs PyAV or decord, and neither is installed: pip install av (and decord, where "
            "it has wheels, x86_64, for faster decoding); frames in memory need neither"
        )
    if backend == "decord" and decord is None:
        raise ImportError("video_backend='decord' but decord is not installed (`pip install decord`)")
    if backend == "pyav" and av is None:
        raise ImportError("video_backend='pyav' but PyAV is not installed (`pip install av`)")
    return backend


@contextmanager
def open_video(source, name: str, backend: str = "auto", num_threads: int = 1):
    """Open `source` (a path or a BytesIO) with the chosen decoder (`"auto"`, `"decord"` or `"pyav"`) and close it on
    exit. The reader has `fps`, `num_frames` (frames numbered in presentation order from 0) and
    `get_frames(indices)` -> (len(indices), H, W, 3) uint8; errors are `VideoDecodeError`s naming `name`."""
    if isinstance(source, io.BytesIO):
        source.seek(0)
    reader_class = _DecordReader if _resolve_backend(backend) == "decord" else _PyAVReader
    reader = reader_class(source, name, num_threads)
    try:
        yield reader
    finally:
        reader.close()


__all__ = [
    "VIDEO_BACKENDS",
    "VideoDecodeError",
    "VideoInfo",
    "frame_range_from_seconds",
    "open_video",
    "probe_video",
    "sample_frame_indices",
    "time_to_seconds",
]
