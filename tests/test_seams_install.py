"""Where the package meets the user's machine: a Hub repo installs with its card's install line (and says what is
missing), every model folder the package writes is pipeline-ready, and the small input checks on that path (a URL as
a video, a string of labels, a local folder as a Space's model, the text tower's projection size).

The fresh environments are built as tests/test_packaging.py builds its own, from links into this environment's
site-packages (no download); the fresh processes cannot import the package, so the folders load through their own
remote code alone.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from importlib.metadata import requires

import pytest
from packaging.requirements import Requirement

from modeling_eva02at import Eva02AtConfig, Eva02AtVideoProcessor
from modeling_eva02at.pipeline_eva02at import CUSTOM_PIPELINES, _check_labels

from . import cli_runs
from .conftest import REPO_ROOT, tiny_mir_model
from .test_packaging import installed_with_dependencies, linked_venv
from .video_helpers import write_numbered_video


REPO_ID = "someone/eva02at-tiny"
LABELS = ["cut onion", "wash pan", "open fridge"]
CARD_TEMPLATE = os.path.join(REPO_ROOT, "modeling_eva02at", "hub", "model_card.md")
PIPELINE_FILES = {"pipeline_eva02at.py", "video_processing_eva02at.py", "video_reading_eva02at.py"}


def card_install_line() -> list[str]:
    """The requirements of the card's `pip install` line."""
    with open(CARD_TEMPLATE) as handle:
        line = re.search(r"^pip install (.+)$", handle.read(), flags=re.MULTILINE).group(1)
    return shlex.split(line.split("#")[0])


def distribution_names(requirements) -> set[str]:
    return {Requirement(line).name.lower() for line in requirements}


# A fresh process that cannot import the package (a meta-path hook refuses it, should it be on the path at all).
REFUSE_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class RefusePackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_eva02at" or name.startswith("modeling_eva02at."):
                raise ImportError("the fresh process must not import the package")

    sys.meta_path.insert(0, RefusePackage())
    """
)

# Each folder of argv[2:] through `pipeline(model=folder, trust_remote_code=True)`, no task named: argv[1] is the video.
CLASSIFY = REFUSE_PACKAGE + textwrap.dedent(
    """
    from transformers import pipeline

    video, folders = sys.argv[1], sys.argv[2:]
    results = {}
    for folder in folders:
        classifier = pipeline(model=folder, trust_remote_code=True)
        results[folder] = {
            "pipeline_class": type(classifier).__module__ + "." + type(classifier).__name__,
            "scores": classifier(video, candidate_labels=LABELS),
        }
    results["package_imported"] = sorted(m for m in sys.modules if m.split(".")[0] == "modeling_eva02at")
    print("RESULT " + json.dumps(results))
    """
).replace("LABELS", repr(LABELS))


def run_fresh(python, script, *argv, cwd):
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([python, "-c", script, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def result_of(run) -> dict:
    assert run.returncode == 0, run.stderr[-4000:]
    line = next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def assert_scores(scores):
    assert sorted(entry["label"] for entry in scores) == sorted(LABELS)
    assert sum(entry["score"] for entry in scores) == pytest.approx(1.0, abs=1e-5)
    assert [entry["score"] for entry in scores] == sorted((entry["score"] for entry in scores), reverse=True)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "clip.mp4")
    write_numbered_video(path, 30)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, mir_processor):
    folder = str(tmp_path_factory.mktemp("model") / "saved")
    tiny_mir_model(seed=3).save_pretrained(folder)
    mir_processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def repo_dir(model_dir, tmp_path_factory):
    """The --dry-run folder of examples/push_to_hub.py."""
    folder = str(tmp_path_factory.mktemp("repo") / "eva02at-tiny")
    cli_runs.push_to_hub(["--model", model_dir, "--repo-id", REPO_ID, "--dry-run", "--output", folder])
    return folder


# ---------------------------------------------------------------------------------------------------------------------
# A Hub repo that installs
# ---------------------------------------------------------------------------------------------------------------------


def test_the_repo_ships_requirements_the_card_names_with_the_package_bounds(repo_dir, capsys):
    from modeling_eva02at.hub.assemble import REPO_REQUIREMENTS

    with open(os.path.join(repo_dir, "requirements.txt")) as handle:
        lines = [line for line in handle.read().splitlines() if line and not line.startswith("#")]
    assert lines == list(REPO_REQUIREMENTS)
    # The bounds are the package's own (pyproject.toml), not new pins.
    package = [Requirement(line) for line in requires("modeling-eva02at") if "extra ==" not in line]
    assert all(Requirement(line) in package for line in lines), lines
    assert distribution_names(lines) == {"transformers", "torch", "numpy", "pillow", "av", "decord"}
    assert distribution_names(card_install_line()) == distribution_names(lines)
    assert "transformers>=5.0,<6" in card_install_line()

    cli_runs.push_to_hub(["--model", repo_dir, "--repo-id", REPO_ID, "--dry-run", "--output", repo_dir + "-again"])
    assert "requirements.txt" in capsys.readouterr().out  # the dry run's listing


@pytest.mark.slow
def test_without_pillow_the_processor_says_to_install_it(repo_dir, tmp_path):
    """The card's install line without Pillow: the model loads and saves (a pipeline-ready folder), the processor
    names the missing package instead of transformers' "Received a Eva02AtVideoProcessor for argument
    image_processor, but a ImageProcessingMixin was expected"."""
    without = [line for line in card_install_line() if Requirement(line).name != "pillow"]
    python = linked_venv(tmp_path, installed_with_dependencies(without))
    script = REFUSE_PACKAGE + textwrap.dedent(
        """
        import importlib.util
        from transformers import AutoModel, AutoProcessor

        assert importlib.util.find_spec("PIL") is None
        AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).save_pretrained(sys.argv[2])
        print("model loaded and saved")
        AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)
        """
    )
    saved = tmp_path / "saved"
    run = run_fresh(python, script, repo_dir, str(saved), cwd=tmp_path)
    assert run.returncode != 0 and "model loaded and saved" in run.stdout, run.stderr[-3000:]
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: The EVA02-AT processor needs Pillow") and last.endswith("pip install pillow")
    assert "ImageProcessingMixin" not in run.stderr
    assert json.loads((saved / "config.json").read_text())["custom_pipelines"] == CUSTOM_PIPELINES
    assert PIPELINE_FILES <= set(os.listdir(saved))


