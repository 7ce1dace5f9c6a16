"""The feature cache of the evaluation scripts: whatever the features depend on is in its key, nothing else is.

Rewriting the model's weights in the same folder, its processor settings, the annotation files or the frame count
must each re-encode (a stale feature file would silently give the old model's numbers); the same inputs again, or
a change the features do not depend on (the relevancy), must load the cached file. `cached_features` itself (key
order, corrupt files) is tested in tests/test_evaluation.py.
"""

import copy
import json
import os
import pickle

import pandas as pd
import pytest

from modeling_eva02at.data.ek100 import Ek100MirAnnotations
from modeling_eva02at.data.relevancy import build_relevancy, read_retrieval_csv, read_sentence_csv
from modeling_eva02at.evaluation.charades_ego import CharadesEgoAnnotations, evaluate_charades_ego
from modeling_eva02at.evaluation.ek100_mir import evaluate_ek100_mir
from modeling_eva02at.evaluation.encoding import EncodeSettings

from . import cli_runs
from .conftest import tiny_mir_model
from .video_helpers import make_frames, write_video


@pytest.fixture
def model_dir(tmp_path, mir_processor):
    """A model folder of its own per test: tests rewrite it."""
    folder = tmp_path / "model"
    tiny_mir_model(seed=1).save_pretrained(folder)
    mir_processor.save_pretrained(folder)
    return folder


@pytest.fixture
def test_csv(tmp_path, demo):
    """The demo's first 6 test clips and their captions, as files of this test's own (tests rewrite them)."""
    clips = pd.read_csv(demo.test_csv).head(6)
    clips.to_csv(tmp_path / "test.csv", index=False)
    sentences = pd.read_csv(demo.test_sentence_csv)
    sentences[sentences["narration_id"].isin(clips["narration_id"])].to_csv(tmp_path / "sentences.csv", index=False)
    return tmp_path / "test.csv"


def run_ek100(model_dir, demo, test_csv, cache, *extra):
    argv = [
        "--model",
        str(model_dir),
        "--video-root",
        demo.video_root,
        "--test-csv",
        str(test_csv),
        "--sentence-csv",
        str(test_csv.parent / "sentences.csv"),
        "--cache-dir",
        str(cache),
        "--batch-size",
        "6",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-progress",
        *extra,
    ]
    report = cli_runs.eval_ek100_mir(argv)
    return report["features_cache"]["hit"], report["features_cache"]["path"], report["metrics"]


def test_identical_inputs_reuse_the_cache(model_dir, demo, test_csv, tmp_path):
    hit, path, metrics = run_ek100(model_dir, demo, test_csv, tmp_path / "cache")
    written = os.stat(path).st_mtime_ns
    again_hit, again_path, again = run_ek100(model_dir, demo, test_csv, tmp_path / "cache")
    assert (hit, again_hit) == (False, True) and again_path == path and again == metrics
    assert os.stat(path).st_mtime_ns == written and os.listdir(tmp_path / "cache") == [os.path.basename(path)]

    # Re-scoring with another relevancy loads the features too: the relevancy is applied after the cache.
    relevancy = build_relevancy(read_retrieval_csv(test_csv), read_sentence_csv(test_csv.parent / "sentences.csv"))
    with open(tmp_path / "relevancy.pkl", "wb") as file:
        pickle.dump(relevancy * (relevancy == 1), file)  # another matrix of the same shape
    hit, again_path, _ = run_ek100(
        model_dir, demo, test_csv, tmp_path / "cache", "--relevancy", str(tmp_path / "relevancy.pkl")
    )
    assert hit and again_path == path


def test_rewritten_weights_in_the_same_folder_are_re_encoded(model_dir, demo, test_csv, tmp_path):
    _, first_path, first = run_ek100(model_dir, demo, test_csv, tmp_path / "cache")
    tiny_mir_model(seed=2).save_pretrained(model_dir)  # retrained into the same folder: same file names and sizes
    hit, path, metrics = run_ek100(model_dir, demo, test_csv, tmp_path / "cache")
    assert not hit and path != first_path and metrics != first


def test_changed_processor_settings_are_re_encoded(model_dir, demo, test_csv, tmp_path):
    _, first_path, first = run_ek100(model_dir, demo, test_csv, tmp_path / "cache")
    config_path = model_dir / "processor_config.json"
    config = json.loads(config_path.read_text())
    config["image_processor"]["image_mean"] = [0.5, 0.5, 0.5]
    config_path.write_text(json.dumps(config))
    hit, path, metrics = run_ek100(model_dir, demo, test_csv, tmp_path / "cache")
    assert not hit and path != first_path and metrics != first


def test_pixel_settings_alone_are_in_the_key(mir_processor, tmp_path):
    """The same model id with another processor setting: only the key's pixel settings tell the two apart."""
    root = tmp_path / "videos"
    os.makedirs(root)
    write_video(str(root / "V1EGO.mp4"), make_frames(20, 48, 64, seed=1), 10)
    (tmp_path / "test.csv").write_text("id,actions\nV1EGO,c000 0.0 1.0\n")
    (tmp_path / "classes.txt").write_text("c000 Holding some clothes\nc001 Opening a door\n")
    annotations = CharadesEgoAnnotations.from_files(str(tmp_path / "test.csv"), str(tmp_path / "classes.txt"))
    model = tiny_mir_model(seed=1).eval()
    settings = EncodeSettings(device="cpu", progress=False)
    other = copy.deepcopy(mir_processor)
    other.image_processor.image_std = [0.5, 0.5, 0.5]

    def run(processor):
        return evaluate_charades_ego(
            model, processor, annotations, str(root), settings, cache_dir=str(tmp_path / "c"), model_id="the same model"
        )

    assert not run(mir_processor).from_cache and run(mir_processor).from_cache
    changed = run(other)
    assert not changed.from_cache and len(os.listdir(tmp_path / "c")) == 2


def evaluate_in_process(model, processor, demo, test_csv, cache, model_id):
    """evaluate_ek100_mir as the script calls it, with a model already loaded (no folder to read)."""
    annotations = Ek100MirAnnotations.from_files(test_csv, test_csv.parent / "sentences.csv")
    settings = EncodeSettings(device="cpu", progress=False)
    return evaluate_ek100_mir(
        model,
        processor,
        annotations,
        demo.video_root,
        settings,
        cache_dir=str(cache),
        model_id=model_id,
        data_files=[str(test_csv)],
    )


def test_rewritten_annotation_file_is_re_encoded(mir_processor, demo, test_csv, tmp_path):
    model = tiny_mir_model(seed=1).eval()
    first = evaluate_in_process(model, mir_processor, demo, test_csv, tmp_path / "cache", "model")
    text = test_csv.read_text()
    narration = text.splitlines()[1].split(",")[8]
    test_csv.write_text(text.replace(f",{narration},", ",wash plate up,", 1))  # one clip's own narration
    again = evaluate_in_process(model, mir_processor, demo, test_csv, tmp_path / "cache", "model")
    assert not again.from_cache and again.features_path != first.features_path


def test_another_frame_count_is_re_encoded(mir_processor, demo, test_csv, tmp_path):
    model = tiny_mir_model(seed=1).eval()
    three = copy.deepcopy(mir_processor)
    three.image_processor.num_frames = 3
    first = evaluate_in_process(model, mir_processor, demo, test_csv, tmp_path / "cache", "model")
    again = evaluate_in_process(model, three, demo, test_csv, tmp_path / "cache", "model")
    assert not again.from_cache and again.features_path != first.features_path
    assert evaluate_in_process(model, three, demo, test_csv, tmp_path / "cache", "model").from_cache
