"""Serving that survives hostile input: a video whose header lies (an MP4 claiming 2^31 frames, a Matroska file claiming
10^15 us, both made by patching a 2-second 64x64 H.264 file) made decord abort the whole process. Every entry point
now refuses such a file clearly, in the same process, and then serves the next good request; requests are bounded;
nothing swaps the process's stderr; the index survives a racing writer and refuses a second one before any model
loads."""

import base64
import gc
import importlib.util
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from modeling_eva02at import Eva02AtVideoProcessor, VideoDecodeError
from modeling_eva02at.hub import assemble_repo_folder
from modeling_eva02at.hub.handler import LIMITS, read_limits

from .conftest import REPO_ROOT, tiny_mir_model
from .video_helpers import make_frames, write_mkv_claiming_duration, write_mp4_claiming_frames, write_video


HOSTILE = ("claims_2e31_frames.mp4", "claims_1e15_us.mkv")
LABELS = ["a red video", "a blue video"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The two hostile files, a truncated file that passes the header check, and a good 2-second video."""
    folder = tmp_path_factory.mktemp("hostile")
    write_mp4_claiming_frames(str(folder / HOSTILE[0]))
    write_mkv_claiming_duration(str(folder / HOSTILE[1]))
    write_video(str(folder / "good.mp4"), make_frames(16, 64, 64), fps=8.0)
    write_video(str(folder / "faststart.mp4"), make_frames(48, 64, 64, noise=20.0), fps=8.0, faststart=True)
    data = (folder / "faststart.mp4").read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index intact, frames cut off
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, mir_processor):
    folder = tmp_path_factory.mktemp("model")
    tiny_mir_model(seed=2).save_pretrained(folder)
    mir_processor.save_pretrained(folder)
    return str(folder)


# ---------------------------------------------------------------------------------------------------------------------
# The process survives every hostile file, whatever reads it
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("name", HOSTILE)
def test_the_processor_refuses_a_lying_header_and_reads_the_next_video(files, backend, name):
    processor = Eva02AtVideoProcessor(video_backend=backend, num_frames=4, size=32)
    pattern = rf"'{name}': its header claims .* frames.* in a file of \d+ bytes: a damaged or crafted header"
    with pytest.raises(VideoDecodeError, match=pattern):
        processor(str(files / name))
    with pytest.raises(VideoDecodeError, match="header claims"):
        processor((files / name).read_bytes())  # in memory, as an upload arrives
    assert processor(str(files / "good.mp4"))["pixel_values_videos"].shape == (1, 4, 3, 32, 32)


def test_messages_name_files_never_the_servers_folders(files):
    processor = Eva02AtVideoProcessor(num_frames=4, size=32)
    for name in (*HOSTILE, "truncated.mp4"):
        with pytest.raises(VideoDecodeError) as error:
            processor(str(files / name))
        assert name in str(error.value) and str(files) not in str(error.value), str(error.value)
    with pytest.raises(FileNotFoundError) as error:
        processor(str(files / "missing.mp4"))
    assert "'missing.mp4'" in str(error.value) and str(files) not in str(error.value)


def test_the_pipeline_refuses_and_classifies_the_next_video(files, model_dir):
    from transformers import pipeline

    classifier = pipeline("zero-shot-video-classification", model=model_dir, trust_remote_code=True)
    for name in HOSTILE:
        with pytest.raises(VideoDecodeError, match="header claims"):
            classifier(str(files / name), candidate_labels=LABELS)
    scores = classifier(str(files / "good.mp4"), candidate_labels=LABELS)
    assert sorted(s["label"] for s in scores) == sorted(LABELS)


@pytest.fixture(scope="module")
def repo_dir(model_dir, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("repo") / "eva02at-tiny")
    assemble_repo_folder(model_dir, folder, "someone/eva02at-tiny")
    return folder


def load_handler(repo_dir, **limits):
    spec = importlib.util.spec_from_file_location("eva02at_hostile_handler", os.path.join(repo_dir, "handler.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EndpointHandler(repo_dir, **limits)


@pytest.fixture(scope="module")
def handler(repo_dir):
    return load_handler(repo_dir)


def test_the_handler_refuses_and_serves_the_next_request(files, handler):
    for name in HOSTILE:
        data = (files / name).read_bytes()
        for inputs in (data, base64.b64encode(data).decode()):
            with pytest.raises(ValueError, match="the uploaded video: its header claims"):
                handler({"inputs": inputs, "parameters": {"candidate_labels": LABELS}})
    scores = handler({"inputs": (files / "good.mp4").read_bytes(), "parameters": {"candidate_labels": LABELS}})
    assert sum(s["score"] for s in scores) == pytest.approx(1.0)


def test_the_app_backend_refuses_and_classifies_the_next_video(files, model_dir):
    from modeling_eva02at.app.backend import AppBackend

    backend = AppBackend.load(model_dir, dtype="float32")
    for name in HOSTILE:
        with pytest.raises(ValueError, match=rf"'{name}': its header claims"):
            backend.classify(str(files / name), ", ".join(LABELS), "{}")
    assert len(backend.classify(str(files / "good.mp4"), ", ".join(LABELS), "{}")) == 2


def test_the_apps_examples_skip_what_it_would_refuse_naming_each(files, model_dir, caplog, monkeypatch):
    from modeling_eva02at.app.backend import AppBackend

    monkeypatch.setenv("EVA02AT_MAX_SECONDS", "8")
    backend = AppBackend.load(model_dir, dtype="float32")
    long = files.parent / "long_example"
    long.mkdir(exist_ok=True)
    write_video(str(long / "ten_seconds.mp4"), make_frames(20, 32, 32), fps=2.0)
    with caplog.at_level(logging.WARNING, logger="modeling_eva02at.app.backend"):
        # (the truncated file's header is sound: it is refused when classified, like an upload)
        readable = [str(files / name) for name in ("faststart.mp4", "good.mp4", "truncated.mp4")]
        assert backend.example_videos(str(files)) == readable
        assert backend.example_videos(str(long)) == []
    skipped = sorted(record.getMessage().split(":")[1].split()[-1] for record in caplog.records)
    assert skipped == sorted([*HOSTILE, "ten_seconds.mp4"]), caplog.text
    assert "10.0 seconds of video: the limit is 8" in caplog.text


def test_the_indexer_skips_them_naming_each_and_indexes_the_rest(files, model_dir, tmp_path):
    from modeling_eva02at.evaluation.encoding import EncodeSettings, load_model_for_inference
    from modeling_eva02at.evaluation.fingerprint import model_fingerprint
    from modeling_eva02at.search.build import update_index
    from modeling_eva02at.search.sources import VideoFolder

    model, processor = load_model_for_inference(model_dir, device="cpu")
    settings = EncodeSettings(batch_size=2, num_workers=0, progress=False)
    report = update_index(
        str(tmp_path / "index"),
        VideoFolder(str(files)),
        model,
        processor,
        settings,
        model_id=model_fingerprint(model_dir),
    )
    skipped = {os.path.basename(entry.path): entry.reason for entry in report.skipped}
    assert set(skipped) == {*HOSTILE, "truncated.mp4"}
    assert all("header claims" in skipped[name] for name in HOSTILE)
    assert report.total == 2  # good.mp4 and faststart.mp4


def test_no_log_line_of_another_thread_is_lost_while_videos_are_opened(files, capfd):
    """Nothing redirects file descriptor 2 any more: a second thread logging to stderr while videos (good and bad) are
    opened keeps every line, and decord's own failures reach the caller as exceptions, not the terminal."""
    logger = logging.getLogger("eva02at.test.second_thread")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    processor = Eva02AtVideoProcessor(video_backend="decord", num_frames=4, size=32)
    capfd.readouterr()
    done = threading.Event()

    def log_lines():
        for number in range(400):
            logger.info(f"line {number}")
        done.set()

    thread = threading.Thread(target=log_lines)
    thread.start()
    while not done.is_set():
        for name in ("good.mp4", "truncated.mp4", *HOSTILE):
            try:
                processor(str(files / name))
            except VideoDecodeError:
                pass
    thread.join()
    logger.removeHandler(handler)
    lines = capfd.readouterr().err.splitlines()
    assert [line for line in lines if line.startswith("line ")] == [f"line {n}" for n in range(400)]
    assert all(line.startswith("line ") for line in lines), [line for line in lines if not line.startswith("line ")]


# ---------------------------------------------------------------------------------------------------------------------
# Every request is bounded
# ---------------------------------------------------------------------------------------------------------------------


def test_the_limits_come_from_arguments_then_the_environment_then_the_defaults(monkeypatch):
    defaults = read_limits()
    assert defaults == {name: default for name, (_, default, _) in LIMITS.items()}
    monkeypatch.setenv("EVA02AT_MAX_LABELS", "7")
    assert read_limits()["max_labels"] == 7 and read_limits(max_labels=3)["max_labels"] == 3
    monkeypatch.setenv("EVA02AT_MAX_SECONDS", "ten")
    with pytest.raises(ValueError, match="EVA02AT_MAX_SECONDS='ten' is not a whole number"):
        read_limits()
    with pytest.raises(TypeError, match="unknown limits \\['max_frames'\\]"):
        read_limits(max_frames=3)


def test_each_limit_refuses_just_over_and_serves_just_under(files, repo_dir):
    good = (files / "good.mp4").read_bytes()  # 64 x 64, 2 s
    two_labels = {"inputs": good, "parameters": {"candidate_labels": LABELS}}
    three_labels = {"inputs": good, "parameters": {"candidate_labels": [*LABELS, "a green video"]}}
    cases = [  # (limit, value the request needs, the request just over it, the message)
        ("max_labels", 2, three_labels, "3 candidate labels per request: the limit is 2 (set by EVA02AT_MAX_LABELS)"),
        (
            "max_upload_bytes",
            len(good),
            dict(two_labels, inputs=good + b"\0"),
            f"{len(good) + 1} bytes of an uploaded video: the limit is {len(good)} (set by EVA02AT_MAX_UPLOAD_BYTES)",
        ),
        (
            "max_frame_pixels",
            64 * 64,
            None,
            "64x64 = 4096 pixels per video frame (width x height): the limit is 4095 (set by EVA02AT_MAX_FRAME_PIXELS)",
        ),
        ("max_seconds", 2, None, "2.0 seconds of video: the limit is 1 (set by EVA02AT_MAX_SECONDS)"),
    ]
    for name, needed, over, message in cases:
        assert len(load_handler(repo_dir, **{name: needed})(two_labels)) == 2, name
        # the same request against a limit one lower, or a request one over the limit
        handler = load_handler(repo_dir, **{name: needed if over else needed - 1})
        with pytest.raises(ValueError) as error:
            handler(over or two_labels)
        assert str(error.value) == message, name
    texts = load_handler(repo_dir, max_texts=2)
    assert len(texts({"inputs": {"texts": LABELS}})["embeddings"]) == 2
    with pytest.raises(ValueError, match="3 texts per embedding request: the limit is 2"):
        texts({"inputs": {"texts": [*LABELS, "a green video"]}})


def test_a_base64_upload_over_the_limit_is_refused_before_it_is_decoded(repo_dir, monkeypatch):
    handler = load_handler(repo_dir, max_upload_bytes=1000)
    decoded = []
    monkeypatch.setattr(base64, "b64decode", lambda *a, **k: decoded.append(1) or b"")
    with pytest.raises(ValueError, match="bytes of an uploaded video: the limit is 1000"):
        handler({"inputs": "A" * 4000, "parameters": {"candidate_labels": LABELS}})
    assert decoded == []


def test_the_pipeline_encodes_captions_in_bounded_chunks(model_dir, files):
    from transformers import pipeline

    from modeling_eva02at.pipeline_eva02at import CAPTION_BATCH_SIZE

    classifier = pipeline("zero-shot-video-classification", model=model_dir, trust_remote_code=True)
    labels = [f"label number {i}" for i in range(2 * CAPTION_BATCH_SIZE + 5)]
    rows, encode = [], classifier.model.get_text_features

    def counting(input_ids, *args, **kwargs):
        rows.append(len(input_ids))
        return encode(input_ids, *args, **kwargs)

    classifier.model.get_text_features = counting
    chunked = classifier.encode_captions(labels)
    assert rows == [CAPTION_BATCH_SIZE, CAPTION_BATCH_SIZE, 5]
    tokens = classifier.processor(text=labels, return_tensors="pt")
    with torch.inference_mode():
        whole = encode(tokens["input_ids"], tokens["attention_mask"]).pooler_output
    torch.testing.assert_close(chunked, torch.nn.functional.normalize(whole, dim=-1), atol=1e-5, rtol=1e-5)


def test_app_previews_are_written_atomically_into_one_folder_removed_with_the_backend(files, model_dir, monkeypatch):
    from modeling_eva02at.app.backend import AppBackend
    from modeling_eva02at.search import preview as preview_module

    backend = AppBackend(*_model(model_dir), model_id=None)
    folder = backend.preview_dir
    assert os.path.isdir(folder) and os.listdir(folder) == []

    def failing(video_processor, video, start, end, output, **kwargs):
        with open(output, "wb") as file:
            file.write(b"half a preview")
        raise OSError("disk full")

    monkeypatch.setattr(preview_module, "write_preview", failing)

    class Hit:
        path, start, end, rank, score = str(files / "good.mp4"), 0.0, 1.0, 1, 0.5

    backend.index = type("Index", (), {"__len__": lambda self: 1})()
    monkeypatch.setattr("modeling_eva02at.search.build.search_index", lambda *a, **k: [[Hit()]])
    with pytest.raises(OSError, match="disk full"):
        backend.search("a red video", 1)
    assert os.listdir(folder) == []  # no half-written preview left where the next request would find it
    del backend
    gc.collect()
    assert not os.path.exists(folder)


def _model(model_dir):
    from modeling_eva02at.evaluation.encoding import load_model_for_inference

    return load_model_for_inference(model_dir, device="cpu")


# ---------------------------------------------------------------------------------------------------------------------
# The index: a reader racing a writer, and a second writer
# ---------------------------------------------------------------------------------------------------------------------


def test_a_load_racing_the_final_merge_reads_the_manifest_again(tmp_path, monkeypatch):
    from modeling_eva02at.search.sources import Clip
    from modeling_eva02at.search.store import VideoIndex, writable_index

    header = {"model": "m", "pixels": {}, "flip": False, "dtype": "torch.float32"}
    with writable_index(str(tmp_path), header) as index:
        index.add([Clip("/v/a.mp4", 0.0, 1.0, 1, 1)], torch.ones(1, 4))
        stale = VideoIndex._read_manifest(str(tmp_path))
        index.add([Clip("/v/b.mp4", 0.0, 1.0, 1, 1)], torch.ones(1, 4))
        index.keep([True, True])  # the merge: new shard files, the old ones deleted
    reads = iter([stale])
    real = VideoIndex._read_manifest
    monkeypatch.setattr(VideoIndex, "_read_manifest", staticmethod(lambda path: next(reads, None) or real(path)))
    assert len(VideoIndex.load(str(tmp_path))) == 2
    monkeypatch.setattr(VideoIndex, "_read_manifest", staticmethod(lambda path: stale))
    with pytest.raises(FileNotFoundError, match="listed in the manifest but missing"):
        VideoIndex.load(str(tmp_path))


def test_a_second_indexer_is_refused_in_one_line_before_it_loads_a_model(tmp_path, files):
    from modeling_eva02at.search.store import index_lock

    with index_lock(str(tmp_path / "index")):
        result = subprocess.run(
            [
                sys.executable,
                os.path.join(REPO_ROOT, "examples", "index_videos.py"),
                "--model",
                "nobody/no-model",
                "--videos",
                str(files),
                "--index",
                str(tmp_path / "index"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [
        f"error: another process is writing the index {tmp_path / 'index'}; wait for it to finish"
    ]
    assert "Encoding in" not in result.stdout  # refused before the model (here a missing one) was even looked for


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    from modeling_eva02at.search.store import IndexBusyError, index_lock

    path = str(tmp_path / "index")
    outcome = []
    with index_lock(path), index_lock(path):  # a command line, then writable_index inside it
        thread = threading.Thread(target=lambda: outcome.append(_try_lock(path)))
        thread.start()
        thread.join()
    assert outcome == [IndexBusyError]
    assert _try_lock(path) is None  # released


def _try_lock(path):
    from modeling_eva02at.search.store import IndexBusyError, index_lock

    try:
        with index_lock(path):
            return None
    except IndexBusyError:
        return IndexBusyError


def test_uint8_frames_are_not_needed_to_check_a_header(files):
    """`probe` reads the header only: a file with a lying header is refused in milliseconds, without decoding."""
    info = Eva02AtVideoProcessor().probe(str(files / "good.mp4"))
    assert (info.width, info.height, info.num_frames, info.fps) == (64, 64, 16, 8.0)
    assert info.seconds == pytest.approx(2.0) and info.size == os.path.getsize(files / "good.mp4")
    with pytest.raises(TypeError, match="probe reads encoded videos"):
        Eva02AtVideoProcessor().probe(np.zeros((2, 8, 8, 3), np.uint8))


def test_the_card_and_the_docs_state_every_limit_with_its_variable_and_default():
    """The card is how an endpoint's owner learns the limits: each one, its variable and its default value."""
    from modeling_eva02at.hub.card import render_model_card

    card = render_model_card(tiny_mir_model().config, "someone/eva02at")
    with open(os.path.join(REPO_ROOT, "docs", "hub.md")) as handle:
        docs = handle.read()
    for name, (variable, default, _) in LIMITS.items():
        row = next((line for line in card.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None and f"| {default}" in row and f"`{variable}`" in row, name
        assert f"`{variable}`" in docs, name


def test_a_file_is_checked_once_per_version_and_again_when_it_changes(tmp_path, monkeypatch):
    """Training and indexing open the same files again and again: a header that passed is not read again, unless the
    file changed (size or modification time) since; a file replaced by a crafted one is refused."""
    from modeling_eva02at import video_reading_eva02at as reading

    probes = []
    original = reading.probe_video
    monkeypatch.setattr(reading, "probe_video", lambda source, name: probes.append(name) or original(source, name))
    path = tmp_path / "clip.mp4"
    write_video(str(path), make_frames(16, 64, 64), fps=8.0)
    processor = Eva02AtVideoProcessor(video_backend="decord", num_frames=4, size=32)
    for _ in range(3):
        processor(str(path))
    assert len(probes) == 1
    write_mp4_claiming_frames(str(path))
    with pytest.raises(VideoDecodeError, match="'clip.mp4': its header claims"):
        processor(str(path))
    assert len(probes) == 2
