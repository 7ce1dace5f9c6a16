"""modeling_eva02at.data.layouts: which files and times a clip of each video layout is read from, and the one loader
that reads it (frame numbers stamped into the pixels say exactly which frames were read)."""

import os

import numpy as np
import pytest

from modeling_eva02at import Eva02AtVideoProcessor
from modeling_eva02at.data.layouts import chunk_paths, egovlp_chunk_spans, load_clip, split_frames
from modeling_eva02at.video_reading_eva02at import sample_frame_indices

from . import video_helpers as sv


BACKENDS = ["decord", "pyav"]


@pytest.fixture(scope="module")
def chunk_dir(tmp_path_factory):
    """AVION's layout: <root>/P01/P01_01.MP4/{0,15,30}.MP4, 40 s at 10 fps, frames numbered over the whole video."""
    folder = tmp_path_factory.mktemp("avion") / "P01" / "P01_01.MP4"
    sv.write_avion_chunks(str(folder), sv.make_frames(400), fps=10.0)
    return str(folder)


def frame_numbers(frames) -> list[int]:
    return sv.read_frame_numbers(np.asarray(frames))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_avion_chunk_folder_is_read_as_one_video_across_chunk_boundaries(chunk_dir, backend):
    processor = Eva02AtVideoProcessor(video_backend=backend)
    # 13.0 s .. 17.5 s at 10 fps: frames 130..174, chunk 0.MP4 holds 0..149 and 15.MP4 holds 150..299.
    assert frame_numbers(load_clip(processor, chunk_dir, 13.0, 17.5)) == sample_frame_indices(130, 175, 16).tolist()
    # A clip over all three chunks, and one whose end is past the video's end (clamped to frame 399).
    clip = load_clip(processor, chunk_dir, 10.0, 38.0, num_frames=8)
    assert frame_numbers(clip) == sample_frame_indices(100, 380, 8).tolist()
    clip = load_clip(processor, chunk_dir, 35.0, 60.0, num_frames=4)
    assert frame_numbers(clip) == sample_frame_indices(350, 400, 4).tolist()
    with pytest.raises(ValueError, match="beyond the end"):
        load_clip(processor, chunk_dir, 45.0, 50.0)


def test_a_chunk_folder_without_chunks_is_named(tmp_path):
    (tmp_path / "P01_01.MP4").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no chunk files '<start_sec>.MP4' in video folder .*P01_01.MP4"):
        load_clip(Eva02AtVideoProcessor(), str(tmp_path / "P01_01.MP4"), 0.0, 1.0)


def test_a_missing_chunk_inside_a_clip_is_named_not_papered_over(tmp_path):
    folder = tmp_path / "P01_01.MP4"
    paths = sv.write_avion_chunks(str(folder), sv.make_frames(400), fps=10.0)
    processor = Eva02AtVideoProcessor()
    os.remove(paths[1])  # 15.MP4: seconds 15..30
    # A clip inside one chunk still reads; one that reaches into the gap is refused.
    clip = load_clip(processor, str(folder), 2.0, 14.0, num_frames=4)
    assert frame_numbers(clip) == sample_frame_indices(20, 140, 4).tolist()
    with pytest.raises(
        FileNotFoundError,
        match=r"P01_01.MP4: no chunk holds .* s; 0.MP4 ends at 15.00 s and the next "
        r"chunk is 30.MP4: a chunk file is missing",
    ):
        load_clip(processor, str(folder), 10.0, 25.0, num_frames=8)


def test_chunk_files_take_the_folders_own_ending_unless_told(tmp_path):
    folder = tmp_path / "P01_01.mp4"
    sv.write_avion_chunks(str(folder), sv.make_frames(200), fps=10.0, ext="mp4")
    processor = Eva02AtVideoProcessor()
    assert (
        frame_numbers(load_clip(processor, str(folder), 14.0, 16.0, num_frames=2))
        == sample_frame_indices(140, 160, 2).tolist()
    )
    with pytest.raises(FileNotFoundError, match=r"no chunk files '<start_sec>.MP4'"):
        load_clip(processor, str(folder), 14.0, 16.0, chunk_ext="MP4")


def test_a_file_is_read_by_the_processor_with_the_same_seeded_jitter(tmp_path):
    path = str(tmp_path / "clip.mp4")
    sv.write_numbered_video(path, 90, fps=30.0)
    processor = Eva02AtVideoProcessor()
    clip = load_clip(processor, path, 0.5, 2.5, jitter=True, seed=7)
    direct = processor(path, start=0.5, end=2.5, jitter=True, seed=7)["pixel_values_videos"][0]
    np.testing.assert_array_equal(processor.transform_frames(clip).numpy(), direct.numpy())
    assert frame_numbers(clip) != sample_frame_indices(15, 75, 16).tolist()  # jittered, not the midpoints


def test_egovlp_spans_and_chunk_paths_of_every_layout():
    spans = egovlp_chunk_spans("/v/uid", 590.0, 610.0, 600, "mp4")
    assert [(s.path, s.chunk_start, s.local_start, s.local_end) for s in spans] == [
        ("/v/uid/0.mp4", 0, 590.0, 600.0),
        ("/v/uid/1.mp4", 600, 0.0, 10.0),
    ]
    assert chunk_paths("/v", "uid", 590.0, 610.0, "egovlp") == ["/v/uid/0.mp4", "/v/uid/1.mp4"]
    assert chunk_paths("/v", "uid", 10.0, 20.0, "full") == ["/v/uid.mp4"]
    assert chunk_paths("/v", "uid", 290.0, 310.0, "lavila") == ["/v/uid.mp4/0.mp4", "/v/uid.mp4/300.mp4"]
    assert chunk_paths("/v", "uid", 14.0, 16.0, "avion") == ["/v/uid.mp4/0.mp4", "/v/uid.mp4/15.mp4"]
    with pytest.raises(ValueError, match="video layout must be one of full, egovlp, lavila, avion, got 'chunked'"):
        chunk_paths("/v", "uid", 0.0, 1.0, "chunked")


def test_split_frames_is_proportional_and_sums_exactly():
    assert split_frames([10.0, 10.0], 4) == [2, 2]
    assert split_frames([1.0, 3.0], 4) == [1, 3]
    assert split_frames([1.0, 1.0, 1.0], 4) == [2, 1, 1]  # largest remainder, ties to the first
    assert sum(split_frames([0.3, 5.2, 7.7], 16)) == 16
