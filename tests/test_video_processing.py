"""
Eva02AtVideoProcessor and Eva02AtProcessor on tiny synthetic H.264 clips.

Every test clip has its frame number stamped into the pixels (tests/video_helpers.py), so the tests check
that decoding, sampling, resizing and cropping return exactly the frames docs/data_formats.md asks for.
"""

import io
import json
import logging
import os
import pathlib
import pickle
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import modeling_eva02at.video_reading_eva02at as video_module
from modeling_eva02at.processing_eva02at import Eva02AtProcessor
from modeling_eva02at.video_processing_eva02at import AVION_MEAN, AVION_STD, Eva02AtVideoProcessor
from modeling_eva02at.video_reading_eva02at import (
    VideoDecodeError,
    frame_range_from_seconds,
    sample_frame_indices,
    time_to_seconds,
)

from . import video_helpers as sv


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUB_B16 = os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16")
# PyAV and Pillow are dependencies everywhere, decord wherever it has wheels (pyproject.toml): a missing decoder there
# fails these tests instead of skipping them. Only where decord has no wheel (PyAV decodes) are its tests skipped.
DECORD_HAS_WHEELS = platform.machine() in ("x86_64", "AMD64")
requires_decord = pytest.mark.skipif(not DECORD_HAS_WHEELS, reason=f"decord has no wheel for {platform.machine()}")
BACKENDS = [pytest.param("decord", marks=requires_decord), "pyav"]
WORKED_CASE = [31, 35, 39, 43, 46, 50, 54, 58, 61, 65, 69, 73, 76, 80, 84, 88]


