"""Text-to-video search (modeling_eva02at.search, examples/index_videos.py and search_videos.py) and the app's logic
(examples/app.py).

The model is the tiny test model trained for a few seconds on four single-colour videos and their captions
("a red video", ...), so that each caption's embedding is nearest its colour's: the right clip must come first.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_eva02at.app.backend import AppBackend
from modeling_eva02at.evaluation import encoding
from modeling_eva02at.evaluation.encoding import EncodeSettings, load_model_for_inference
from modeling_eva02at.evaluation.fingerprint import model_fingerprint
from modeling_eva02at.search import build as index_module
from modeling_eva02at.search.build import search_index, update_index
from modeling_eva02at.search.preview import write_preview
from modeling_eva02at.search.sources import Ek100Clips, VideoFolder, window_bounds
from modeling_eva02at.search.store import IndexMismatchError, VideoIndex
from modeling_eva02at.utils import runtime
from modeling_eva02at.utils.cli import UsageError
from modeling_eva02at.utils.video_writer import write_video
from tests.conftest import tiny_mir_model

from . import cli_runs
from .video_helpers import make_frames, write_avion_chunks


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}
FPS = 10


def caption(colour: str) -> str:
    return f"a {colour} video"


def write_colour_video(path, colours, seconds_each: float = 1.0, size=(24, 32)) -> str:
    """A video showing each of `colours` for `seconds_each` seconds, in order."""
    frames = [np.full((round(seconds_each * FPS), *size, 3), COLOURS[c], dtype=np.uint8) for c in colours]
    write_video(str(path), np.concatenate(frames), FPS)
    return str(path)


def colour_path(folder, colour: str) -> str:
    """Where :func:`colour_folder` put `colour`'s video."""
    return os.path.join(folder, "more" if list(COLOURS).index(colour) % 2 else "", f"{colour}.mp4")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are far too small to share: on a busy 2-core machine two intra-op threads make a training
    step ~50x slower than one (they wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_colour_model(folder, processor) -> str:
    """Train the tiny model for a few seconds to tell the four colours apart; save it with `processor` to
    `<folder>/model` and return that folder. Call with one intra-op thread (see `one_thread`)."""
    videos = [write_colour_video(os.path.join(folder, f"train_{c}.mp4"), [c]) for c in COLOURS]
    pixels = processor(videos=videos)["pixel_values_videos"]
    tokens = processor(text=[caption(c) for c in COLOURS], return_tensors="pt")
    model = tiny_mir_model(seed=0)
    # The token embeddings stay random (the colour words differ anyway): Adam over the 49408-token table is most of
    # a step's time.
    model.text_model.embeddings.token_embedding.weight.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    targets = torch.arange(len(COLOURS))
    for _ in range(60):
        video = F.normalize(model.get_video_features(pixel_values_videos=pixels).pooler_output, dim=-1)
        text = F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        logits = 10 * video @ text.T
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, f"the colour model did not train (loss {loss.item():.3f})"
    model.save_pretrained(os.path.join(folder, "model"))
    processor.save_pretrained(os.path.join(folder, "model"))
    return os.path.join(folder, "model")


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory, mir_processor):
    """A saved tiny model folder (with its processor) whose caption embeddings pick out the four colours."""
    return train_colour_model(str(tmp_path_factory.mktemp("colour_model")), mir_processor)


@pytest.fixture(scope="module")
def loaded(colour_model):
    model, processor = load_model_for_inference(colour_model)
    return model, processor, model_fingerprint(colour_model)


@pytest.fixture
def colour_folder(tmp_path):
    """One 1-second video per colour, in a nested folder layout."""
    folder = tmp_path / "videos"
    (folder / "more").mkdir(parents=True)
    for colour in COLOURS:
        write_colour_video(colour_path(folder, colour), [colour])
    return str(folder)


SETTINGS = EncodeSettings(batch_size=2, num_workers=0, progress=False)


def build(index_dir, source, loaded, settings=SETTINGS, **kwargs):
    model, processor, model_id = loaded
    return update_index(str(index_dir), source, model, processor, settings, model_id=model_id, **kwargs)


def top_hit(index_dir, loaded, text):
    model, processor, model_id = loaded
    return search_index(VideoIndex.load(str(index_dir)), model, processor, [text], model_id=model_id, top_k=4)[0][0]


