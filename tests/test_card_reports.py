"""Honest numbers on the model card (issue 23, item 4).

An eval report (examples/eval_*.py --output-json) records the model's fingerprint, its annotation files (name,
SHA-256, whether they are the demo's synthetic data) and the frame count. The push refuses a report of another model
and a report that does not say what it measured, never puts demo numbers in the model-index under a benchmark's name,
and shows each result's frame count; a genuine report of the pushed model is published. The card's direction names
are those of what each metric computes.
"""

import hashlib
import json
import os
import shutil
from unittest import mock

import numpy as np
import pytest
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results

from modeling_eva02at import Eva02AtConfig
from modeling_eva02at.evaluation.fingerprint import fingerprint_identity, model_fingerprint
from modeling_eva02at.evaluation.metrics import ek100_mir_metrics
from modeling_eva02at.evaluation.results import EvaluationResult
from modeling_eva02at.hub import push_checkpoint, read_eval_reports, render_model_card

from . import cli_runs
from .conftest import DATA_DIR, REPO_ROOT, tiny_mir_model


REPO_ID = "someone/eva02at-tiny"
EK100_TEST_CSV = os.path.join(DATA_DIR, "ek100", "EPIC_100_retrieval_test.csv")
EK100_SENTENCE_CSV = os.path.join(DATA_DIR, "ek100", "EPIC_100_retrieval_test_sentence.csv")
B16_CONFIG = os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16")


def save_model(folder, seed, processor) -> str:
    tiny_mir_model(seed=seed).save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory, mir_processor):
    root = tmp_path_factory.mktemp("models")
    return {"a": save_model(root / "a", 3, mir_processor), "b": save_model(root / "b", 4, mir_processor)}


@pytest.fixture(scope="module")
def demo_report(models, demo, tmp_path_factory):
    """examples/eval_ek100_mir.py's report of model a on the demo's synthetic EK-100 test set (2-frame clips)."""
    path = str(tmp_path_factory.mktemp("reports") / "ek100_mir_demo.json")
    argv = ["--model", models["a"], "--video-root", demo.video_root, "--test-csv", demo.test_csv]
    argv += ["--sentence-csv", demo.test_sentence_csv, "--batch-size", "8", "--num-workers", "0", "--device", "cpu"]
    cli_runs.eval_ek100_mir([*argv, "--dtype", "float32", "--no-progress", "--output-json", path])
    return path


def genuine_report(path, model: str, metrics: dict, num_frames: int = 2) -> str:
    """A report as examples/eval_ek100_mir.py writes it for `model` on the real EK-100 test annotations (tests/data
    holds them; the videos are not needed to write the report's record of what was measured)."""
    report = EvaluationResult("ek100_mir", metrics, num_videos=9668, num_texts=3842).to_json_dict(
        model_fingerprint=model_fingerprint(model),
        annotation_files=[EK100_TEST_CSV, EK100_SENTENCE_CSV],
        num_frames=num_frames,
    )
    with open(path, "w") as handle:
        json.dump(report, handle)
    return str(path)


METRICS = {
    "vis2txt_mAP": 0.301,
    "txt2vis_mAP": 0.252,
    "avg_mAP": 0.2765,
    "vis2txt_nDCG": 0.31,
    "txt2vis_nDCG": 0.29,
    "avg_nDCG": 0.30,
}


def push_dry_run(model, output, *reports):
    cli_runs.push_to_hub(
        ["--model", model, "--repo-id", REPO_ID, "--dry-run", "--output", str(output), "--eval-json", *reports]
    )
    return os.path.join(output, "README.md")


def model_index(readme: str) -> list:
    metadata = metadata_load(readme)
    return model_index_to_eval_results(metadata["model-index"])[1] if "model-index" in metadata else []


# ---------------------------------------------------------------------------------------------------------------------


def test_an_eval_report_records_the_model_its_annotation_files_and_the_frame_count(models, demo, demo_report):
    with open(demo_report) as handle:
        report = json.load(handle)
    assert fingerprint_identity(report["model_fingerprint"]) == fingerprint_identity(model_fingerprint(models["a"]))
    assert report["model_fingerprint"]["model"]["path"] == os.path.abspath(models["a"])
    recorded = {entry["name"]: entry for entry in report["annotations"]}
    assert set(recorded) == {os.path.basename(demo.test_csv), os.path.basename(demo.test_sentence_csv)}
    for path in (demo.test_csv, demo.test_sentence_csv):
        with open(path, "rb") as handle:
            assert recorded[os.path.basename(path)]["sha256"] == hashlib.sha256(handle.read()).hexdigest()
        assert recorded[os.path.basename(path)]["demo"] is True
    assert report["demo_data"] is True
    assert report["settings"]["num_frames"] == 2 and report["pixels"]["num_frames"] == 2


def test_a_report_of_another_model_is_refused_naming_the_file_and_what_differs(models, demo_report, tmp_path):
    with pytest.raises(ValueError) as refused:
        push_dry_run(models["b"], tmp_path / "repo", demo_report)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"eval JSON {demo_report} measured another model than {models['b']}")
    assert "the weights differ" in message
    assert not (tmp_path / "repo").exists()

    # The Trainer's pushes check too, before any upload.
    with mock.patch("modeling_eva02at.hub.push.HfApi") as api:
        with pytest.raises(ValueError, match="measured another model"):
            push_checkpoint(models["b"], REPO_ID, token="hf_test", eval_json=[demo_report])
    api.assert_not_called()


