"""modeling_eva02at.data.layouts: which files and times a clip of each video layout is read from, and the one loader
that reads it (frame numbers stamped into the pixels say exactly which frames were read)."""

import os

import numpy as np
import pytest

from modeling_eva02at import Eva02AtVideoProcessor
from modeling_eva02at.data.layouts import EgoVlpChunks, chunk_paths, load_clip
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


def test_chunk_paths_of_every_layout():
    assert chunk_paths("/v", "uid", 590.0, 610.0, "egovlp") == ["/v/uid/0.mp4", "/v/uid/1.mp4"]
    assert chunk_paths("/v", "uid", 10.0, 20.0, "full") == ["/v/uid.mp4"]
    assert chunk_paths("/v", "uid", 290.0, 310.0, "lavila") == ["/v/uid.mp4/0.mp4", "/v/uid.mp4/300.mp4"]
    assert chunk_paths("/v", "uid", 14.0, 16.0, "avion") == ["/v/uid.mp4/0.mp4", "/v/uid.mp4/15.mp4"]
    assert chunk_paths("/v", "uid", 10.0, 40.0, "avion", chunk_seconds=10, video_ext="MP4") == [
        "/v/uid.MP4/10.MP4",
        "/v/uid.MP4/20.MP4",
        "/v/uid.MP4/30.MP4",
    ]
    with pytest.raises(ValueError, match="video layout must be one of full, egovlp, lavila, avion, got 'chunked'"):
        chunk_paths("/v", "uid", 0.0, 1.0, "chunked")


def test_a_clip_ending_on_a_chunk_boundary_needs_no_next_chunk(tmp_path):
    # [start, end) ends before the boundary: the chunk that starts there holds none of the clip's frames.
    assert chunk_paths("/v", "uid", 290.0, 300.0, "lavila") == ["/v/uid.mp4/0.mp4"]
    assert chunk_paths("/v", "uid", 0.0, 15.0, "avion") == ["/v/uid.mp4/0.mp4"]
    assert chunk_paths("/v", "uid", 15.0, 30.0, "avion") == ["/v/uid.mp4/15.mp4"]
    assert chunk_paths("/v", "uid", 590.0, 600.0, "egovlp") == ["/v/uid/0.mp4"]
    assert chunk_paths("/v", "uid", 600.0, 600.5, "egovlp") == ["/v/uid/1.mp4"]
    # A clip ending where the video and its last chunk end: every file it asks for exists, and it loads.
    sv.write_avion_chunks(str(tmp_path / "uid.MP4"), sv.make_frames(450), fps=10.0)  # 45 s: 0, 15, 30.MP4
    paths = chunk_paths(str(tmp_path), "uid", 40.0, 45.0, "avion", video_ext="MP4")
    assert [os.path.basename(path) for path in paths] == ["30.MP4"] and all(map(os.path.isfile, paths))
    clip = load_clip(Eva02AtVideoProcessor(), str(tmp_path / "uid.MP4"), 40.0, 45.0, num_frames=4)
    assert frame_numbers(clip) == sample_frame_indices(400, 450, 4).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_first_frame_of_a_chunk_is_read_from_that_chunk(chunk_dir, backend):
    processor = Eva02AtVideoProcessor(video_backend=backend)
    # 15.MP4 starts at frame 150 and 30.MP4 at frame 300 (10 fps); each of these clips samples that very frame.
    assert frame_numbers(load_clip(processor, chunk_dir, 14.5, 15.5, num_frames=1)) == [150]
    assert frame_numbers(load_clip(processor, chunk_dir, 29.5, 30.5, num_frames=1)) == [300]
    assert frame_numbers(load_clip(processor, chunk_dir, 27.0, 33.0, num_frames=3)) == [280, 300, 320]
    clip = load_clip(processor, chunk_dir, 0.0, 36.0, num_frames=6)  # frames 30, 90, ..., 330: 150 among them
    assert frame_numbers(clip) == [30, 90, 150, 210, 270, 330]


@pytest.mark.parametrize("fps", [10.0, 7.5])
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_egovlp_chunk_folder_gives_the_frames_of_the_full_video(tmp_path, backend, fps):
    """EgoVLP's chunk k holds seconds [15 k, 15 (k + 1)) here, frames numbered from 0 in each file: global frame
    int(15 k fps) + local. At 7.5 fps a chunk holds 112.5 frames' worth of time, so the cuts fall between frames."""
    frames = sv.make_frames(int(40 * fps))
    full = str(tmp_path / "uid.mp4")
    sv.write_video(full, frames, fps)
    sv.write_egovlp_chunks(str(tmp_path / "uid"), frames, fps, chunk_seconds=15)
    chunks = EgoVlpChunks(str(tmp_path / "uid"), chunk_seconds=15, ext="mp4")
    processor = Eva02AtVideoProcessor(video_backend=backend)
    for start, end, count in [(13.0, 17.5, 16), (10.0, 38.0, 8), (14.5, 15.5, 1), (29.5, 30.5, 1), (35.0, 60.0, 4)]:
        expected = frame_numbers(load_clip(processor, full, start, end, num_frames=count))
        assert frame_numbers(load_clip(processor, chunks, start, end, num_frames=count)) == expected, (start, end)
        assert expected == sample_frame_indices(round(start * fps), min(round(end * fps), len(frames)), count).tolist()
    jittered = load_clip(processor, chunks, 12.0, 18.0, num_frames=8, jitter=True, seed=3)
    assert frame_numbers(jittered) == frame_numbers(
        load_clip(processor, full, 12.0, 18.0, num_frames=8, jitter=True, seed=3)
    )


def test_a_missing_egovlp_chunk_is_named(tmp_path):
    paths = sv.write_egovlp_chunks(str(tmp_path / "uid"), sv.make_frames(400), 10.0, chunk_seconds=15)
    chunks, processor = EgoVlpChunks(str(tmp_path / "uid"), chunk_seconds=15), Eva02AtVideoProcessor()
    os.remove(paths[1])  # 1.mp4: seconds 15..30
    with pytest.raises(
        FileNotFoundError, match=r"no chunk holds .* s; 0.mp4 ends at 15.00 s and the next chunk is 2.mp4"
    ):
        load_clip(processor, chunks, 10.0, 25.0, num_frames=8)
    os.remove(paths[0])  # now the folder starts at 2.mp4 (30 s)
    with pytest.raises(FileNotFoundError, match=r"no chunk holds 1.20 s; the first chunk is 2.mp4"):
        load_clip(processor, chunks, 0.0, 10.0, num_frames=4)
    with pytest.raises(FileNotFoundError, match=r"no chunk files '<k>.mp4' in video folder"):
        load_clip(processor, EgoVlpChunks(str(tmp_path / "none")), 0.0, 1.0)
