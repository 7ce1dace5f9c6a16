"""Evaluation scripts (issue 6): encoding, flip TTA, the feature cache, the EgoMCQ / Charades-Ego readers and the three
examples/eval_*.py scripts end to end on tiny synthetic data in the real file formats."""

import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from modeling_eva02at import Eva02AtConfig, Eva02AtModel
from modeling_eva02at.data.egomcq import EgoMcqQuestions
from modeling_eva02at.data.layouts import EgoVlpChunks, chunk_paths
from modeling_eva02at.data.relevancy import build_relevancy, read_retrieval_csv, read_sentence_csv
from modeling_eva02at.demo.ek100 import make_demo_dataset
from modeling_eva02at.evaluation.cache import cached_features, feature_cache_path
from modeling_eva02at.evaluation.charades_ego import CharadesEgoAnnotations
from modeling_eva02at.evaluation.encoding import (
    ClipCollator,
    EncodeSettings,
    encode_texts,
    encode_videos,
    load_model_for_inference,
)
from modeling_eva02at.evaluation.metrics import egomcq_accuracy
from modeling_eva02at.processing_eva02at import Eva02AtProcessor
from modeling_eva02at.utils import runtime
from modeling_eva02at.utils.processor import match_processor_to_model

from . import cli_runs
from .conftest import REPO_ROOT
from .video_helpers import make_frames, write_video