def test_demo_numbers_never_enter_the_model_index(models, demo_report, tmp_path):
    readme = push_dry_run(models["a"], tmp_path / "repo", demo_report)  # the model it measured: accepted
    assert model_index(readme) == []  # the tiny shape has no paper numbers, and demo numbers stay out
    text = ModelCard.load(readme).text
    assert (
        "synthetic demo data in the EPIC-Kitchens-100 MIR format (not EPIC-Kitchens-100 MIR) | this checkpoint | 2 |"
        in text
    )
    assert "Not evaluated yet on a benchmark's data" in text

    # On a paper-size card the model-index holds the paper's numbers only, attributed to the paper.
    card = render_model_card(Eva02AtConfig.from_pretrained(B16_CONFIG), REPO_ID, read_eval_reports([demo_report]))
    (tmp_path / "README.md").write_text(card)
    results = model_index(tmp_path / "README.md")
    assert results and all(r.source_url == "https://arxiv.org/abs/2506.14356" for r in results)
    assert all(not r.dataset_config.startswith("this checkpoint") for r in results)


def test_a_genuine_report_of_the_same_model_is_published_with_its_frame_count(models, tmp_path):
    report = genuine_report(tmp_path / "ek100_mir.json", models["a"], METRICS)
    with open(report) as handle:
        assert json.load(handle)["demo_data"] is False
    copy = tmp_path / "copy"  # the same model elsewhere, as a training folder and its pushed repo are
    shutil.copytree(models["a"], copy)
    readme = push_dry_run(str(copy), tmp_path / "repo", report)
    own = {r.metric_name: r for r in model_index(readme)}
    assert own["avg mAP"].metric_value == 27.65 and own["avg mAP"].dataset_name == "EPIC-Kitchens-100 MIR"
    assert own["avg mAP"].dataset_config == "this checkpoint, 2 frames"
    assert "| EPIC-Kitchens-100 MIR | this checkpoint | 2 | avg mAP | 27.65 |" in ModelCard.load(readme).text


def test_a_report_that_does_not_say_what_it_measured_is_refused(tmp_path):
    old = {  # what examples/eval_ek100_mir.py --output-json wrote before reports recorded the model and the data
        "task": "ek100_mir",
        "metrics": METRICS,
        "num_videos": 24,
        "num_texts": 24,
        "features_cache": {"path": None, "hit": False},
        "seconds": 1.0,
        "settings": {"model": "runs/mir", "num_frames": 4},
    }
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"does not record which model, annotation files and frame count .* re-run "):
        read_eval_reports([str(tmp_path / "old.json")])


def test_card_direction_names_are_those_of_what_each_metric_computes(models, tmp_path):
    """An asymmetric case: the rows (videos as queries) rank perfectly, the columns (texts as queries) do not."""
    similarity = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.3]])
    relevancy = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])

    def mean_ap(scores, relevant):  # docs/metrics.md, with binary relevancy: textbook AP
        values = []
        for row, rel in zip(scores, relevant):
            ranked = rel[np.argsort(-row, kind="stable")]
            hits = np.cumsum(ranked)
            values.append(np.sum(ranked * hits / np.arange(1, len(ranked) + 1)) / ranked.sum())
        return float(np.mean(values))

    video_queries, text_queries = mean_ap(similarity, relevancy), mean_ap(similarity.T, relevancy.T)
    assert abs(video_queries - text_queries) > 0.05
    metrics = ek100_mir_metrics(similarity, relevancy)
    report = genuine_report(tmp_path / "ek100_mir.json", models["a"], metrics)
    card = render_model_card(Eva02AtConfig.from_pretrained(B16_CONFIG), REPO_ID, read_eval_reports([report]))
    (tmp_path / "README.md").write_text(card)
    own = {
        r.metric_name: r.metric_value for r in model_index(tmp_path / "README.md") if "checkpoint" in r.dataset_config
    }
    assert own["video-to-text mAP"] == round(100 * video_queries, 2)
    assert own["text-to-video mAP"] == round(100 * text_queries, 2)


def test_every_demo_generator_marks_its_annotation_files_and_nothing_else(demo, tmp_path):
    from modeling_eva02at.demo import ek100 as demo_ek100
    from modeling_eva02at.demo.charades_ego import make_charades_ego_demo
    from modeling_eva02at.demo.egoclip import make_egoclip_demo
    from modeling_eva02at.evaluation import results
    from modeling_eva02at.evaluation.results import is_demo_annotation

    assert results.DEMO_DATA_MARKER == demo_ek100.DEMO_DATA_MARKER  # one name, defined in both layers
    charades = make_charades_ego_demo(tmp_path / "charades", num_train_videos=2, num_test_videos=2)
    egoclip = make_egoclip_demo(tmp_path / "egoclip", num_train=8, num_test=8, num_egomcq=4)
    generated = [demo.test_csv, demo.test_sentence_csv, demo.train_csv, charades.test_csv, charades.classes]
    generated += [egoclip.egomcq_json, egoclip.egoclip_tsv, egoclip.ek100.test_csv]
    assert all(is_demo_annotation(path) for path in generated)
    assert not is_demo_annotation(EK100_TEST_CSV)

    moved = tmp_path / "moved"  # the demo folder copied elsewhere is still the demo's
    shutil.copytree(os.path.dirname(charades.test_csv), moved, ignore=shutil.ignore_patterns("CharadesEgo_v1_480"))
    assert is_demo_annotation(str(moved / os.path.basename(charades.test_csv)))
    shutil.copy(EK100_TEST_CSV, moved / os.path.basename(charades.test_csv))  # a real file in its place is not
    assert not is_demo_annotation(str(moved / os.path.basename(charades.test_csv)))
