"""Synthetic test videos: write H.264 MP4 files with PyAV and stamp frame numbers into the pixels.

Used by the test-suite and the I/O benchmark; the encoder itself is `modeling_eva02at.utils.video_writer.write_video`.

Frame numbers are written as a grid of flat gray blocks (one base-4 digit per block) inside the central square of
the frame, i.e. the region that survives the processor's short-side resize + center crop. Flat blocks with gray
levels 64 apart survive H.264 compression, chroma subsampling and bilinear resizing, so a test can decode a clip
and check that it got exactly the frames it asked for (:func:`read_frame_number`).
"""

from __future__ import annotations

import os

import numpy as np

from modeling_eva02at.utils.video_writer import write_video


# Frame-number code: CODE_ROWS x CODE_COLS blocks, one base-CODE_BASE digit each (4**6 = 4096 distinct numbers).
CODE_ROWS = 2
CODE_COLS = 3
CODE_BASE = 4
CODE_LEVELS = np.array([32, 96, 160, 224], dtype=np.float64)  # gray level of each digit value
MAX_FRAME_NUMBER = CODE_BASE ** (CODE_ROWS * CODE_COLS) - 1


def _code_cells(height: int, width: int):
    """Yield (digit position, row slice, col slice) of each code block in the frame's central square."""
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    for r in range(CODE_ROWS):
        for c in range(CODE_COLS):
            r0, r1 = top + side * r // CODE_ROWS, top + side * (r + 1) // CODE_ROWS
            c0, c1 = left + side * c // CODE_COLS, left + side * (c + 1) // CODE_COLS
            yield r * CODE_COLS + c, slice(r0, r1), slice(c0, c1)