HERE = os.path.dirname(os.path.abspath(__file__))
FPS = 10


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny random Eva02AtModel and the eva02at-b16 processor (2 frames, 16 px) saved as one folder."""
    folder = tmp_path_factory.mktemp("model")
    config = Eva02AtConfig.from_pretrained(os.path.join(HERE, "fixtures", "tiny_mir_config"))
    torch.manual_seed(0)
    Eva02AtModel(config).save_pretrained(folder)
    processor = Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    match_processor_to_model(processor, config, resize=True)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def model_and_processor(model_dir):
    return load_model_for_inference(model_dir, device="cpu")


def common_args(model_dir, video_root, tmp_path, **extra):
    args = [
        "--model",
        model_dir,
        "--video-root",
        str(video_root),
        "--batch-size",
        "4",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-progress",
        "--output-json",
        str(tmp_path / "out.json"),
    ]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return args


def write_clip(path, num_frames, seed):
    """A small H.264 video at FPS frames per second; each seed gives a different colour pattern."""
    frames = make_frames(num_frames, 48, 64, stamp_numbers=False, noise=8.0, seed=seed)
    frames = np.roll(frames, shift=seed * 7, axis=2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(str(path), frames, FPS)


# ---------------------------------------------------------------------------------------------------------------------
# Encoding, flip TTA, cache
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    paths = [str(root / f"v{i}.mp4") for i in range(2)]
    for seed, path in enumerate(paths):
        write_clip(path, 20, seed)
    return paths


def test_encode_videos_flip_and_workers(model_and_processor, two_videos):
    model, processor = model_and_processor
    settings = EncodeSettings(batch_size=2, device="cpu", progress=False)
    clips = (two_videos, [0.0, 0.5], [1.5, 2.0])
    plain = encode_videos(model, processor, *clips, settings)
    flipped = encode_videos(model, processor, *clips, replace(settings, flip=True))
    assert plain.shape == flipped.shape == (2, model.config.projection_dim) and plain.dtype == torch.float32
    torch.testing.assert_close(flipped.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(plain, flipped, atol=1e-4)

    # The definition: normalize(normalize(f(x)) + normalize(f(flip(x)))), flip mirroring each frame left-right.
    pixels = processor(videos=two_videos, start=[0.0, 0.5], end=[1.5, 2.0])["pixel_values_videos"]
    with torch.no_grad():
        one = F.normalize(model.get_video_features(pixel_values_videos=pixels).pooler_output, dim=-1)
        two = F.normalize(model.get_video_features(pixel_values_videos=pixels.flip(-1)).pooler_output, dim=-1)
    torch.testing.assert_close(plain, one, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(flipped, F.normalize(one + two, dim=-1), atol=1e-5, rtol=1e-5)

    # Decoding in a DataLoader worker gives the same embeddings.
    torch.testing.assert_close(encode_videos(model, processor, *clips, replace(settings, num_workers=1)), plain)


def test_encode_texts_matches_the_model(model_and_processor):
    model, processor = model_and_processor
    texts = ["cut the onion", "wash the pan", "open the fridge"]
    embeds = encode_texts(model, processor, texts, EncodeSettings(text_batch_size=2, device="cpu", progress=False))
    inputs = processor(text=texts)
    with torch.no_grad():
        reference = model.get_text_features(inputs["input_ids"], inputs["attention_mask"]).pooler_output
    torch.testing.assert_close(embeds, F.normalize(reference, dim=-1), atol=1e-5, rtol=1e-5)


def test_cached_features(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"video": torch.randn(3, 4), "text": torch.randn(5, 4)}

    key = {"model": "m", "frames": 16, "flip": False}
    first = cached_features(str(tmp_path), key, compute)
    again = cached_features(str(tmp_path), dict(reversed(list(key.items()))), compute)  # same key, other order
    assert len(calls) == 1 and not first.from_cache and again.from_cache and again.path == first.path
    assert all(torch.equal(first.features[k], again.features[k]) for k in first.features)
    assert os.listdir(tmp_path) == [os.path.basename(first.path)]  # no temporary file left behind

    other = cached_features(str(tmp_path), {**key, "flip": True}, compute)
    assert len(calls) == 2 and other.path != first.path
    with open(first.path, "wb") as file:  # a truncated / corrupt file is recomputed, not trusted
        file.write(b"garbage")
    repaired = cached_features(str(tmp_path), key, compute)
    assert len(calls) == 3 and not repaired.from_cache and cached_features(str(tmp_path), key, compute).from_cache
    assert feature_cache_path(str(tmp_path), key) == first.path
    assert not cached_features(None, key, compute).from_cache and len(calls) == 4


def test_egovlp_chunk_paths():
    assert [os.path.basename(p) for p in chunk_paths("/v", "uid", 598.5, 601.0, "egovlp")] == ["0.mp4", "1.mp4"]
    assert chunk_paths("/v", "uid", 10.0, 600.0, "egovlp") == ["/v/uid/0.mp4"]  # ends exactly at the boundary


# ---------------------------------------------------------------------------------------------------------------------
# EK-100 MIR
# ---------------------------------------------------------------------------------------------------------------------


def test_eval_ek100_mir_end_to_end_and_cache(model_dir, tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", num_train=8, num_test=16)
    cache = tmp_path / "cache"
    argv = common_args(
        model_dir,
        demo.video_root,
        tmp_path,
        test_csv=demo.test_csv,
        sentence_csv=demo.test_sentence_csv,
        cache_dir=cache,
    )
    cli_runs.eval_ek100_mir(argv)
    first = json.loads((tmp_path / "out.json").read_text())
    keys = ("vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG")
    assert set(first["metrics"]) == set(keys)
    assert all(0.0 <= first["metrics"][k] <= 1.0 for k in keys)
    assert first["num_videos"] == 16 and not first["features_cache"]["hit"]
    cache_file = first["features_cache"]["path"]
    written = os.stat(cache_file).st_mtime_ns

    # Second run, now with the relevancy as a pickle (not part of the cache key): loads the features.
    relevancy = build_relevancy(read_retrieval_csv(demo.test_csv), read_sentence_csv(demo.test_sentence_csv))
    with open(tmp_path / "relevancy.pkl", "wb") as file:
        pickle.dump(relevancy, file)
    second_report = cli_runs.eval_ek100_mir(argv + ["--relevancy", str(tmp_path / "relevancy.pkl")])
    second = json.loads((tmp_path / "out.json").read_text())
    assert second["features_cache"] == {"path": cache_file, "hit": True}
    assert second["metrics"] == first["metrics"] and second_report["metrics"] == first["metrics"]
    assert second["seconds"] < first["seconds"]
    assert os.stat(cache_file).st_mtime_ns == written and os.listdir(cache) == [os.path.basename(cache_file)]

    # Another frame count is another cache entry.
    cli_runs.eval_ek100_mir(argv + ["--num-frames", "3"])
    assert len(os.listdir(cache)) == 2


def test_dtype_auto_is_bfloat16_only_where_the_hardware_computes_it(monkeypatch):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: "AVX512-BF16")
    dtype, reason = runtime.resolve_dtype("auto", "cpu")
    assert dtype is torch.bfloat16 and "AVX512-BF16" in reason and "--dtype auto" in reason
    monkeypatch.setattr(runtime, "native_bf16", lambda device: None)
    dtype, reason = runtime.resolve_dtype("auto", "cpu")
    assert dtype is None and reason.startswith("float32 (--dtype auto: no native bfloat16")
    assert runtime.resolve_dtype("bfloat16", "cpu")[0] is torch.bfloat16  # asked for: whatever the hardware
    assert runtime.resolve_dtype("float32", "cpu")[0] is None
    with pytest.raises(ValueError, match="--dtype must be one of auto, float32, bfloat16, got 'half'"):
        runtime.resolve_dtype("half", "cpu")
    # this machine's answer is its own, but never bfloat16 where torch reports no native support
    if runtime.native_bf16(torch.device("cpu")) is None:
        assert runtime.resolve_dtype("auto", "cpu")[0] is None


@pytest.mark.parametrize(
    "native, flags, expected",
    [
        (None, [], "float32"),
        ("AMX", [], "bfloat16"),
        ("AMX", ["--dtype", "float32"], "float32"),
        (None, ["--dtype", "bfloat16"], "bfloat16"),
    ],
)
def test_eval_scripts_say_and_record_the_dtype_they_chose(
    model_dir, tmp_path, monkeypatch, capsys, native, flags, expected
):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: native)
    demo = make_demo_dataset(tmp_path / "demo", num_train=8, num_test=8)
    argv = [
        a
        for a in common_args(
            model_dir, demo.video_root, tmp_path, test_csv=demo.test_csv, sentence_csv=demo.test_sentence_csv
        )
        if a not in ("--dtype", "float32")
    ]
    report = cli_runs.eval_ek100_mir(argv + flags)
    assert report["settings"]["dtype"] == expected
    assert json.loads((tmp_path / "out.json").read_text())["settings"]["dtype"] == expected
    printed = capsys.readouterr().out
    assert f"Encoding in {expected} (--dtype" in printed


def test_bf16_embeddings_match_float32(model_and_processor, two_videos):
    """bfloat16 autocast (what --dtype auto picks on bf16 hardware) against float32, on a tiny random model."""
    model, processor = model_and_processor
    full_settings = EncodeSettings(batch_size=2, device="cpu", progress=False)
    bf16_settings = EncodeSettings(batch_size=2, device="cpu", progress=False, compute_dtype=torch.bfloat16)
    clips = (two_videos, [0.0, 0.5], [1.5, 2.0])
    full = encode_videos(model, processor, *clips, full_settings)
    half = encode_videos(model, processor, *clips, bf16_settings)
    assert half.dtype == torch.float32 and not torch.equal(full, half)  # bf16 was used, and returned as float32
    assert F.cosine_similarity(full, half).min() > 0.999
    texts = ["cut an onion", "wash the pan"]
    cosine = F.cosine_similarity(
        encode_texts(model, processor, texts, full_settings), encode_texts(model, processor, texts, bf16_settings)
    )
    assert cosine.min() > 0.999


def test_bf16_loaded_model_matches_float32_and_keeps_exact_rope_tables(model_dir, model_and_processor, two_videos):
    """What the scripts run when they choose bfloat16: the weights loaded in bf16, no autocast."""
    model, processor = model_and_processor
    half_model, _ = load_model_for_inference(model_dir, device="cpu", dtype=torch.bfloat16)
    assert {p.dtype for p in half_model.parameters()} == {torch.bfloat16}
    rope = half_model.vision_model.rotary_emb
    # the tables are the exact float32 ones, cast to bf16 only at the end (not computed from bf16 weights or angles)
    cos, sin, polar = rope(*rope.default_key, torch.device("cpu"), torch.bfloat16)
    exact = model.vision_model.rotary_emb.cos_sin
    assert cos.dtype == sin.dtype == torch.bfloat16 and polar is None
    assert torch.equal(cos[:, 0, ::2], exact[..., 0].to(torch.bfloat16))
    assert torch.equal(sin[:, 0, 1::2], exact[..., 1].to(torch.bfloat16))
    full_settings = EncodeSettings(batch_size=2, device="cpu", progress=False)
    bf16_settings = EncodeSettings(batch_size=2, device="cpu", progress=False, compute_dtype=torch.bfloat16)
    clips = (two_videos, [0.0, 0.5], [1.5, 2.0])
    full = encode_videos(model, processor, *clips, full_settings)
    half = encode_videos(half_model, processor, *clips, bf16_settings)
    assert half.dtype == torch.float32 and F.cosine_similarity(full, half).min() > 0.999
    texts = ["cut an onion", "wash the pan"]
    cosine = F.cosine_similarity(
        encode_texts(model, processor, texts, full_settings), encode_texts(half_model, processor, texts, bf16_settings)
    )
    assert cosine.min() > 0.999


def test_eval_ek100_missing_video(model_dir, tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", num_train=8, num_test=16)
    clips = pd.read_csv(demo.test_csv)
    victim = os.path.join(demo.video_root, clips["participant_id"][0], f"{clips['video_id'][0]}.MP4")
    os.remove(victim)
    argv = common_args(
        model_dir, demo.video_root, tmp_path, test_csv=demo.test_csv, sentence_csv=demo.test_sentence_csv
    )
    with pytest.raises(FileNotFoundError, match=clips["video_id"][0]):
        cli_runs.eval_ek100_mir(argv)


# ---------------------------------------------------------------------------------------------------------------------
# EgoMCQ
# ---------------------------------------------------------------------------------------------------------------------


def egomcq_clip(uid, start, end, text):
    return {
        "clip_idx": 0,
        "video_uid": uid,
        "video_dur": 3.0,
        "narration_source": "narration_pass_1",
        "narration_ind": 0,
        "narration_time": (start + end) / 2,
        "clip_start": start,
        "clip_end": end,
        "clip_text": text,
        "tag_verb": "[1]",
        "tag_noun": "[2]",
    }


@pytest.fixture(scope="module")
def egomcq_data(tmp_path_factory):
    """Full videos a, b, c, d (3 s each) and video e in EgoVLP chunks of 2 s (tests use --chunk-seconds 2)."""
    root = tmp_path_factory.mktemp("ego4d")
    for seed, uid in enumerate("abcd"):
        write_clip(root / "videos" / f"{uid}.mp4", 3 * FPS, seed)
    frames = make_frames(4 * FPS, 48, 64, stamp_numbers=False, noise=8.0, seed=9)
    for k in range(2):
        os.makedirs(root / "videos" / "e", exist_ok=True)
        write_video(str(root / "videos" / "e" / f"{k}.mp4"), frames[k * 2 * FPS : (k + 1) * 2 * FPS], FPS)
    questions = {
        "0": {
            "query": egomcq_clip("a", 0.5, 1.5, "#C C opens a door"),
            "choices": {str(i): egomcq_clip(uid, 0.5, 1.5, f"text {uid}") for i, uid in enumerate("abcde")},
            "answer": 0,
            "types": 1,
        },  # candidates from five videos: inter-video
        "1": {
            "query": egomcq_clip("b", 1.0, 2.0, "#C C cuts a tomato"),
            "choices": {str(i): egomcq_clip("b", 0.5 * i, 0.5 * i + 0.8, f"text b{i}") for i in range(5)},
            "answer": 2,
            "types": 2,
        },  # five clips of one video: intra-video
        "2": {
            "query": egomcq_clip("e", 1.5, 2.5, "#C C washes a cup"),
            "choices": {
                str(i): egomcq_clip(uid, -0.2 if uid == "c" else 1.5, 2.5, f"t{uid}") for i, uid in enumerate("ecdab")
            },
            "answer": 0,
            "types": 1,
        },
    }
    path = root / "egomcq.json"
    path.write_text(json.dumps(questions))
    return root, path, questions


def test_egomcq_types_disagreeing_with_candidates_warn(egomcq_data, tmp_path):
    _, _, questions = egomcq_data
    swapped = {key: dict(q, types=3 - q["types"]) for key, q in questions.items()}  # the metric code's swapped names
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(swapped))
    with pytest.warns(UserWarning, match="3 of 3 questions have a `types` value that disagrees") as record:
        EgoMcqQuestions.from_json(str(path))
    assert str(path) in str(record[0].message)
    # One question whose type disagrees with its candidates is named, with what its candidates are.
    one = json.loads(json.dumps(questions))
    one["1"]["types"] = 1  # five clips of video b, labelled inter-video
    path.write_text(json.dumps(one))
    with pytest.warns(UserWarning, match=r"1 of 3 questions .*question '1' has types 1 and candidates from 1 video;"):
        EgoMcqQuestions.from_json(str(path))
    one = json.loads(json.dumps(questions))
    one["2"]["types"] = 2  # candidates from five videos, labelled intra-video
    path.write_text(json.dumps(one))
    with pytest.warns(UserWarning, match=r"1 of 3 questions .*question '2' has types 2 and candidates from 5 videos;"):
        EgoMcqQuestions.from_json(str(path))


def test_eval_script_in_a_fresh_process_loads_a_saved_folder(model_dir, egomcq_data, tmp_path):
    """The saved processor config names remote-code classes: a fresh interpreter that has imported nothing of the
    package must still load the folder without prompting for trust_remote_code (stdin is closed here)."""
    root, path, _ = egomcq_data
    argv = common_args(model_dir, root / "videos", tmp_path, egomcq_json=path, chunk_seconds=2)
    result = subprocess.run(
        [sys.executable, os.path.join(REPO_ROOT, "examples", "eval_egomcq.py"), *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "out.json").read_text())["metrics"]["num_inter_video"] == 2


@pytest.mark.parametrize("keep", [("0", "2"), ("1",), ("0", "1", "2")], ids=["inter_only", "intra_only", "mixed"])
def test_egomcq_files_with_one_or_both_types(egomcq_data, tmp_path, keep):
    """Type 1 = inter-video (candidates from several videos), 2 = intra-video (from one video): the consistency check
    agrees with every file, whichever types it holds, and the metric counts each type by its value."""
    _, _, questions = egomcq_data
    path = tmp_path / "subset.json"
    path.write_text(json.dumps({str(i): questions[key] for i, key in enumerate(keep)}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        subset = EgoMcqQuestions.from_json(str(path))
    expected_types = [questions[key]["types"] for key in keep]
    assert subset.types.tolist() == expected_types
    similarity = np.eye(5)[subset.answers]  # every answer right
    similarity[subset.types == 2] = np.eye(5)[(subset.answers[subset.types == 2] + 1) % 5]  # every intra one wrong
    metrics = egomcq_accuracy(similarity, subset.answers, subset.types)
    assert metrics["num_inter_video"] == expected_types.count(1)
    assert metrics["num_intra_video"] == expected_types.count(2)
    assert metrics["inter_video_accuracy"] == 1.0 if 1 in expected_types else np.isnan(metrics["inter_video_accuracy"])
    assert metrics["intra_video_accuracy"] == 0.0 if 2 in expected_types else np.isnan(metrics["intra_video_accuracy"])


def test_egomcq_reader(egomcq_data):
    root, path, _ = egomcq_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # types consistent with the candidates: no warning
        questions = EgoMcqQuestions.from_json(str(path))
    assert len(questions) == 3 and questions.choices.shape == (3, 5)
    assert questions.answers.tolist() == [0, 2, 0] and questions.types.tolist() == [1, 2, 1]
    assert questions.query_texts[1] == "#C C cuts a tomato"
    assert len(questions.clips) == 15
    first = questions.clips.iloc[questions.choices[2, 1]]
    assert (first["video_uid"], first["start"]) == ("c", 0.0)  # negative start clamped as EgoVLP
    videos, starts, ends = questions.clip_videos(str(root / "videos"), chunk_seconds=2)
    crossing = questions.choices[2, 0]  # e, 1.5-2.5 s: crosses the 2 s chunk boundary, read as one range
    assert videos[crossing] == EgoVlpChunks(str(root / "videos" / "e"), 2, "mp4")
    assert (starts[crossing], ends[crossing]) == (1.5, 2.5)  # the whole video's times, in every layout
    with pytest.raises(FileNotFoundError, match=re.escape(os.path.join("videos", "a", "0.mp4"))) as error:
        questions.clip_videos(str(root / "videos"), "egovlp", chunk_seconds=2)
    assert str(error.value).startswith(f"EgoMCQ video chunks <video_uid>/<k>.mp4 missing under {root / 'videos'} ")
    with pytest.raises(ValueError, match=r"EgoMCQ video layout must be one of .* got 'chunks'"):
        questions.clip_videos(str(root / "videos"), "chunks")


def test_crossing_clip_frames(model_and_processor, egomcq_data):
    _, processor = model_and_processor
    root, _, _ = egomcq_data
    chunks = EgoVlpChunks(str(root / "videos" / "e"), chunk_seconds=2)
    pixels = ClipCollator(processor, num_frames=4)([{"video": chunks, "start": 1.5, "end": 2.5}])
    assert pixels.shape == (1, 4, 3, 16, 16)


def test_eval_egomcq_end_to_end(model_dir, egomcq_data, tmp_path):
    root, path, _ = egomcq_data
    argv = common_args(model_dir, root / "videos", tmp_path, egomcq_json=path, chunk_seconds=2, cache_dir=tmp_path)
    report = cli_runs.eval_egomcq(argv)
    written = json.loads((tmp_path / "out.json").read_text())
    metrics = written["metrics"]
    assert metrics["num_inter_video"] == 2 and metrics["num_intra_video"] == 1
    assert metrics["inter_video_accuracy"] in (0.0, 0.5, 1.0) and metrics["intra_video_accuracy"] in (0.0, 1.0)
    assert written["num_videos"] == 15 and report["metrics"] == metrics
    assert cli_runs.eval_egomcq(argv)["features_cache"]["hit"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda q: q["1"].update(answer=5), r"question '1': answer 5 is not an integer in \[0, 5\)"),
        (lambda q: q["0"].update(answer=-1), r"question '0': answer -1"),
        (lambda q: q["2"].update(types=3), r"question '2': types 3 must be 1 \(inter-video\) or 2 \(intra-video\)"),
        (lambda q: q["1"]["choices"].pop("4"), r"question '1' has 4 choices"),
        (lambda q: q["0"]["choices"]["3"].pop("video_uid"), r"question '0', choice '3' has no 'video_uid'"),
        (lambda q: q["2"].pop("query"), r"question '2' has no 'query'"),
    ],
)
def test_egomcq_bad_input(egomcq_data, tmp_path, change, message):
    _, _, questions = egomcq_data
    broken = json.loads(json.dumps(questions))
    change(broken)
    path = tmp_path / "egomcq.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=message) as error:
        EgoMcqQuestions.from_json(str(path))
    assert str(path) in str(error.value)


def test_egomcq_missing_video(model_dir, egomcq_data, tmp_path):
    root, path, questions = egomcq_data
    broken = json.loads(json.dumps(questions))
    broken["0"]["choices"]["1"]["video_uid"] = "nowhere"
    (tmp_path / "egomcq.json").write_text(json.dumps(broken))
    argv = common_args(model_dir, root / "videos", tmp_path, egomcq_json=tmp_path / "egomcq.json", chunk_seconds=2)
    with pytest.raises(FileNotFoundError, match="nowhere.mp4") as error:
        cli_runs.eval_egomcq(argv)
    # The auto layout looked for a full video and, failing that, a chunk folder: the message says both.
    assert str(error.value).startswith(
        "EgoMCQ videos (<video_uid>.mp4, or chunks <video_uid>/<k>.mp4 where that "
        f"folder exists) missing under {root / 'videos'} (first 1):"
    )


def test_model_folder_without_config_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"^model folder {re.escape(str(tmp_path))} has no config.json"):
        load_model_for_inference(str(tmp_path), device="cpu")


def test_egomcq_unreadable_file_is_named(tmp_path):
    path = tmp_path / "egomcq.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=rf"^EgoMCQ file {re.escape(str(path))} is not valid JSON"):
        EgoMcqQuestions.from_json(str(path))
    path.write_text("[]")
    with pytest.raises(ValueError, match=rf"^EgoMCQ file {re.escape(str(path))}: expected a non-empty JSON object"):
        EgoMcqQuestions.from_json(str(path))


# ---------------------------------------------------------------------------------------------------------------------
# Charades-Ego
# ---------------------------------------------------------------------------------------------------------------------

CHARADES_COLUMNS = [
    "id",
    "subject",
    "scene",
    "quality",
    "relevance",
    "verified",
    "script",
    "objects",
    "descriptions",
    "actions",
    "length",
]
CLASSES = [
    "c000 Holding some clothes",
    "c001 Putting clothes somewhere",
    "c002 Taking some clothes from somewhere",
    "c003 Throwing clothes somewhere",
    "c004 Tidying some clothes, folding them",
]


def write_charades(folder, actions):
    rows = [
        [
            video_id,
            "S1",
            "Kitchen",
            "6",
            "7",
            "Yes",
            "A person ...",
            "clothes;door",
            "A person holds clothes.",
            action,
            "3.00",
        ]
        for video_id, action in actions
    ]
    pd.DataFrame(rows, columns=CHARADES_COLUMNS).to_csv(folder / "CharadesEgo_v1_test_only1st.csv", index=False)
    (folder / "Charades_v1_classes.txt").write_text("\n".join(CLASSES) + "\n")
    return folder / "CharadesEgo_v1_test_only1st.csv", folder / "Charades_v1_classes.txt"


@pytest.fixture(scope="module")
def charades_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("charades")
    actions = [
        ("ABC1EGO", "c000 0.00 1.50;c004 1.00 2.90"),
        ("ABC2EGO", "c001 0.30 2.00"),
        ("ABC3EGO", ""),
        ("ABC4EGO", "c002 0.00 3.00;c000 1.0 2.0"),
    ]
    for seed, (video_id, _) in enumerate(actions):
        if video_id != "ABC3EGO":  # unlabelled: excluded, so its video is never needed
            write_clip(root / "videos" / f"{video_id}.mp4", 3 * FPS, seed)
    return root, actions


def test_charades_reader(charades_data):
    root, actions = charades_data
    csv_path, classes_path = write_charades(root, actions)
    annotations = CharadesEgoAnnotations.from_files(str(csv_path), str(classes_path))
    assert annotations.video_ids == ["ABC1EGO", "ABC2EGO", "ABC4EGO"] and annotations.unlabelled_ids == ["ABC3EGO"]
    assert annotations.labels.tolist() == [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0]]
    assert annotations.class_names[4] == "Tidying some clothes, folding them"


def test_eval_charades_end_to_end(model_dir, charades_data, tmp_path):
    root, actions = charades_data
    csv_path, classes_path = write_charades(tmp_path, actions)
    argv = common_args(model_dir, root / "videos", tmp_path, csv=csv_path, classes=classes_path)
    report = cli_runs.eval_charades_ego(argv + ["--templates", "{}", "#C C {}"])
    written = json.loads((tmp_path / "out.json").read_text())
    assert 0.0 < written["metrics"]["mAP"] <= 1.0 and written["metrics"] == report["metrics"]
    assert written["num_videos"] == 3 and written["num_texts"] == 5
    assert written["num_unlabelled_videos_excluded"] == 1 and written["settings"]["templates"] == ["{}", "#C C {}"]


def test_charades_bad_input(model_dir, charades_data, tmp_path):
    root, actions = charades_data
    csv_path, classes_path = write_charades(tmp_path, actions[:2] + [("ABC9EGO", "c000 0.0 1.0;c157 0.50 1.20")])
    with pytest.raises(ValueError, match=r"line 4 \(id 'ABC9EGO'\): unknown class id 'c157'") as error:
        CharadesEgoAnnotations.from_files(str(csv_path), str(classes_path))
    # The library names the files; only the scripts know the flags.
    assert str(error.value) == (
        f"Charades-Ego CSV {csv_path}, line 4 (id 'ABC9EGO'): unknown class id 'c157' "
        f"(not in the classes file {classes_path})"
    )
    bad_classes = tmp_path / "classes.txt"
    bad_classes.write_text("c000 Holding some clothes\nc000 Again\n")
    twice = rf"^classes file {re.escape(str(bad_classes))}: class id 'c000' appears twice"
    with pytest.raises(ValueError, match=twice):
        CharadesEgoAnnotations.from_files(str(csv_path), str(bad_classes))
    csv_path, _ = write_charades(tmp_path, actions[:1] + [("ABC8EGO", "c001 0.5")])
    with pytest.raises(ValueError, match=r"line 3 .*'c001 0.5' is not '<class id> <start> <end>'"):
        CharadesEgoAnnotations.from_files(str(csv_path), str(classes_path))
    csv_path, _ = write_charades(tmp_path, actions[:1] + [("MISSING1EGO", "c001 0.0 1.0")])
    argv = common_args(model_dir, root / "videos", tmp_path, csv=csv_path, classes=classes_path)
    with pytest.raises(FileNotFoundError, match="MISSING1EGO.mp4"):
        cli_runs.eval_charades_ego(argv)