def numbers(pixel_values, processor) -> list[int]:
    """Frame numbers of one processed video (T, 3, S, S)."""
    frames = sv.unnormalize(pixel_values, processor.image_mean, processor.image_std, processor.rescale_factor)
    return sv.read_frame_numbers(frames)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """All test clips, written once: {name: path}."""
    root = tmp_path_factory.mktemp("videos")
    paths = {}

    def write(name, num_frames, height=48, width=64, fps=30.0, **kwargs):
        paths[name] = str(root / f"{name}.mp4")
        sv.write_numbered_video(paths[name], num_frames, height, width, fps, **kwargs)

    write("short", 90)  # 3 s at 30 fps
    write("other", 45, 60, 80, fps=15.0)  # another size and rate
    write("odd", 40, 61, 97, fps=12.0)  # odd sides: yuv444p
    write("tiny", 5, fps=10.0)  # fewer frames than sampled
    steps = [0.2 if i % 3 == 0 else 0.05 for i in range(1, 40)]
    write("vfr", 40, timestamps=np.concatenate([[0.0], np.cumsum(steps)]))
    write("long", 600, fps=10.0)  # a minute at 10 fps, EK-100-like clips inside

    # Bad files.
    data = open(paths["short"], "rb").read()
    paths["truncated"] = str(root / "truncated.mp4")  # index (moov) at the end: cut off
    open(paths["truncated"], "wb").write(data[: len(data) // 2])
    faststart = str(root / "faststart.mp4")
    sv.write_numbered_video(faststart, 90, faststart=True)
    data = open(faststart, "rb").read()
    paths["truncated_faststart"] = str(root / "truncated_faststart.mp4")  # index intact, frames cut off
    open(paths["truncated_faststart"], "wb").write(data[: len(data) // 2])
    paths["text"] = str(root / "notes.mp4")
    open(paths["text"], "w").write("this is not a video\n" * 20)
    paths["empty"] = str(root / "empty.mp4")
    open(paths["empty"], "wb").close()
    return paths


@pytest.fixture(scope="module")
def processor():
    return Eva02AtVideoProcessor()


# ---------------------------------------------------------------------------------------------------------------------
# Frame sampling (docs/data_formats.md)
# ---------------------------------------------------------------------------------------------------------------------


def test_worked_case():
    assert sample_frame_indices(30, 90, 16).tolist() == WORKED_CASE
    # The same clip given in seconds at 30 fps: s = round(1.0 * 30), e = round(3.0 * 30).
    first, stop = frame_range_from_seconds(1.0, 3.0, 30.0, total_frames=1000)
    assert sample_frame_indices(first, stop, 16).tolist() == WORKED_CASE


@pytest.mark.parametrize(
    "start, end, count, expected",
    [
        (0, 16, 16, list(range(16))),  # one frame per segment
        (0, 32, 16, list(range(1, 32, 2))),  # exact midpoints
        (0, 4, 3, [0, 2, 3]),  # midpoint 2.0 exactly: integer arithmetic keeps it at 2
        (0, 5, 16, [0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4]),  # short clip: frames repeat
        (7, 8, 4, [7, 7, 7, 7]),
    ],
)
def test_evaluation_indices(start, end, count, expected):
    assert sample_frame_indices(start, end, count).tolist() == expected


def test_training_jitter_stays_in_its_segment_and_is_seedable():
    start, end, count = 30, 90, 16
    segment = (end - start) / count
    draws = np.stack(
        [sample_frame_indices(start, end, count, jitter=True, generator=np.random.default_rng(s)) for s in range(300)]
    )
    lower = np.floor(start + segment * np.arange(count))
    upper = start + segment * (np.arange(count) + 1)
    assert np.all(draws >= lower) and np.all(draws < upper)
    assert len(np.unique(draws[:, 0])) >= 3  # it does move: segment 0 holds frames 30..33
    again = sample_frame_indices(start, end, count, jitter=True, generator=np.random.default_rng(5))
    assert np.array_equal(draws[5], again)


# Clip bounds whose frame position (seconds x 10 fps) has a fractional part above or below one half, at both ends:
# round(), floor() and ceil() give three different frame ranges for each pair (docs/data_formats.md: s = round(start
# fps), e = round(end fps)). Expected ranges written out: 123.6 -> 124, 131.2 -> 131; 123.4 -> 123, 131.7 -> 132.
ROUNDING_CASES = [(12.36, 13.12, 124, 131), (12.34, 13.17, 123, 132)]


@pytest.mark.parametrize("start, end, first, stop", ROUNDING_CASES)
def test_frame_range_rounds_both_ends_to_the_nearest_frame(start, end, first, stop):
    assert frame_range_from_seconds(start, end, 10.0, total_frames=600) == (first, stop)
    floor = int(np.floor(start * 10)), int(np.floor(end * 10))
    ceil = int(np.ceil(start * 10)), int(np.ceil(end * 10))
    assert len({(first, stop), floor, ceil}) == 3  # the case tells rounding from flooring and ceiling


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start, end, first, stop", ROUNDING_CASES)
def test_decoded_clip_starts_and_ends_at_the_rounded_frames(videos, backend, start, end, first, stop):
    """As many samples as frames in the range: the decoded frame numbers are exactly first..stop-1."""
    processor = Eva02AtVideoProcessor(video_backend=backend)
    frames = processor.load_frames(videos["long"], stop - first, start=start, end=end)
    assert sv.read_frame_numbers(frames) == list(range(first, stop))
    as_timestamps = processor.load_frames(
        videos["long"], stop - first, start=f"00:00:{start:05.2f}", end=f"00:00:{end:05.2f}"
    )
    assert sv.read_frame_numbers(as_timestamps) == list(range(first, stop))


def test_frame_range_validation():
    assert frame_range_from_seconds(None, None, 30.0, 90) == (0, 90)
    assert frame_range_from_seconds(2.0, 99.0, 30.0, 90) == (60, 90)  # end clamped to the video
    with pytest.raises(ValueError, match="smaller than end"):
        frame_range_from_seconds(2.0, 2.0, 30.0, 90)
    with pytest.raises(ValueError, match="beyond the end"):
        frame_range_from_seconds(3.5, 4.0, 30.0, 90)
    with pytest.raises(ValueError, match="negative"):
        frame_range_from_seconds(-1.0, 2.0, 30.0, 90)


# ---------------------------------------------------------------------------------------------------------------------
# Decoding: the right frames, whatever the input type
# ---------------------------------------------------------------------------------------------------------------------
# The expected frame numbers below come from sample_frame_indices, which the tests above check against written-out
# indices (test_worked_case, test_evaluation_indices), and the seconds-to-frame rounding from ROUNDING_CASES.


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoded_frames_are_the_sampled_ones(videos, backend):
    processor = Eva02AtVideoProcessor(video_backend=backend)
    pixel_values = processor(videos["short"])["pixel_values_videos"]
    assert pixel_values.shape == (1, 16, 3, 224, 224) and pixel_values.dtype == torch.float32
    assert numbers(pixel_values[0], processor) == sample_frame_indices(0, 90, 16).tolist()


def test_same_result_for_every_input_type(videos, processor):
    path = videos["short"]
    data = open(path, "rb").read()
    all_frames = processor.load_frames(path, 90)  # 90 samples of 90 frames: every frame, in order
    assert sv.read_frame_numbers(all_frames) == list(range(90))
    inputs = {
        "pathlike": pathlib.Path(path),
        "bytes": data,
        "bytearray": bytearray(data),
        "BytesIO": io.BytesIO(data),
        "file": open(path, "rb"),
        "array": all_frames,
        "tensor THWC": torch.from_numpy(all_frames),
        "tensor TCHW": torch.from_numpy(all_frames).permute(0, 3, 1, 2),
        "PIL list": [Image.fromarray(frame) for frame in all_frames],
        "frame list": list(all_frames),
    }
    expected = processor(path, num_frames=8)["pixel_values_videos"]
    for name, video in inputs.items():
        got = processor(video, num_frames=8)["pixel_values_videos"]
        assert torch.equal(got, expected), name
    inputs["file"].close()


def test_batch_of_videos_of_different_lengths_and_sizes(videos, processor):
    names = ["short", "other", "odd", "tiny"]
    batch = processor([videos[n] for n in names], num_frames=8)["pixel_values_videos"]
    assert batch.shape == (4, 8, 3, 224, 224)
    for row, name in zip(batch, names):
        assert torch.equal(row, processor(videos[name], num_frames=8)["pixel_values_videos"][0])
    assert numbers(batch[1], processor) == sample_frame_indices(0, 45, 8).tolist()
    assert numbers(batch[3], processor) == [0, 0, 1, 2, 2, 3, 4, 4]  # 5 frames for 8 samples: repeats


def test_a_single_image_is_a_one_frame_video(videos, processor):
    frames = processor.load_frames(videos["short"], 90)  # decoded H.264 frames 0..89
    image_a, image_b = Image.fromarray(frames[7]), Image.fromarray(frames[40])
    clip = processor(image_a, num_frames=4)["pixel_values_videos"]
    assert clip.shape == (1, 4, 3, 224, 224)
    assert numbers(clip[0], processor) == [7, 7, 7, 7]
    assert torch.equal(processor(frames[7], num_frames=4)["pixel_values_videos"], clip)  # an (H, W, 3) frame
    assert torch.equal(processor([image_a], num_frames=4)["pixel_values_videos"], clip)
    # A flat list of images is the frames of one video; a batch of images is a list of one-image lists.
    assert numbers(processor([image_a, image_b], num_frames=2)["pixel_values_videos"][0], processor) == [7, 40]
    batch = processor([[image_a], [image_b]], num_frames=2)["pixel_values_videos"]
    assert batch.shape == (2, 2, 3, 224, 224) and numbers(batch[1], processor) == [40, 40]
    with pytest.raises(TypeError, match=r"mixes single frames \(videos\[1\]\) with videos \(videos\[0\]\)"):
        processor([videos["short"], image_a])


@pytest.mark.parametrize("backend", BACKENDS)
def test_clip_of_a_long_video_by_timestamps(videos, backend):
    """EK-100 style: start/end seconds inside a long video, one pair per video of a batch."""
    processor = Eva02AtVideoProcessor(video_backend=backend)
    starts, ends = [12.34, 45.0], [15.67, 47.5]
    batch = processor([videos["long"]] * 2, start=starts, end=ends)["pixel_values_videos"]
    assert numbers(batch[0], processor) == sample_frame_indices(123, 157, 16).tolist()  # round(123.4), round(156.7)
    assert numbers(batch[1], processor) == sample_frame_indices(450, 475, 16).tolist()


def test_clip_times_as_ek100_timestamps(videos, processor):
    """EK-100's "HH:MM:SS.ff" (and "MM:SS", numeric strings) give the same clips as seconds."""
    long = videos["long"]
    clip = processor(long, start="00:00:12.34", end="00:00:15.67")["pixel_values_videos"][0]
    assert numbers(clip, processor) == sample_frame_indices(123, 157, 16).tolist()
    batch = processor([long] * 2, start=["0:45", "12.34"], end=["00:47.50", 15.67])["pixel_values_videos"]
    assert torch.equal(batch[0], processor(long, start=45.0, end=47.5)["pixel_values_videos"][0])
    assert torch.equal(batch[1], clip)
    frames = processor.load_frames(long, 4, start="00:00:30.00", end="00:00:31.00")
    assert sv.read_frame_numbers(frames) == sample_frame_indices(300, 310, 4).tolist()
    with pytest.raises(ValueError, match=r"end\[1\]='00:75:00' is not a time"):
        processor([long] * 2, start=[1.0, 2.0], end=["00:00:03.00", "00:75:00"])
    with pytest.raises(ValueError, match="start='twelve' is not a time.*HH:MM:SS.ff"):
        processor(long, start="twelve", end=15.0)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("00:01:02.50", 62.5),
        ("01:00:00.00", 3600.0),
        ("1:02", 62.0),
        ("75:00", 4500.0),
        ("62.5", 62.5),
        (" 7 ", 7.0),
        (62.5, 62.5),
        (np.float32(2.5), 2.5),
        (None, None),
    ],
)
def test_time_to_seconds(value, seconds):
    assert time_to_seconds(value) == seconds


@pytest.mark.parametrize("value", ["", "1:2:3:4", "00:60:00", "01:61", "-1", "1e3", "nan", ":30", "00:01:02,50"])
def test_time_to_seconds_refuses(value):
    with pytest.raises(ValueError, match="is not a time"):
        time_to_seconds(value, "start")


@requires_decord
@pytest.mark.parametrize("name", ["odd", "vfr"])
def test_odd_sized_and_variable_frame_rate_videos(videos, name):
    """Frames are numbered in presentation order whatever their timestamps; decord and PyAV agree exactly."""
    outputs = []
    for backend in ["decord", "pyav"]:
        processor = Eva02AtVideoProcessor(video_backend=backend)
        outputs.append(processor(videos[name], num_frames=10)["pixel_values_videos"])
        assert numbers(outputs[-1][0], processor) == sample_frame_indices(0, 40, 10).tolist()
    assert torch.equal(*outputs)


@requires_decord
def test_pyav_fallback_when_decord_is_missing(videos, monkeypatch):
    """With decord not importable, 'auto' falls back to PyAV and gives bit-identical pixels."""
    processor = Eva02AtVideoProcessor()
    clips = [(videos["short"], None, None), (videos["long"], 31.2, 34.5), (videos["odd"], None, None)]
    expected = [processor(path, start=s, end=e)["pixel_values_videos"] for path, s, e in clips]
    monkeypatch.setattr(video_module, "decord", None)
    assert video_module._resolve_backend("auto") == "pyav"
    for (path, s, e), reference in zip(clips, expected):
        assert torch.equal(processor(path, start=s, end=e)["pixel_values_videos"], reference)
    with pytest.raises(ImportError, match="decord"):
        processor(videos["short"], video_backend="decord")


def test_a_folder_is_refused_with_where_chunk_layouts_are_read(videos, processor):
    with pytest.raises(IsADirectoryError, match="is a folder, not a video file.*modeling_eva02at.data.layouts"):
        processor(os.path.dirname(videos["short"]))


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: a clear error, never a hang or a crash
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_files(videos, backend):
    processor = Eva02AtVideoProcessor(video_backend=backend)
    missing = os.path.join(os.path.dirname(videos["short"]), "missing.mp4")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        processor(missing)
    for name in ["text", "empty", "truncated", "truncated_faststart"]:
        with pytest.raises(VideoDecodeError, match=os.path.basename(videos[name])):
            processor(videos[name])
    with pytest.raises(VideoDecodeError):
        processor(b"not a video at all")
    with pytest.raises(VideoDecodeError):
        processor(b"")
    assert issubclass(VideoDecodeError, ValueError)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WebP", "TIFF"])
def test_an_image_file_given_as_a_video_is_named_an_image(tmp_path, videos, backend, fmt):
    processor = Eva02AtVideoProcessor(video_backend=backend)
    frame = processor.load_frames(videos["short"], 1)[0]
    path = tmp_path / f"frame.{fmt.lower()}"
    Image.fromarray(frame).save(path, format=fmt)
    with pytest.raises(VideoDecodeError, match=f"'{path.name}' is a {fmt} image, not a video: pass it decoded"):
        processor(str(path))
    with pytest.raises(VideoDecodeError, match=f"is a {fmt} image"):
        processor(path.read_bytes())


@requires_decord
def test_decoder_failures_go_into_the_error_not_the_terminal(videos, capfd):
    """A file that is not a video is refused by the header check (PyAV), one that is cut off by decord: each an
    error naming the file, and nothing on the terminal (no process-wide redirection of stderr either: see
    tests/test_hostile_input.py)."""
    processor = Eva02AtVideoProcessor(video_backend="decord")
    capfd.readouterr()
    with pytest.raises(VideoDecodeError, match="'notes.mp4': not a readable video .*Invalid data found"):
        processor(videos["text"])
    with pytest.raises(VideoDecodeError, match="'truncated_faststart.mp4'"):
        processor(videos["truncated_faststart"])
    os.write(2, b"stderr is back\n")
    assert capfd.readouterr().err == "stderr is back\n"


def test_bad_arguments(videos, processor):
    path = videos["short"]
    with pytest.raises(ValueError, match="smaller than end"):
        processor(path, start=2.0, end=1.0)
    with pytest.raises(ValueError, match="beyond the end"):
        processor(path, start=10.0, end=12.0)  # the clip is 3 s long
    with pytest.raises(ValueError, match="empty"):
        processor([])
    with pytest.raises(ValueError, match="empty"):
        processor([[]])
    with pytest.raises(ValueError, match="2 entries for 1 videos"):
        processor(path, start=[0.0, 1.0])
    with pytest.raises(ValueError, match="video_fps"):
        processor(np.zeros((10, 48, 64, 3), np.uint8), start=0.0, end=1.0)
    with pytest.raises(ValueError, match="video_backend"):
        processor(path, video_backend="opencv")
    with pytest.raises(TypeError, match="unexpected"):
        processor(path, frames_per_second=3)


@pytest.mark.parametrize(
    "keyword, hint",
    [("num_frame", "'num_frames'"), ("fps", "'video_fps'"), ("video", "'videos'"), ("resample", None)],
)
def test_unknown_keywords_raise_with_a_hint(videos, full_processor, keyword, hint):
    """A misspelt keyword is never dropped: it used to give 16 frames as if nothing was asked."""
    path = videos["short"]
    calls = {
        "Eva02AtProcessor": lambda: full_processor(videos=path, **{keyword: 8}),
        "Eva02AtProcessor (text only)": lambda: full_processor(text="take plate", **{keyword: 8}),
        "Eva02AtVideoProcessor": lambda: full_processor.image_processor(path, **{keyword: 8}),
        "Eva02AtVideoProcessor.preprocess": lambda: full_processor.image_processor.preprocess(path, **{keyword: 8}),
    }
    for name, call in calls.items():
        if keyword == "video" and "Video" in name:
            continue  # the video processor takes videos positionally
        with pytest.raises(TypeError, match=f"got an unexpected keyword argument '{keyword}'") as error:
            call()
        message = str(error.value)
        assert message.startswith(name.split()[0].split(".")[0]), name
        assert "Valid keywords: " in message and "num_frames" in message, name
        if hint:
            assert f"Did you mean {hint}" in message, name


# ---------------------------------------------------------------------------------------------------------------------
# Pixels
# ---------------------------------------------------------------------------------------------------------------------


def test_resize_then_center_crop_geometry():
    video = torch.zeros(2, 3, 61, 97, dtype=torch.uint8)
    resized = Eva02AtVideoProcessor.resize_short_side(video, 224)
    assert resized.shape[-2:] == (224, 356)  # int(224 * 97 / 61), as torchvision.Resize
    assert Eva02AtVideoProcessor.resize_short_side(video.transpose(2, 3), 224).shape[-2:] == (356, 224)
    assert Eva02AtVideoProcessor.center_crop_video(resized, 224).shape[-2:] == (224, 224)


def test_uint8_resize_matches_float_resize():
    """Resizing uint8 frames (fast path, as PIL-based CLIP preprocessing) is within one gray level of float."""
    frames = sv.make_frames(4, 61, 97, noise=20)
    fast = Eva02AtVideoProcessor(do_normalize=False, do_rescale=False).transform_frames(frames)
    slow = Eva02AtVideoProcessor(do_normalize=False, do_rescale=False).transform_frames(frames.astype(np.float32))
    assert (fast - slow).abs().max() <= 1.0


def test_normalisation_presets():
    frame = np.full((1, 224, 224, 3), 200, np.uint8)
    clip = Eva02AtVideoProcessor().transform_frames(frame)
    clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    expected = (200 / 255 - torch.tensor(clip_mean)) / torch.tensor(clip_std)
    assert torch.allclose(clip[0, :, 0, 0], expected, atol=1e-6)
    avion = Eva02AtVideoProcessor(normalization="avion")
    assert avion.image_mean == list(AVION_MEAN) and avion.image_std == list(AVION_STD) and not avion.do_rescale
    clip = avion.transform_frames(frame)
    assert torch.allclose(clip[0, :, 0, 0], (200 - torch.tensor(AVION_MEAN)) / torch.tensor(AVION_STD), atol=1e-6)
    assert torch.equal(Eva02AtVideoProcessor().transform_frames(frame, normalization="avion"), clip)  # per call
    with pytest.raises(ValueError, match="normalization"):
        Eva02AtVideoProcessor(normalization="imagenet")


def test_float_frames_in_unit_range_warn_once(videos, processor, caplog):
    """As transformers' image processors: a warning naming do_rescale=False; do_rescale still decides."""
    frames = processor.load_frames(videos["short"], 8)  # decoded uint8 frames
    unit = frames.astype(np.float32) / 255
    logging.Logger.warning_once.cache_clear()  # "once" per process: earlier tests may have warned
    with caplog.at_level(logging.WARNING):
        processor(frames)  # uint8 0-255: no warning
        processor(frames.astype(np.float32))  # float 0-255: no warning
        assert not caplog.records
        rescaled_twice = processor(unit)["pixel_values_videos"]
        processor(torch.from_numpy(unit))
    warnings = [r.getMessage() for r in caplog.records if "already rescaled" in r.getMessage()]
    assert len(warnings) == 1 and "pass do_rescale=False" in warnings[0]
    # The frames were rescaled as do_rescale=True says: nearly the normalised value of black.
    black = processor(np.zeros_like(frames))["pixel_values_videos"]
    assert (rescaled_twice - black).abs().max() < 0.02
    fixed = processor(unit, do_rescale=False)["pixel_values_videos"]
    assert (fixed - processor(frames.astype(np.float32))["pixel_values_videos"]).abs().max() < 1e-4


# ---------------------------------------------------------------------------------------------------------------------
# Serialisation, DataLoader workers
# ---------------------------------------------------------------------------------------------------------------------


def test_video_processor_round_trip(tmp_path, videos):
    processor = Eva02AtVideoProcessor(num_frames=8, size=160, normalization="avion", num_threads=2)
    processor(videos["short"])  # a call leaves nothing behind (no reader on the object)
    json.dumps(processor.to_dict())
    processor.save_pretrained(tmp_path)
    loaded = Eva02AtVideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    video = videos["short"]
    assert torch.equal(loaded(video)["pixel_values_videos"], processor(video)["pixel_values_videos"])
    assert Eva02AtVideoProcessor.from_pretrained(tmp_path, num_frames=4).num_frames == 4
    assert Eva02AtVideoProcessor.from_pretrained(tmp_path, normalization="clip").do_rescale


def test_crop_size_follows_a_size_override(tmp_path, videos, full_processor):
    """from_pretrained(folder, size=32) and a call with size=32 crop 32 x 32, not the saved 224."""
    from transformers import AutoProcessor

    import modeling_eva02at

    modeling_eva02at.register_auto_classes()
    full_processor.save_pretrained(tmp_path)
    path = videos["short"]
    loaded = {
        "AutoProcessor": AutoProcessor.from_pretrained(tmp_path, size=32, trust_remote_code=True).image_processor,
        "Eva02AtProcessor": Eva02AtProcessor.from_pretrained(tmp_path, size=32).image_processor,
        "Eva02AtVideoProcessor": Eva02AtVideoProcessor.from_pretrained(tmp_path, size=32),
    }
    expected = full_processor.image_processor(path, size=32)["pixel_values_videos"]
    assert expected.shape == (1, 4, 3, 32, 32)
    assert numbers(expected[0], full_processor.image_processor) == sample_frame_indices(0, 90, 4).tolist()
    for name, video_processor in loaded.items():
        assert (video_processor.size, video_processor.crop_size) == (32, 32), name
        assert torch.equal(video_processor(path)["pixel_values_videos"], expected), name
    # Both given: both kept.
    both = Eva02AtVideoProcessor.from_pretrained(tmp_path, size=40, crop_size=32)
    assert (both.size, both.crop_size) == (40, 32)
    assert full_processor.image_processor(path, size=40, crop_size=32)["pixel_values_videos"].shape[-1] == 32


def test_a_crop_larger_than_the_frames_names_crop_size_and_size(videos, processor):
    path = videos["short"]  # 48 x 64 frames
    with pytest.raises(ValueError, match="crop_size=224 is larger than size=32"):
        processor(path, size=32, crop_size=224)
    with pytest.raises(ValueError, match="crop_size=224 is larger than size=32"):
        Eva02AtVideoProcessor(size=32, crop_size=224)
    with pytest.raises(ValueError, match="cannot center crop crop_size=224 from 48x64 frames.*size >= crop_size"):
        processor(path, do_resize=False)


class _ClipDataset(torch.utils.data.Dataset):
    def __init__(self, paths, processor):
        self.paths, self.processor = paths, processor

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return self.processor(self.paths[index], num_frames=4)["pixel_values_videos"][0]


def test_dataloader_workers(videos, processor):
    pickle.loads(pickle.dumps(processor))
    paths = [videos["short"], videos["other"], videos["odd"], videos["long"]]
    loader = torch.utils.data.DataLoader(_ClipDataset(paths, processor), batch_size=2, num_workers=2)
    batches = list(loader)
    assert [b.shape for b in batches] == [(2, 4, 3, 224, 224)] * 2
    assert torch.equal(batches[0][0], processor(paths[0], num_frames=4)["pixel_values_videos"][0])


# ---------------------------------------------------------------------------------------------------------------------
# Eva02AtProcessor: text + video, save / reload as remote code
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_processor():
    from transformers import CLIPTokenizer

    return Eva02AtProcessor(
        image_processor=Eva02AtVideoProcessor(num_frames=4), tokenizer=CLIPTokenizer.from_pretrained(HUB_B16)
    )


def test_processor_text_and_video(videos, full_processor):
    captions = ["take plate", "open the fridge " * 40]
    out = full_processor(text=captions, videos=[videos["short"], videos["other"]], seed=0, jitter=True)
    assert set(out) == {"input_ids", "attention_mask", "pixel_values_videos"}
    assert out["input_ids"].shape == out["attention_mask"].shape == (2, 77)
    assert out["input_ids"][0, :4].tolist() == [49406, 1172, 5135, 49407]
    assert out["attention_mask"][0].sum() == 4
    assert out["input_ids"][1, -1] == 49407 and out["attention_mask"][1].all()  # cut to 77, end-of-text last
    assert out["pixel_values_videos"].shape == (2, 4, 3, 224, 224)
    again = full_processor(text=captions, videos=[videos["short"], videos["other"]], seed=0, jitter=True)
    assert torch.equal(out["pixel_values_videos"], again["pixel_values_videos"])  # seeded jitter
    assert full_processor(text="a", padding="longest")["input_ids"].shape == (1, 3)
    assert set(full_processor(videos=videos["short"], start=0.5, end=2.0)) == {"pixel_values_videos"}
    assert full_processor.model_input_names == ["input_ids", "attention_mask", "pixel_values_videos"]
    with pytest.raises(ValueError):
        full_processor()


RELOAD_SCRIPT = textwrap.dedent(
    """
    import sys, torch
    from transformers import AutoProcessor
    folder, video, out = sys.argv[1:4]
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    assert "modeling_eva02at" not in sys.modules, "the package was imported"
    text = ["take plate", "put down the knife"]
    outputs = processor(text=text, videos=[video, video], start=[0.0, 1.0], end=[2.0, 3.0])
    torch.save({
        "outputs": dict(outputs),
        "modules": [type(processor).__module__, type(processor.image_processor).__module__],
        "tokenizer": type(processor.tokenizer).__name__,
        "settings": processor.image_processor.to_dict(),
    }, out)
    """
)


@pytest.mark.timeout(300)
def test_processor_save_and_reload_as_remote_code(tmp_path, videos, full_processor):
    """AutoProcessor.from_pretrained(trust_remote_code=True) in a fresh interpreter that never imports the package."""
    Eva02AtVideoProcessor.register_for_auto_class("AutoImageProcessor")
    Eva02AtProcessor.register_for_auto_class("AutoProcessor")
    folder = tmp_path / "eva02at-processor"
    video_processor = Eva02AtVideoProcessor(num_frames=6)
    processor = Eva02AtProcessor(image_processor=video_processor, tokenizer=full_processor.tokenizer)
    processor.save_pretrained(folder)
    files = set(os.listdir(folder))
    assert {"processor_config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert {"processing_eva02at.py", "video_processing_eva02at.py"} <= files
    config = json.load(open(folder / "processor_config.json"))
    assert config["auto_map"]["AutoProcessor"] == "processing_eva02at.Eva02AtProcessor"
    assert config["image_processor"]["num_frames"] == 6

    result_file = tmp_path / "outputs.pt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(folder), videos["short"], str(result_file)],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=240,
    )
    result = torch.load(result_file)
    assert all(module.startswith("transformers_modules") for module in result["modules"])
    assert result["tokenizer"] == "CLIPTokenizer"
    assert result["settings"]["num_frames"] == 6

    text = ["take plate", "put down the knife"]
    expected = processor(text=text, videos=[videos["short"]] * 2, start=[0.0, 1.0], end=[2.0, 3.0])
    assert set(result["outputs"]) == set(expected)
    for key in expected:
        assert torch.equal(result["outputs"][key], expected[key]), key
