"""Tests of the synthetic EK-100 MIR demo dataset (modeling_eva02at/demo/ek100.py)."""

import ast
import csv
import json
import os
import re

import av  # a dependency: a broken install fails here rather than skipping the module
import numpy as np
import pytest

from modeling_eva02at.data.relevancy import build_relevancy, positive_sentences, read_retrieval_csv, read_sentence_csv
from modeling_eva02at.demo import ek100 as demo_data
from modeling_eva02at.demo import scene
from modeling_eva02at.demo.ek100 import format_timestamp, make_demo_dataset
from modeling_eva02at.demo.scene import DEMO_NOUNS, DEMO_VERBS


# Small but complete: several videos per split, two participants, every verb present in each split.
SMALL = dict(seed=3, num_train=24, num_test=12, clips_per_video=4, num_participants=2)
FPS = 8.0


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo") / "ek100_demo", **SMALL)


def _header(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _splits(paths):
    """(retrieval CSV, sentence CSV) of the train and the test split."""
    return ((paths.train_csv, paths.train_sentence_csv), (paths.test_csv, paths.test_sentence_csv))


def _video_path(paths, row):
    return os.path.join(paths.video_root, row["participant_id"], f"{row['video_id']}.MP4")


def _decode(path):
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _seconds(timestamp):
    hours, minutes, seconds = timestamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


# ---------------------------------------------------------------------------------------------------------------
# File formats
# ---------------------------------------------------------------------------------------------------------------


def test_headers_match_the_real_files(demo, data_dir):
    ek100 = os.path.join(data_dir, "ek100")
    real_retrieval = _header(os.path.join(ek100, "EPIC_100_retrieval_test.csv"))
    assert _header(demo.train_csv) == real_retrieval
    assert _header(demo.test_csv) == real_retrieval
    assert _header(demo.test_sentence_csv) == _header(os.path.join(ek100, "EPIC_100_retrieval_test_sentence.csv"))
    assert _header(demo.train_sentence_csv) == _header(os.path.join(ek100, "EPIC_100_retrieval_train_sentence.csv"))


def test_cells_use_the_ek100_formats(demo):
    for path in (demo.train_csv, demo.test_csv):
        rows = _rows(path)
        assert len(rows) == SMALL["num_train" if path == demo.train_csv else "num_test"]
        for row in rows:
            assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d", row["start_timestamp"]), row
            assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d", row["stop_timestamp"]), row
            assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d\d\d", row["narration_timestamp"]), row
            assert re.fullmatch(r"P\d\d", row["participant_id"])
            assert re.fullmatch(rf"{row['participant_id']}_\d\d", row["video_id"])
            assert re.fullmatch(rf"{row['video_id']}_\d+", row["narration_id"])
            start, stop = _seconds(row["start_timestamp"]), _seconds(row["stop_timestamp"])
            assert start <= _seconds(row["narration_timestamp"]) <= stop
            # 1-based inclusive frame numbers, as EK-100's frame_%010d.jpg.
            assert int(row["start_frame"]) == round(start * FPS) + 1
            assert int(row["stop_frame"]) == round(stop * FPS)
            nouns, classes = ast.literal_eval(row["all_nouns"]), ast.literal_eval(row["all_noun_classes"])
            assert row["all_nouns"] == repr(nouns) and row["all_noun_classes"] == repr(classes)
            assert nouns[0] == row["noun"] and classes[0] == int(row["noun_class"])
            assert [DEMO_NOUNS[c].key for c in classes] == nouns
            assert DEMO_VERBS[int(row["verb_class"])].key == row["verb"]
            # The caption names the verb and every noun, so text alone can recover the classes.
            assert row["narration"] == DEMO_VERBS[int(row["verb_class"])].template.format(nouns=" and ".join(nouns))
    # Two-noun lists are quoted (they contain commas), one-noun lists are bare, as in the real files.
    with open(demo.train_csv, encoding="utf-8") as handle:
        text = handle.read()
    assert "\r" not in text and text.endswith("\n")
    assert re.search(r",\['\w+'\],\[\d+\]\n", text)
    assert re.search(r",\"\['\w+', '\w+'\]\",\"\[\d+, \d+\]\"\n", text)


def test_sentence_csvs_hold_the_first_clip_of_each_caption(demo):
    for retrieval_csv, sentence_csv in _splits(demo):
        clips = _rows(retrieval_csv)
        first_id = {}
        for clip in clips:
            first_id.setdefault(clip["narration"], clip["narration_id"])
        sentences = _rows(sentence_csv)
        assert [(s["narration_id"], s["narration"]) for s in sentences] == [(i, t) for t, i in first_id.items()]
    # Repeated captions are merged (with 24 train clips over 6 verbs x 8 nouns some captions repeat).
    assert len(_rows(demo.train_sentence_csv)) < len(_rows(demo.train_csv))
    by_id = {clip["narration_id"]: clip for clip in _rows(demo.train_csv)}
    for sentence in _rows(demo.train_sentence_csv):
        clip = by_id[sentence["narration_id"]]
        assert sentence["verb_class"] == clip["verb_class"] and sentence["verb"] == clip["verb"]
        assert sentence["noun_classes"] == clip["all_noun_classes"] and sentence["nouns"] == clip["all_nouns"]


def test_train_and_test_use_different_videos(demo):
    train, test = _rows(demo.train_csv), _rows(demo.test_csv)
    train_videos, test_videos = {r["video_id"] for r in train}, {r["video_id"] for r in test}
    assert not train_videos & test_videos
    assert len(train_videos) == SMALL["num_train"] // SMALL["clips_per_video"]
    assert {r["participant_id"] for r in train + test} == {"P01", "P02"}
    for row in train + test:
        assert os.path.isfile(_video_path(demo, row))


def test_read_back_and_relevancy(demo):
    for retrieval_csv, sentence_csv in _splits(demo):
        clips, sentences = read_retrieval_csv(retrieval_csv), read_sentence_csv(sentence_csv)
        relevancy = build_relevancy(clips, sentences)
        assert relevancy.shape == (len(clips), len(sentences))
        # Every clip has its own caption (R == 1 exactly) and therefore a hard-mining positive.
        assert (relevancy.max(axis=1) == 1.0).all()
        assert ((relevancy > 0.1).sum(axis=1) >= 1).all()
        positive_sentences(relevancy)
    # Two-object clips make the soft labels graded (partial noun overlap: 0.25, 0.75, 1/6, ...), not only 0 / 0.5 / 1.
    train_relevancy = build_relevancy(read_retrieval_csv(demo.train_csv), read_sentence_csv(demo.train_sentence_csv))
    values = set(np.unique(train_relevancy))
    assert values - {0.0, 0.5, 1.0}


# ---------------------------------------------------------------------------------------------------------------
# Videos
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decoded(demo):
    """{video path: (T, H, W, 3) frames} of every video of the small dataset."""
    rows = _rows(demo.train_csv) + _rows(demo.test_csv)
    return {path: _decode(path) for path in sorted({_video_path(demo, row) for row in rows})}


def test_videos_are_h264_at_the_requested_size(demo, decoded):
    path = next(iter(decoded))
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (64, 48)
        assert float(stream.average_rate) == FPS
    assert path.endswith(".MP4")


def test_timestamps_map_to_frames_inside_the_video(demo, decoded):
    for row in _rows(demo.train_csv) + _rows(demo.test_csv):
        num_frames = len(decoded[_video_path(demo, row)])
        # docs/data_formats.md sampling: s = round(start * fps), e = round(stop * fps).
        start, stop = round(_seconds(row["start_timestamp"]) * FPS), round(_seconds(row["stop_timestamp"]) * FPS)
        assert 0 <= start < stop <= num_frames
        assert stop - start == int(row["stop_frame"]) - int(row["start_frame"]) + 1
        assert stop - start >= 8  # about clip_seconds * fps (+-25%)
    # Clips of one video do not overlap and come in time order.
    by_video = {}
    for row in _rows(demo.train_csv):
        by_video.setdefault(row["video_id"], []).append((int(row["start_frame"]), int(row["stop_frame"])))
    for spans in by_video.values():
        assert all(previous[1] < following[0] for previous, following in zip(spans, spans[1:]))


def _object_mask(frames, color):
    """Pixels close to `color` (the noun colours are saturated, the background is grayish)."""
    return np.linalg.norm(frames.astype(np.float64) - np.asarray(color, dtype=np.float64), axis=-1) < 60


def _object_tracks(frames, color):
    """Per-frame centroid (x, y) and area of the pixels close to `color`."""
    mask = _object_mask(frames, color)
    ys, xs = np.mgrid[0 : frames.shape[1], 0 : frames.shape[2]]
    area = mask.sum(axis=(1, 2))
    assert (area > 0).all(), "the clip's main object is not visible in every frame"
    centroid_x = (mask * xs).sum(axis=(1, 2)) / area
    centroid_y = (mask * ys).sum(axis=(1, 2)) / area
    return centroid_x, centroid_y, area


def test_motion_direction_is_in_the_pixels(demo, decoded):
    rows = _rows(demo.train_csv) + _rows(demo.test_csv)
    assert {row["verb"] for row in rows} == {verb.key for verb in DEMO_VERBS}
    for row in rows:
        frames = decoded[_video_path(demo, row)]
        clip = frames[int(row["start_frame"]) - 1 : int(row["stop_frame"])]
        color = DEMO_NOUNS[int(row["noun_class"])].color
        xs, ys, area = _object_tracks(clip, color)
        # Objects stay in the central 48x48 square, which the processor's center crop keeps.
        mask = _object_mask(clip, color)
        assert mask[:, :, :8].sum() + mask[:, :, 56:].sum() <= 2, row["narration_id"]
        dx, dy = xs[-1] - xs[0], ys[-1] - ys[0]
        verb = DEMO_VERBS[int(row["verb_class"])]
        message = f"{row['narration_id']} {row['narration']!r}: dx={dx:.1f} dy={dy:.1f} area {area[0]} -> {area[-1]}"
        if verb.motion == "translate":
            # Moves at least a quarter of the frame along the named direction, and little across it.
            along = dx * verb.direction[0] + dy * verb.direction[1]
            across = dx * verb.direction[1] - dy * verb.direction[0]
            assert along > 0.25 * 48, message
            assert abs(across) < 3, message
            # Steady motion, not a jump: it never steps backwards, nor by more than a few pixels per frame.
            steps = np.diff(xs) * verb.direction[0] + np.diff(ys) * verb.direction[1]
            assert steps.min() > -1 and steps.max() < 6, message
            # Constant size (compared over a few frames: thin shapes at sub-pixel positions vary frame to frame).
            assert 2 / 3 < area[-4:].mean() / area[:4].mean() < 3 / 2, message
        else:
            # Enlarge / shrink: the area changes by more than 1.6x in the named sense (about 4x for most shapes; less
            # for bars, whose minimum stroke width does not scale), the centre stays put.
            ratio = area[-3:].mean() / area[:3].mean()
            assert (ratio > 1.6) if verb.direction[0] > 0 else (ratio < 1 / 1.6), message
            assert abs(dx) < 2 and abs(dy) < 2, message


def test_second_object_is_drawn(demo, decoded):
    two_object = [row for row in _rows(demo.train_csv) if len(ast.literal_eval(row["all_nouns"])) == 2]
    assert two_object
    for row in two_object:
        frames = decoded[_video_path(demo, row)]
        middle = frames[(int(row["start_frame"]) - 1 + int(row["stop_frame"])) // 2][None]
        for noun_class in ast.literal_eval(row["all_noun_classes"]):
            _object_tracks(middle, DEMO_NOUNS[noun_class].color)


# ---------------------------------------------------------------------------------------------------------------
# Generate-once behaviour and determinism
# ---------------------------------------------------------------------------------------------------------------

TINY = dict(num_train=6, num_test=3, clips_per_video=3)


def _snapshot(root):
    """{relative path: mtime_ns} of every file under root."""
    return {
        os.path.relpath(os.path.join(directory, name), root): os.stat(os.path.join(directory, name)).st_mtime_ns
        for directory, _, names in os.walk(root)
        for name in names
    }


def test_complete_dataset_is_not_regenerated(tmp_path):
    root = tmp_path / "demo"
    first = make_demo_dataset(root, **TINY)
    before = _snapshot(root)
    assert make_demo_dataset(root, **TINY) == first
    assert _snapshot(root) == before
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["version"] == demo_data.GENERATOR_VERSION and manifest["parameters"]["num_train"] == 6
    # No staging folder is left next to the dataset, and the dataset is readable as a plain mkdir's folder would be.
    assert os.listdir(tmp_path) == ["demo"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(root).st_mode & 0o777 == 0o777 & ~umask  # not tempfile's private 0700


def test_incomplete_or_stale_dataset_is_regenerated(tmp_path):
    root = tmp_path / "demo"
    paths = make_demo_dataset(root, **TINY)
    video = os.path.join(paths.video_root, "P01", "P01_01.MP4")

    os.remove(video)  # a file went missing
    make_demo_dataset(root, **TINY)
    assert os.path.isfile(video)

    with open(video, "r+b") as handle:  # a truncated file
        handle.truncate(100)
    make_demo_dataset(root, **TINY)
    assert os.path.getsize(video) > 100

    os.remove(root / "manifest.json")  # e.g. a copy interrupted before the manifest arrived
    make_demo_dataset(root, **TINY)
    assert (root / "manifest.json").is_file()

    before = _snapshot(root)  # other parameters: the old dataset is replaced
    make_demo_dataset(root, **{**TINY, "num_test": 4})
    assert len(_rows(paths.test_csv)) == 4 and _snapshot(root) != before

    before = _snapshot(root)  # overwrite=True always regenerates
    make_demo_dataset(root, **{**TINY, "num_test": 4}, overwrite=True)
    assert _snapshot(root) != before
    assert sorted(os.listdir(tmp_path)) == ["demo"]


def test_interrupted_generation_leaves_no_dataset(tmp_path, monkeypatch):
    calls = []

    def failing_write_video(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the videos
        return real_write_video(*args, **kwargs)

    real_write_video = demo_data.write_video
    monkeypatch.setattr(demo_data, "write_video", failing_write_video)
    root = tmp_path / "demo"
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(root, **TINY)
    assert not root.exists()
    assert os.listdir(tmp_path) == []  # the staging folder was cleaned up

    monkeypatch.setattr(demo_data, "write_video", real_write_video)
    paths = make_demo_dataset(root, **TINY)
    assert os.path.isfile(paths.train_csv)


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="not a demo dataset"):
        make_demo_dataset(tmp_path, **TINY)
    assert (tmp_path / "notes.txt").read_text() == "not a dataset"


def test_same_seed_gives_identical_files(tmp_path):
    a = make_demo_dataset(tmp_path / "a", seed=5, **TINY)
    b = make_demo_dataset(tmp_path / "b", seed=5, **TINY)
    c = make_demo_dataset(tmp_path / "c", seed=6, **TINY)
    for field in ("train_csv", "test_csv", "train_sentence_csv", "test_sentence_csv"):
        with open(getattr(a, field), "rb") as fa, open(getattr(b, field), "rb") as fb:
            assert fa.read() == fb.read(), field
    with open(a.train_csv, "rb") as fa, open(c.train_csv, "rb") as fc:
        assert fa.read() != fc.read()
    # The rendered pixels are seeded too. The files are compared decoded and with a tolerance: multi-threaded libx264
    # (write_video does not set threads) is not bit-exact from run to run, a few gray levels on a few % of pixels.
    video = os.path.join("P01", "P01_01.MP4")
    frames_a, frames_b, frames_c = (_decode(os.path.join(p.video_root, video)) for p in (a, b, c))
    assert frames_a.shape == frames_b.shape
    same_seed = np.abs(frames_a.astype(np.int16) - frames_b)
    assert same_seed.mean() < 2.0 and same_seed.max() < 64  # measured: mean <= 0.64, max <= 26
    length = min(len(frames_a), len(frames_c))
    assert np.abs(frames_a[:length].astype(np.int16) - frames_c[:length]).mean() > 5.0  # another seed, other pixels


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, decimals, expected",
    [
        (0.0, 2, "00:00:00.00"),
        (51.98, 2, "00:00:51.98"),
        (59.999, 2, "00:01:00.00"),
        (3661.5, 2, "01:01:01.50"),
        (0.56, 3, "00:00:00.560"),
    ],
)
def test_format_timestamp(seconds, decimals, expected):
    assert format_timestamp(seconds, decimals) == expected


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="fps"):
        make_demo_dataset(tmp_path / "x", fps=120)
    with pytest.raises(ValueError, match="positive"):
        make_demo_dataset(tmp_path / "x", num_train=0)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("pair", ["left/right", "up/down", "enlarge/shrink"])
def test_opposite_verbs_are_time_reversals_with_the_same_middle_frame(pair):
    """Drawn from the same random state, a clip of one verb is its opposite's clip played backwards: the middle
    frame is the same whatever the direction, so only the order of the frames tells them apart."""
    from modeling_eva02at.demo.motion import DIRECTION_PAIRS

    first, second = (DEMO_VERBS[index] for index in DIRECTION_PAIRS[pair])
    for seed in range(20):
        one = scene.trajectory(np.random.default_rng(seed), first, 9, 48, 64, travel=28.0)
        other = scene.trajectory(np.random.default_rng(seed), second, 9, 48, 64, travel=28.0)
        for a, b in zip(one, other):  # centre x, centre y, half-size per frame
            np.testing.assert_allclose(a, b[::-1], rtol=0, atol=1e-9)
            assert a[4] == pytest.approx(b[4], abs=1e-9)  # the middle of 9 frames
        assert any(not np.allclose(a, b) for a, b in zip(one, other))  # yet the clips differ


def test_generation_shows_its_progress(tmp_path, capfd):
    """`make demo` spends most of a minute rendering before training starts: a bar says what it is doing."""
    make_demo_dataset(tmp_path / "demo", num_train=16, num_test=8, clips_per_video=8)
    err = capfd.readouterr().err
    assert "Rendering the demo's train videos: 100%" in err and "2/2" in err
    assert "Rendering the demo's test videos: 100%" in err and "1/1" in err
