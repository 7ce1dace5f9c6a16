"""Write RGB frames to an H.264 MP4 file with PyAV: the encoder behind the demo datasets, search previews and the
tests' videos. The model never needs it; decoding lives in `video_reading_eva02at.py`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from fractions import Fraction

import numpy as np


def write_video(
    file,
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float = 30.0,
    *,
    timestamps: Sequence[float] | None = None,
    codec: str = "libx264",
    crf: int | None = 18,
    gop_size: int | None = None,
    pix_fmt: str | None = None,
    faststart: bool = False,
) -> str | io.IOBase:
    """
    Encode (T, H, W, 3) uint8 RGB frames into an MP4 file with PyAV.

    Args:
        file: a path or a writable binary file-like object (e.g. `io.BytesIO`).
        fps: nominal frame rate.
        timestamps: optional per-frame presentation times in seconds (strictly increasing) for a variable-frame-rate
            file; frames are otherwise spaced 1/fps apart.
        codec / crf / gop_size: encoder settings (`crf=None` keeps the encoder default).
        pix_fmt: defaults to yuv420p, or yuv444p when a side is odd (4:2:0 needs even sizes).
        faststart: put the index (moov atom) at the start of the file, as web videos do.

    Returns `file`.
    """
    import av  # local import: only the writer needs PyAV

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be a (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (len(frames),) or np.any(np.diff(timestamps) <= 0):
            raise ValueError("timestamps must be strictly increasing, one per frame")
    height, width = frames.shape[1:3]
    if pix_fmt is None:
        pix_fmt = "yuv444p" if height % 2 or width % 2 else "yuv420p"
    if isinstance(file, os.PathLike):
        file = os.fspath(file)

    options = {}
    if crf is not None:
        options["crf"] = str(crf)
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(file, mode="w", format="mp4", options=container_options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001), options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop_size is not None:
            stream.codec_context.gop_size = gop_size
        time_base = None
        if timestamps is not None:
            # A millisecond clock carries arbitrary per-frame times.
            time_base = Fraction(1, 1000)
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if time_base is not None:
                frame.pts = int(round(timestamps[index] / time_base))
                frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return file
