"""Playable previews of search hits: the clip [start, end) of a video, re-encoded as a small H.264 MP4.

Browsers play H.264 in MP4 (yuv420p) but not every source video (AVION chunk folders, HEVC, odd pixel formats), and a
hit is usually a few seconds of a long video, so each hit is cut out and re-encoded at a low frame rate and size.
Frames are read with `data.layouts.load_clip` (files and chunk folders alike) and written with
:func:`modeling_eva02at.utils.video_writer.write_video`.
"""

from __future__ import annotations

import math

import numpy as np

from ..data.layouts import load_clip
from ..utils.video_writer import write_video


def write_preview(
    video_processor,
    video: str,
    start: float,
    end: float,
    output: str,
    *,
    fps: float = 8.0,
    max_seconds: float = 30.0,
    short_side: int = 224,
) -> str:
    """Write the clip [start, end) seconds of `video` to `output` (an .mp4 path) and return `output`.

    Args:
        video_processor: an `Eva02AtVideoProcessor` (`processor.image_processor`): its decoder reads the frames.
        fps: frames per second of the preview (frames are sampled evenly over the clip).
        max_seconds: longer clips are cut to their first `max_seconds` seconds.
        short_side: frames larger than this are resized to this short side (even sizes, as H.264 4:2:0 needs).
    """
    if not end > start:
        raise ValueError(f"preview of {video}: end={end} s must be after start={start} s")
    end = min(end, start + max_seconds)
    count = max(1, math.ceil((end - start) * fps))
    frames = load_clip(video_processor, video, start, end, num_frames=count)
    frames = _shrink(np.asarray(frames), short_side, video_processor)
    write_video(output, frames, fps=count / (end - start), faststart=True)
    return output


def _shrink(frames: np.ndarray, short_side: int, video_processor) -> np.ndarray:
    """(T, H, W, 3) uint8 frames with the short side at most `short_side` and both sides even."""
    import torch

    height, width = frames.shape[1:3]
    if min(height, width) > short_side:
        video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        frames = video_processor.resize_short_side(video, short_side).permute(0, 2, 3, 1).numpy()
    height, width = frames.shape[1:3]
    return np.ascontiguousarray(frames[:, : height - height % 2, : width - width % 2])


__all__ = ["write_preview"]