def stamp_frame_number(frame: np.ndarray, number: int) -> np.ndarray:
    """Write `number` into a (H, W, 3) uint8 frame, in place, as flat gray blocks; returns the frame."""
    if not 0 <= number <= MAX_FRAME_NUMBER:
        raise ValueError(f"frame number {number} outside [0, {MAX_FRAME_NUMBER}]")
    height, width = frame.shape[:2]
    for position, rows, cols in _code_cells(height, width):
        digit = (number // CODE_BASE**position) % CODE_BASE
        frame[rows, cols] = int(CODE_LEVELS[digit])
    return frame


def read_frame_number(frame) -> int:
    """
    Read back the number written by :func:`stamp_frame_number`.

    `frame` may be a decoded (H, W, 3) uint8 frame, or a processed (3, S, S) / (S, S, 3) float frame that was
    resized and center-cropped (it is then expected in 0-255 scale; see :func:`unnormalize`). Only the middle half of
    each block is averaged, so blurred block edges do not matter.
    """
    frame = np.asarray(frame, dtype=np.float64)
    if frame.ndim == 3 and frame.shape[0] == 3 and frame.shape[-1] != 3:
        frame = frame.transpose(1, 2, 0)
    gray = frame.mean(axis=-1) if frame.ndim == 3 else frame
    number = 0
    for position, rows, cols in _code_cells(*gray.shape):
        r_len, c_len = rows.stop - rows.start, cols.stop - cols.start
        inner = gray[
            rows.start + r_len // 4 : rows.stop - r_len // 4 or None,
            cols.start + c_len // 4 : cols.stop - c_len // 4 or None,
        ]
        digit = int(np.abs(CODE_LEVELS - inner.mean()).argmin())
        number += digit * CODE_BASE**position
    return number


def read_frame_numbers(frames) -> list[int]:
    """:func:`read_frame_number` for every frame of a (T, ...) stack."""
    return [read_frame_number(frame) for frame in frames]


def unnormalize(pixel_values, mean, std, rescale_factor: float = 1 / 255):
    """Undo the processor's normalisation: (T, 3, S, S) normalised values -> 0-255 floats (numpy)."""
    values = np.asarray(pixel_values, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float64).reshape(3, 1, 1)
    return (values * std + mean) / rescale_factor


def make_frames(
    num_frames: int,
    height: int = 48,
    width: int = 64,
    *,
    first_number: int = 0,
    stamp_numbers: bool = True,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """
    A (T, H, W, 3) uint8 clip: a moving colour gradient, optional Gaussian noise (standard deviation `noise` in
    gray levels; makes the clip compress like camera footage), and frame numbers `first_number + t` stamped in the
    centre when `stamp_numbers`.
    """
    rng = np.random.default_rng(seed)
    ys = np.linspace(0.0, 1.0, height)[:, None]
    xs = np.linspace(0.0, 1.0, width)[None, :]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        phase = 2 * np.pi * t / 60.0
        red = 128 + 100 * np.sin(2 * np.pi * xs + phase) * np.ones_like(ys)
        green = 128 + 100 * np.cos(2 * np.pi * ys + 0.7 * phase) * np.ones_like(xs)
        blue = 128 + 60 * np.sin(2 * np.pi * (xs + ys) - phase)
        frame = np.stack([red, green, blue], axis=-1)
        if noise > 0:
            frame = frame + rng.normal(0.0, noise, size=frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
        if stamp_numbers:
            stamp_frame_number(frames[t], first_number + t)
    return frames


def write_numbered_video(
    file,
    num_frames: int,
    height: int = 48,
    width: int = 64,
    fps: float = 30.0,
    *,
    first_number: int = 0,
    noise: float = 0.0,
    **kwargs,
) -> np.ndarray:
    """
    Shortcut: :func:`make_frames` with stamped frame numbers, then :func:`write_video` (`kwargs` go to it).
    Returns the frames that were encoded.
    """
    frames = make_frames(num_frames, height, width, first_number=first_number, noise=noise)
    write_video(file, frames, fps, **kwargs)
    return frames


def write_avion_chunks(
    video_dir, frames: np.ndarray, fps: float, chunk_seconds: int = 15, ext: str = "MP4", **kwargs
) -> list[str]:
    """
    Split a clip into AVION's chunk layout: `<video_dir>/<start_sec>.<ext>`, `chunk_seconds` seconds each (the
    folder itself is normally named `<video_id>.MP4`). Chunk k holds frames [int(k*L*fps), int((k+1)*L*fps)), as
    AVION's loader assumes. Returns the chunk paths.
    """
    os.makedirs(video_dir, exist_ok=True)
    paths = []
    chunk_start = 0
    while int(chunk_start * fps) < len(frames):
        first, last = int(chunk_start * fps), int((chunk_start + chunk_seconds) * fps)
        path = os.path.join(video_dir, f"{chunk_start}.{ext}")
        write_video(path, frames[first:last], fps, **kwargs)
        paths.append(path)
        chunk_start += chunk_seconds
    return paths


def write_egovlp_chunks(
    video_dir, frames: np.ndarray, fps: float, chunk_seconds: int = 600, ext: str = "mp4", **kwargs
) -> list[str]:
    """
    Split a clip into EgoVLP's chunk layout: `<video_dir>/<k>.<ext>` (the folder itself is normally named
    `<video_uid>`), chunk k holding seconds [k*L, (k+1)*L), i.e. frames [int(k*L*fps), int((k+1)*L*fps)), numbered
    from 0 within its file. Frames stamped with their number in the whole video (:func:`make_frames`) say which frame
    of the video a reader got. Returns the chunk paths.
    """
    os.makedirs(video_dir, exist_ok=True)
    paths = []
    index = 0
    while int(index * chunk_seconds * fps) < len(frames):
        first, last = int(index * chunk_seconds * fps), int((index + 1) * chunk_seconds * fps)
        path = os.path.join(video_dir, f"{index}.{ext}")
        write_video(path, frames[first:last], fps, **kwargs)
        paths.append(path)
        index += 1
    return paths


def write_mp4_claiming_frames(path, claimed: int = 2**31 - 1) -> str:
    """A 2-second 64x64 H.264 MP4 whose `stts` box claims `claimed` samples: decord sizes its frame index from it and
    aborts the process allocating 2^31 entries."""
    import struct

    write_video(path, make_frames(16, 64, 64, noise=40.0), fps=8.0)
    data = bytearray(open(path, "rb").read())
    box = data.find(b"stts")
    assert struct.unpack(">I", data[box + 8 : box + 12])[0] >= 1  # entry_count; the first entry's sample_count follows
    data[box + 12 : box + 16] = struct.pack(">I", claimed)
    open(path, "wb").write(bytes(data))
    return path


def write_mkv_claiming_duration(path, milliseconds: float = 1e12) -> str:
    """A 2-second 64x64 H.264 Matroska file whose Segment Info claims a duration of `milliseconds` (10^12 ms = 10^15
    us by default): decord sizes its frame index from duration x rate and aborts the process."""
    import struct

    import av

    with av.open(path, "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for rgb in make_frames(16, 64, 64, noise=40.0):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    data = bytearray(open(path, "rb").read())
    element = data.find(b"\x44\x89")  # Duration, a float in TimestampScale units (1 ms by default)
    size = data[element + 2] & 0x7F
    data[element + 3 : element + 3 + size] = struct.pack(">d" if size == 8 else ">f", milliseconds)
    open(path, "wb").write(bytes(data))
    return path


__all__ = [
    "MAX_FRAME_NUMBER",
    "make_frames",
    "read_frame_number",
    "read_frame_numbers",
    "stamp_frame_number",
    "unnormalize",
    "write_avion_chunks",
    "write_egovlp_chunks",
    "write_mkv_claiming_duration",
    "write_mp4_claiming_frames",
    "write_numbered_video",
    "write_video",
]