@pytest.mark.slow
def test_the_card_install_line_runs_model_processor_and_pipeline(repo_dir, video, tmp_path):
    python = linked_venv(tmp_path, installed_with_dependencies(card_install_line()))
    script = CLASSIFY + textwrap.dedent(
        """
        import importlib.metadata, torch
        from transformers import AutoModel, AutoProcessor

        try:  # not installed in this environment, and the hook refuses a copy on the path
            importlib.metadata.distribution("modeling-eva02at")
            raise AssertionError("modeling-eva02at is installed in the fresh environment")
        except importlib.metadata.PackageNotFoundError:
            pass
        model = AutoModel.from_pretrained(folders[0], trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(folders[0], trust_remote_code=True)
        with torch.no_grad():
            outputs = model(**processor(text=LABELS, videos=video))
        # Saved from remote code (a model fine-tuned from the Hub, say): a pipeline-ready folder too.
        model.save_pretrained("resaved")
        processor.save_pretrained("resaved")
        resaved = pipeline(model="resaved", trust_remote_code=True)(video, candidate_labels=LABELS)
        print("RESULT " + json.dumps({"logits": outputs.logits_per_video.tolist(), "resaved": resaved}))
        """
    ).replace("LABELS", repr(LABELS))
    run = run_fresh(python, script, video, repo_dir, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-4000:]
    pipeline_result, model_result = [
        json.loads(line[len("RESULT ") :]) for line in run.stdout.splitlines() if line.startswith("RESULT ")
    ]
    assert pipeline_result["package_imported"] == []
    assert pipeline_result[repo_dir]["pipeline_class"].endswith("pipeline_eva02at.ZeroShotVideoClassificationPipeline")
    assert_scores(pipeline_result[repo_dir]["scores"])
    assert len(model_result["logits"]) == 1 and len(model_result["logits"][0]) == len(LABELS)
    resaved, original = (
        {entry["label"]: entry["score"] for entry in scores}
        for scores in (model_result["resaved"], pipeline_result[repo_dir]["scores"])
    )
    assert resaved == pytest.approx(original, abs=1e-6)


def test_video_files_without_a_decoder_say_what_to_install(monkeypatch, video):
    from modeling_eva02at import video_reading_eva02at

    monkeypatch.setattr(video_reading_eva02at, "decord", None)
    monkeypatch.setattr(video_reading_eva02at, "av", None)
    with pytest.raises(ImportError, match=r"neither is installed: pip install av \(and decord"):
        Eva02AtVideoProcessor()(video)


# ---------------------------------------------------------------------------------------------------------------------
# Every model folder the package writes is pipeline-ready
# ---------------------------------------------------------------------------------------------------------------------