class EncodeCounter:
    """Wraps encode_videos: counts the clips it encodes, and raises `error` on call number `fail_on` (from 1)."""

    def __init__(self, monkeypatch, fail_on=None, error=RuntimeError("simulated crash")):
        self.clips, self.calls, self.fail_on, self.error = 0, 0, fail_on, error
        self._encode = encoding.encode_videos
        monkeypatch.setattr(index_module, "encode_videos", self)

    def __call__(self, model, processor, videos, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            raise self.error
        self.clips += len(videos)
        return self._encode(model, processor, videos, *args, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Finding the right clip
# ---------------------------------------------------------------------------------------------------------------------


def test_each_caption_finds_its_video(tmp_path, colour_folder, loaded):
    report = build(tmp_path / "index", VideoFolder(colour_folder), loaded)
    assert (report.encoded, report.total, report.skipped) == (4, 4, [])
    for colour in COLOURS:
        hit = top_hit(tmp_path / "index", loaded, caption(colour))
        assert os.path.basename(hit.path) == f"{colour}.mp4"
        assert (hit.rank, hit.start) == (1, 0.0) and hit.end == pytest.approx(1.0)


def test_each_caption_finds_its_window_of_a_long_video(tmp_path, loaded):
    folder = tmp_path / "long"
    folder.mkdir()
    write_colour_video(folder / "four_colours.mp4", list(COLOURS))
    report = build(tmp_path / "index", VideoFolder(str(folder), window=1.0), loaded)
    assert report.encoded == 4
    for position, colour in enumerate(COLOURS):
        hit = top_hit(tmp_path / "index", loaded, caption(colour))
        assert (hit.start, hit.end) == (float(position), float(position + 1))


def test_window_bounds_cover_the_video_with_full_windows():
    assert window_bounds(4.0, 2.0) == [(0.0, 2.0), (2.0, 4.0)]
    assert window_bounds(5.0, 2.0, 1.5) == [(0.0, 2.0), (1.5, 3.5), (3.0, 5.0)]  # the tail: a window ending at 5
    assert window_bounds(4.5, 2.0) == [(0.0, 2.0), (2.0, 4.0), (2.5, 4.5)]
    assert window_bounds(1.2, 2.0) == [(0.0, 1.2)]  # shorter than a window: the whole video
    assert window_bounds(3.0) == [(0.0, 3.0)]
    with pytest.raises(ValueError, match="positive seconds"):
        window_bounds(3.0, 0.0)
    with pytest.raises(ValueError, match="needs a window"):
        window_bounds(3.0, None, 1.0)


# ---------------------------------------------------------------------------------------------------------------------
# Incremental and resumable
# ---------------------------------------------------------------------------------------------------------------------


def test_rerun_encodes_nothing_and_only_new_or_changed_videos_later(tmp_path, colour_folder, loaded, monkeypatch):
    index_dir = tmp_path / "index"
    build(index_dir, VideoFolder(colour_folder), loaded)
    counter = EncodeCounter(monkeypatch)
    report = build(index_dir, VideoFolder(colour_folder), loaded)
    assert (counter.calls, report.encoded, report.unchanged, report.total) == (0, 0, 4, 4)

    # "red.mp4" now shows blue (new size and mtime); a new video arrives; "green.mp4" is deleted.
    red = colour_path(colour_folder, "red")
    write_colour_video(red, ["blue", "blue"])
    write_colour_video(os.path.join(colour_folder, "new_yellow.mp4"), ["yellow"])
    os.remove(colour_path(colour_folder, "green"))
    report = build(index_dir, VideoFolder(colour_folder), loaded)
    assert (counter.clips, report.encoded, report.removed, report.total) == (2, 2, 2, 4)
    clips = {os.path.basename(c.path): c for c in VideoIndex.load(str(index_dir)).clips}
    assert sorted(clips) == ["blue.mp4", "new_yellow.mp4", "red.mp4", "yellow.mp4"]
    assert clips["red.mp4"].end == pytest.approx(2.0) and clips["red.mp4"].size == os.path.getsize(red)


def test_a_crash_mid_run_keeps_finished_shards_and_the_rerun_completes(tmp_path, loaded, monkeypatch):
    folder = tmp_path / "long"
    folder.mkdir()
    write_colour_video(folder / "a.mp4", list(COLOURS) * 2)  # 8 one-second windows
    index_dir = tmp_path / "index"
    counter = EncodeCounter(monkeypatch, fail_on=3)  # shards of 2 clips: the third shard's encode crashes
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(index_dir, VideoFolder(str(folder), window=1.0), loaded, shard_size=2)
    assert len(VideoIndex.load(str(index_dir))) == 4  # the two finished shards
    # What a kill while writing leaves behind: a temporary file, and a complete, valid shard the manifest does not
    # list yet (its clips must not count: the manifest alone says what the index holds).
    (index_dir / ".shard-leftover.safetensors").write_bytes(b"partial")
    with open(index_dir / "index.json") as handle:
        first_shard = json.load(handle)["shards"][0]
    shutil.copy(index_dir / first_shard, index_dir / "shard-000099.safetensors")
    assert len(VideoIndex.load(str(index_dir))) == 4

    counter.fail_on, counter.clips = None, 0
    report = build(index_dir, VideoFolder(str(folder), window=1.0), loaded, shard_size=2)
    assert (counter.clips, report.encoded, report.unchanged, report.total) == (4, 4, 4, 8)
    assert sorted(os.listdir(index_dir)) == [".lock", "index.json", "shard-000004.safetensors"]

    resumed = VideoIndex.load(str(index_dir))
    fresh = tmp_path / "fresh"
    build(fresh, VideoFolder(str(folder), window=1.0), loaded)
    fresh = VideoIndex.load(str(fresh))
    position = {clip.identity: row for row, clip in enumerate(fresh.clips)}
    order = [position[clip.identity] for clip in resumed.clips]
    torch.testing.assert_close(resumed.embeddings, fresh.embeddings[order], rtol=0, atol=1e-5)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sigkill_mid_run_loses_no_finished_shard(tmp_path, loaded):
    folder = tmp_path / "long"
    folder.mkdir()
    write_colour_video(folder / "a.mp4", list(COLOURS) * 2)
    index_dir = tmp_path / "index"
    source = VideoFolder(str(folder), window=1.0)
    # A forked copy of this process (the model already loaded) SIGKILLs itself in its third shard's encode: no
    # Python clean-up, no finally, no atexit runs, the lock is held until the kernel closes the file.
    child = os.fork()
    if child == 0:
        try:
            calls = []

            def encode(*args, **kwargs):
                calls.append(1)
                if len(calls) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
                return encoding.encode_videos(*args, **kwargs)

            index_module.encode_videos = encode
            build(index_dir, source, loaded, shard_size=2)
        finally:
            os._exit(1)  # never return into pytest
    _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert len(VideoIndex.load(str(index_dir))) == 4

    report = build(index_dir, source, loaded, shard_size=2)
    assert (report.encoded, report.unchanged, report.total) == (4, 4, 8)  # the lock died with the child


# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------


def test_unreadable_videos_are_skipped_and_listed(tmp_path, colour_folder, loaded, caplog):
    garbage = os.path.join(colour_folder, "garbage.mp4")
    with open(garbage, "wb") as file:
        file.write(b"not a video" * 20)
    truncated = os.path.join(colour_folder, "truncated.mp4")
    with open(colour_path(colour_folder, "red"), "rb") as source, open(truncated, "wb") as file:
        file.write(source.read()[:300])

    class VanishingFolder(VideoFolder):
        """Deletes green.mp4 between planning and encoding: found by decoding the failed shard clip by clip."""

        def plan(self, indexed, **kwargs):
            plan = super().plan(indexed, **kwargs)
            os.remove(colour_path(self.folder, "green"))
            return plan

    report = build(tmp_path / "index", VanishingFolder(colour_folder), loaded, shard_size=4)
    skipped = {os.path.basename(entry.path): entry.reason for entry in report.skipped}
    assert sorted(skipped) == ["garbage.mp4", "green.mp4", "truncated.mp4"]
    assert "not a readable video" in skipped["garbage.mp4"] and "video file not found" in skipped["green.mp4"]
    assert (report.encoded, report.total) == (3, 3)  # the rest of green.mp4's shard is kept
    assert "skipping unreadable" in caplog.text


def test_cli_lists_skipped_videos_at_the_end(tmp_path, colour_folder, colour_model, capsys):
    with open(os.path.join(colour_folder, "garbage.mp4"), "wb") as file:
        file.write(b"not a video" * 20)
    cli_runs.index(
        [
            "--model",
            colour_model,
            "--videos",
            colour_folder,
            "--index",
            str(tmp_path / "index"),
            "--num-workers",
            "0",
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert "Encoded 4 new clips" in out and "holds 4 clips" in out
    assert out.rstrip().splitlines()[-2:][0] == "Skipped 1 unreadable videos (tried again on the next run):"
    assert "garbage.mp4: cannot open" in out.rstrip().splitlines()[-1]

    cli_runs.search(["--index", str(tmp_path / "index"), "--top-k", "2", "--json", "--query", caption("green")])
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert [os.path.basename(hits[0]["path"]), hits[0]["rank"], len(hits)] == ["green.mp4", 1, 2]


def test_cli_dtype_auto_extends_an_index_in_the_dtype_it_was_built_with(
    tmp_path, colour_folder, colour_model, monkeypatch, capsys
):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: None)  # a machine where auto means float32
    index = str(tmp_path / "index")
    flags = ["--model", colour_model, "--index", index, "--num-workers", "0", "--no-progress"]
    cli_runs.index([*flags, "--videos", colour_folder, "--dtype", "bfloat16"])
    assert "Encoding in bfloat16 (--dtype bfloat16)" in capsys.readouterr().out
    assert VideoIndex.load(index).header["dtype"] == "torch.bfloat16"
    write_colour_video(os.path.join(colour_folder, "more", "red_again.mp4"), ["red"])
    cli_runs.index([*flags, "--videos", colour_folder])  # --dtype auto
    out = capsys.readouterr().out
    assert f"Encoding in bfloat16 (--dtype auto: the dtype {index} was built with)" in out
    assert "Encoded 1 new clips" in out
    cli_runs.index([*flags[:2], "--index", str(tmp_path / "fresh"), *flags[4:], "--videos", colour_folder])
    assert "Encoding in float32 (--dtype auto: no native bfloat16" in capsys.readouterr().out
    assert VideoIndex.load(str(tmp_path / "fresh")).header["dtype"] == "torch.float32"


def test_another_frame_count_or_model_is_refused(tmp_path, colour_folder, colour_model, loaded):
    index_dir = tmp_path / "index"
    build(index_dir, VideoFolder(colour_folder), loaded)
    manifest = (index_dir / "index.json").read_text()

    model, processor, model_id = loaded
    four_frames = load_model_for_inference(colour_model, num_frames=4)[1]
    with pytest.raises(IndexMismatchError, match=r"pixels\.num_frames: index 2, this run 4"):
        update_index(str(index_dir), VideoFolder(colour_folder), model, four_frames, SETTINGS, model_id=model_id)
    flipped = EncodeSettings(batch_size=2, flip=True, progress=False)
    with pytest.raises(IndexMismatchError, match="flip: index False, this run True"):
        update_index(str(index_dir), VideoFolder(colour_folder), model, processor, flipped, model_id=model_id)

    other_folder = tmp_path / "other_model"
    other = tiny_mir_model(seed=1)
    other.save_pretrained(other_folder)
    processor.save_pretrained(other_folder)
    other_model, other_processor = load_model_for_inference(str(other_folder))
    other_id = model_fingerprint(str(other_folder))
    with pytest.raises(IndexMismatchError) as refused:
        update_index(
            str(index_dir), VideoFolder(colour_folder), other_model, other_processor, SETTINGS, model_id=other_id
        )
    message = str(refused.value)
    assert f"built with model {colour_model}, this run uses {other_folder}" in message
    assert "use a new --index folder" in message
    with pytest.raises(IndexMismatchError, match="this query"):
        search_index(VideoIndex.load(str(index_dir)), other_model, other_processor, ["a red video"], model_id=other_id)
    assert (index_dir / "index.json").read_text() == manifest  # refused runs changed nothing


def test_index_path_that_is_not_an_index_is_refused(tmp_path, colour_folder, loaded):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a video index .* give a new or empty folder"):
        build(tmp_path / "notes", VideoFolder(colour_folder), loaded)
    with pytest.raises(FileNotFoundError, match="is not a video index .*index_videos.py"):
        VideoIndex.load(str(tmp_path / "notes"))
    with pytest.raises(FileNotFoundError, match="video folder .* does not exist"):
        VideoFolder(str(tmp_path / "missing"))


def test_cli_rejects_flag_combinations():
    for run, argv, message in [
        (cli_runs.index, ["--model", "m", "--index", "i", "--ek100-csv", "c.csv"], "--ek100-csv needs --video-root"),
        (cli_runs.index, ["--model", "m", "--index", "i", "--videos", "v", "--stride", "2"], "--stride needs --window"),
        (
            cli_runs.index,
            ["--model", "m", "--index", "i", "--videos", "v", "--window", "-1"],
            "--window must be a positive",
        ),
        (cli_runs.index, ["--model", "m", "--index", "i"], "give one source: --videos FOLDER or --ek100-csv"),
        (cli_runs.search, ["--index", "i", "--top-k", "0", "--query", "text"], "--top-k must be at least 1"),
    ]:
        with pytest.raises(UsageError, match=re.escape(message)):
            run(argv)


# ---------------------------------------------------------------------------------------------------------------------
# EK-100 clips, previews, the app's logic
# ---------------------------------------------------------------------------------------------------------------------


def test_ek100_csv_clips_are_indexed_with_their_narrations(tmp_path, demo, loaded):
    from modeling_eva02at.data.ek100 import timestamp_to_seconds
    from modeling_eva02at.data.relevancy import read_retrieval_csv

    rows = read_retrieval_csv(demo.test_csv)
    missing_video = os.path.join(demo.video_root, rows["participant_id"].iloc[0], f"{rows['video_id'].iloc[0]}.MP4")
    moved = str(tmp_path / "moved.MP4")
    os.rename(missing_video, moved)
    try:
        report = build(tmp_path / "index", Ek100Clips(demo.test_csv, demo.video_root), loaded)
    finally:
        os.rename(moved, missing_video)
    lost = int((rows["video_id"] == rows["video_id"].iloc[0]).sum())
    assert [(entry.path, entry.clips) for entry in report.skipped] == [(missing_video, lost)]
    assert report.total == len(rows) - lost
    clip = VideoIndex.load(str(tmp_path / "index")).clips[0]
    row = rows.set_index("narration_id").loc[clip.label]
    assert (clip.caption, clip.start, clip.end) == (
        row["narration"],
        timestamp_to_seconds(row["start_timestamp"]),
        timestamp_to_seconds(row["stop_timestamp"]),
    )


def test_preview_is_the_hit_window_as_a_playable_mp4(tmp_path, loaded):
    import av

    video = write_colour_video(tmp_path / "four.mp4", list(COLOURS), size=(480, 640))
    preview = write_preview(loaded[1].image_processor, video, 2.0, 3.0, str(tmp_path / "preview.mp4"))
    with av.open(preview) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
    assert len(frames) == 8 and frames[0].shape == (224, 298, 3)
    assert np.abs(np.mean(frames, axis=(0, 1, 2)) - COLOURS["blue"]).max() < 20


def test_preview_of_a_hit_in_an_avion_chunk_folder(tmp_path, loaded):
    import av

    folder = tmp_path / "P01_01.MP4"
    write_avion_chunks(str(folder), make_frames(300), fps=10.0)
    preview = write_preview(loaded[1].image_processor, str(folder), 14.0, 16.0, str(tmp_path / "preview.mp4"))
    with av.open(preview) as container:
        assert container.streams.video[0].frames == 16  # 2 s at the preview's 8 fps, across the chunk boundary


def test_app_backend_classifies_with_the_pipeline_and_searches_the_index(tmp_path, colour_folder, colour_model, loaded):
    build(tmp_path / "index", VideoFolder(colour_folder), loaded)
    backend = AppBackend.load(colour_model, index_path=str(tmp_path / "index"))
    scores = backend.classify(colour_path(colour_folder, "yellow"), " red, yellow ,green,, blue", "a {} video")
    assert [s["label"] for s in scores][0] == "yellow" and len(scores) == 4
    assert sum(s["score"] for s in scores) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="type at least one label"):
        backend.classify(colour_path(colour_folder, "yellow"), " , ", "a {} video")

    (hit, preview), *_ = backend.search(caption("green"), 2)
    assert os.path.basename(hit.path) == "green.mp4" and os.path.getsize(preview) > 0
    with pytest.raises(ValueError, match="type what you are looking for"):
        backend.search("  ", 2)


def test_app_backend_computes_in_the_dtype_it_chose(colour_folder, colour_model, monkeypatch, capsys):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: "AMX")
    backend = AppBackend.load(colour_model)  # dtype auto
    assert "The app computes in bfloat16 (--dtype auto: AMX" in capsys.readouterr().out
    assert backend.model.dtype == torch.bfloat16
    scores = backend.classify(colour_path(colour_folder, "blue"), "red, yellow, green, blue", "a {} video")
    assert scores[0]["label"] == "blue" and sum(s["score"] for s in scores) == pytest.approx(1.0, abs=1e-3)
    assert AppBackend.load(colour_model, dtype="float32").model.dtype == torch.float32


def test_app_backend_refuses_an_index_of_another_model(tmp_path, colour_folder, loaded, mir_processor):
    build(tmp_path / "index", VideoFolder(colour_folder), loaded)
    other = tmp_path / "other_model"
    tiny_mir_model(seed=1).save_pretrained(other)
    mir_processor.save_pretrained(other)
    with pytest.raises(IndexMismatchError, match="the app's --model"):
        AppBackend.load(str(other), index_path=str(tmp_path / "index"))


def test_an_index_serves_a_copy_of_its_model_folder_and_refuses_changed_weights(
    tmp_path, colour_folder, colour_model, loaded
):
    """The model is recognised by its files' content: a copy elsewhere (another machine, a Space) with new modification
    times is the same model; the same folder with one weight changed is not."""
    import shutil

    from safetensors.torch import load_file, save_file

    build(tmp_path / "index", VideoFolder(colour_folder), loaded)
    copy = tmp_path / "elsewhere" / "model"
    shutil.copytree(colour_model, copy)  # copytree keeps mtimes: change them as a download or a checkout would
    for name in os.listdir(copy):
        os.utime(copy / name, ns=(1, 1))
    backend = AppBackend.load(str(copy), index_path=str(tmp_path / "index"))
    (hit, _), *_ = backend.search(caption("green"), 1)
    assert os.path.basename(hit.path) == "green.mp4"

    weights = load_file(copy / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + 1e-3  # same size, same names: only the content differs
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(IndexMismatchError, match=r"the weights differ \(another checkpoint"):
        AppBackend.load(str(copy), index_path=str(tmp_path / "index"))


def test_app_without_gradio_says_how_to_install_it(monkeypatch, colour_model):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'modeling-eva02at[app]'")):
        cli_runs.app(["--model", colour_model])


# ---------------------------------------------------------------------------------------------------------------------
# The Space: its folder runs the app from its own copy of the package, index and videos, wherever it is
# ---------------------------------------------------------------------------------------------------------------------

SPACE_ID = "someone/eva02at-colours"
MODEL_ID = "someone/eva02at-colours-model"


@pytest.fixture(scope="module")
def colour_model_id(colour_model):
    """The colour model as a Space loads it, by Hub id: its folder as the download of MODEL_ID in the local Hub cache
    (the tests run offline, and subprocesses share the cache through HF_HOME)."""
    from huggingface_hub import constants

    commit = "0" * 40
    repo = os.path.join(constants.HF_HUB_CACHE, "models--" + MODEL_ID.replace("/", "--"))
    shutil.copytree(colour_model, os.path.join(repo, "snapshots", commit))
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as handle:
        handle.write(commit)
    return MODEL_ID


RUN_SPACE = """
import json, os, runpy, sys
space = os.getcwd()
sys.path.insert(0, space)  # as `python app.py` in the Space folder has it
import modeling_eva02at.app.cli as cli
from modeling_eva02at.app.backend import AppBackend
assert cli.__file__.startswith(space + os.sep), cli.__file__  # the Space's own copy, not the installed package

def launch_app(args):  # instead of gradio: what the launcher's arguments say, and a search through the app's backend
    backend = AppBackend.load(args.model, index_path=args.index)
    (hit, preview), = backend.search("a green video", 1)
    print(json.dumps({"hit": hit.path, "preview_bytes": os.path.getsize(preview), "clips": len(backend.index),
                      "examples": backend.example_videos(args.examples)}))

cli.launch_app = launch_app
try:
    runpy.run_path(os.path.join(space, "app.py"), run_name="__main__")
except SystemExit as done:
    assert done.code == 0, done.code
"""


def test_space_folder_runs_the_app_with_its_own_package_index_and_videos_after_moving(
    tmp_path, colour_folder, colour_model_id, loaded
):
    import shutil

    from huggingface_hub import metadata_load

    from modeling_eva02at.app.space import assemble_space_folder, runtime_requirements

    build(tmp_path / "index", VideoFolder(colour_folder), loaded)
    folder = tmp_path / "space"
    files = assemble_space_folder(
        str(folder),
        SPACE_ID,
        colour_model_id,
        index=str(tmp_path / "index"),
        examples=colour_folder,
        sdk_version="6.31.0",
    )
    assert {
        "README.md",
        "app.py",
        "requirements.txt",
        "modeling_eva02at/app/cli.py",
        "index/index.json",
        "videos/more/green.mp4",
        "examples/00-blue.mp4",
    } <= set(files)
    assert not any("__pycache__" in name for name in files)
    card = metadata_load(folder / "README.md")
    assert (card["sdk"], card["sdk_version"], card["app_file"]) == ("gradio", "6.31.0", "app.py")
    assert card["models"] == [MODEL_ID]
    requirements = (folder / "requirements.txt").read_text().split("\n")
    assert requirements[:-1] == runtime_requirements() and any(r.startswith("transformers") for r in requirements)
    assert not any("pytest" in r or "gradio" in r for r in requirements)  # no extras; gradio comes with the sdk

    moved = tmp_path / "elsewhere" / "space"  # the Space's checkout is somewhere else: nothing may point back
    shutil.move(str(folder), moved)
    shutil.rmtree(colour_folder)  # and the original videos are not there
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    env.pop("EVA02AT_INDEX", None)
    run = subprocess.run(
        [sys.executable, "-c", RUN_SPACE], cwd=moved, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["hit"] == str(moved / "videos" / "more" / "green.mp4") and result["preview_bytes"] > 0
    assert result["clips"] == 4 and len(result["examples"]) == 4
    assert all(path.startswith(str(moved / "examples")) for path in result["examples"])


def test_space_refuses_an_index_of_another_model_and_writes_nothing(
    tmp_path, colour_folder, colour_model_id, mir_processor
):
    from modeling_eva02at.app.space import assemble_space_folder

    other = tmp_path / "other_model"
    tiny_mir_model(seed=1).save_pretrained(other)
    mir_processor.save_pretrained(other)
    model, processor = load_model_for_inference(str(other))
    build(tmp_path / "index", VideoFolder(colour_folder), (model, processor, model_fingerprint(str(other))))
    with pytest.raises(IndexMismatchError, match="the Space's model"):
        assemble_space_folder(str(tmp_path / "space"), SPACE_ID, colour_model_id, index=str(tmp_path / "index"))
    assert sorted(os.listdir(tmp_path)) == ["index", "other_model", "videos"]


def test_push_space_uploads_the_folder_in_one_commit_and_refuses_before_any_network_call(
    tmp_path, colour_model_id, monkeypatch, capsys
):
    from unittest import mock

    import huggingface_hub

    from modeling_eva02at.app.space import push_space, space_files

    commit = mock.Mock(commit_url=f"https://huggingface.co/spaces/{SPACE_ID}/commit/0123")
    with (
        mock.patch.object(huggingface_hub.HfApi, "create_repo") as create_repo,
        mock.patch.object(huggingface_hub.HfApi, "create_commit", return_value=commit) as create_commit,
    ):
        folder = tmp_path / "space"
        cli_runs.push_space(
            [
                "--model",
                colour_model_id,
                "--space-id",
                SPACE_ID,
                "--output",
                str(folder),
                "--token",
                "hf_test",
                "--private",
            ]
        )
        create_repo.assert_called_once_with(
            SPACE_ID, repo_type="space", space_sdk="gradio", private=True, exist_ok=True
        )
        create_commit.assert_called_once()
        operations = create_commit.call_args.kwargs["operations"]
        assert sorted(op.path_in_repo for op in operations) == space_files(str(folder))
        assert create_commit.call_args.kwargs["repo_type"] == "space"
        assert f"Pushed to the Space {SPACE_ID}" in capsys.readouterr().out

        create_repo.reset_mock(), create_commit.reset_mock()
        os.remove(folder / "requirements.txt")
        with pytest.raises(FileNotFoundError, match="lacks requirements.txt"):
            push_space(str(folder), SPACE_ID, token="hf_test")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setattr("modeling_eva02at.hub.push.get_token", lambda: None)
        with pytest.raises(PermissionError, match="no Hugging Face token"):
            cli_runs.push_space(["--model", colour_model_id, "--space-id", SPACE_ID])
        with pytest.raises(ValueError, match="invalid repo id 'not a space id'"):
            cli_runs.push_space(
                [
                    "--model",
                    colour_model_id,
                    "--space-id",
                    "not a space id",
                    "--dry-run",
                    "--output",
                    str(tmp_path / "x"),
                ]
            )
        create_repo.assert_not_called(), create_commit.assert_not_called()