def test_a_saved_model_or_config_carries_the_pipeline(tmp_path):
    model = tiny_mir_model(seed=1)
    model.save_pretrained(tmp_path / "model")
    model.config.save_pretrained(tmp_path / "config")
    for folder in (tmp_path / "model", tmp_path / "config"):
        with open(folder / "config.json") as handle:
            assert json.load(handle)["custom_pipelines"] == CUSTOM_PIPELINES, folder
        assert PIPELINE_FILES <= set(os.listdir(folder)), folder


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    """A 2-step examples/train_mir.py run on a small demo dataset, saving checkpoint-2 and the final model."""
    from modeling_eva02at.demo.ek100 import make_demo_dataset

    root = tmp_path_factory.mktemp("trained")
    demo = make_demo_dataset(root / "demo", seed=0, num_train=16, num_test=8)
    output = root / "run"
    cli_runs.train_mir(
        [
            "--train-csv",
            demo.train_csv,
            "--sentence-csv",
            demo.train_sentence_csv,
            "--video-root",
            demo.video_root,
            "--model",
            os.path.join(REPO_ROOT, "tests", "fixtures", "tiny_mir_config"),
            "--init",
            "random",
            "--num-frames",
            "2",
            "--output-dir",
            str(output),
            "--max-steps",
            "2",
            "--per-device-train-batch-size",
            "8",
            "--use-cpu",
            "--save-strategy",
            "steps",
            "--save-steps",
            "2",
            "--report-to",
            "none",
            "--disable-tqdm",
            "true",
            "--dataloader-num-workers",
            "0",
        ]
    )
    return str(output)


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory):
    """A converted timm checkpoint (test_convert's tiny vision sizes) with a text tower of CLIP's vocabulary, so that
    the real tokenizer's ids fit it, and the processor files of hub_configs/eva02at-b16."""
    from modeling_eva02at.conversion.convert import convert_checkpoint

    from .test_convert import make_source, save, tiny_config

    root = tmp_path_factory.mktemp("converted")
    config = tiny_config()
    config.text_config.vocab_size, config.text_config.max_position_embeddings = 49408, 77
    config.text_config.bos_token_id, config.text_config.eos_token_id, config.text_config.pad_token_id = (
        49406,
        49407,
        49407,
    )
    config.save_pretrained(root / "config")
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16", name), root / "config" / name)
    save(make_source("timm", seed=2), root / "timm.safetensors")
    convert_checkpoint("timm", root / "timm.safetensors", root / "config", root / "converted")
    return str(root / "converted")


@pytest.mark.slow
def test_training_outputs_checkpoints_and_conversions_load_as_pipelines(trained_dir, converted_dir, video, tmp_path):
    folders = [trained_dir, os.path.join(trained_dir, "checkpoint-2"), converted_dir]
    output = result_of(run_fresh(sys.executable, CLASSIFY, video, *folders, cwd=tmp_path))
    assert output.pop("package_imported") == []
    for folder in folders:
        assert output[folder]["pipeline_class"].startswith("transformers_modules."), folder
        assert_scores(output[folder]["scores"])
        with open(os.path.join(folder, "config.json")) as handle:
            assert json.load(handle)["custom_pipelines"] == CUSTOM_PIPELINES, folder


# ---------------------------------------------------------------------------------------------------------------------
# Small checks on the way
# ---------------------------------------------------------------------------------------------------------------------


def test_a_url_as_a_video_is_not_a_missing_file():
    processor = Eva02AtVideoProcessor()
    for url in ("https://example.com/videos/clip.mp4", "http://example.com/clip.mp4"):
        with pytest.raises(ValueError, match=r"is a URL: videos are not downloaded. Download the file first"):
            processor(url)


def test_a_string_of_labels_gets_the_list_it_means():
    with pytest.raises(TypeError, match=re.escape("write candidate_labels=['cut onion', 'wash pan'], one string")):
        _check_labels("cut onion, wash pan")
    with pytest.raises(TypeError, match=re.escape("write candidate_labels=['cut onion']")):
        _check_labels("cut onion")


def test_the_text_configs_projection_dim_is_the_models(tmp_path):
    config = Eva02AtConfig(projection_dim=64)
    assert config.text_config.projection_dim == 64
    config.projection_dim = 32  # changed after building: the saved file still shows one size
    config.save_pretrained(tmp_path / "changed")
    saved = json.loads((tmp_path / "changed" / "config.json").read_text())
    assert saved["projection_dim"] == saved["text_config"]["projection_dim"] == 32

    # A config.json written before: CLIPTextConfig's default 512 next to the model's 256.
    saved["projection_dim"], saved["text_config"]["projection_dim"] = 256, 512
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(json.dumps(saved))
    loaded = Eva02AtConfig.from_pretrained(tmp_path / "old")
    assert loaded.projection_dim == loaded.text_config.projection_dim == 256


def test_a_space_takes_a_hub_model_id_not_a_local_folder(model_dir, tmp_path):
    argv = ["--space-id", "someone/space", "--dry-run", "--output", str(tmp_path / "space")]
    with pytest.raises(ValueError, match=r"is a local folder, and a Space loads its model from the Hub: push it first"):
        cli_runs.push_space(["--model", model_dir, *argv])
    with pytest.raises(ValueError, match=r"must be a Hub model id: invalid repo id 'no-owner'.*push_to_hub.py"):
        cli_runs.push_space(["--model", "no-owner", *argv])
    assert not (tmp_path / "space").exists()
