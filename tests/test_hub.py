"""The Hub package: the zero-shot video pipeline, the assembled repo folder (loaded in a fresh process that cannot
import the package), the upload (HfApi patched), the model card and its snippets, and the Endpoints handler."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from unittest import mock

import huggingface_hub
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from huggingface_hub import EvalResult, ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image
from transformers import pipeline

from modeling_eva02at import REMOTE_CODE_FILES, Eva02AtConfig, Eva02AtModel, Eva02AtProcessor, VideoDecodeError
from modeling_eva02at.evaluation.fingerprint import fingerprint_identity, model_fingerprint
from modeling_eva02at.evaluation.results import EvaluationResult
from modeling_eva02at.hub import (
    assemble_repo_folder,
    check_repo_folder,
    push_checkpoint,
    push_to_hub,
    read_eval_reports,
    render_model_card,
)

from . import cli_runs
from .conftest import REPO_ROOT, tiny_mir_model
from .video_helpers import make_frames, write_numbered_video


REPO_ID = "someone/eva02at-tiny"
LABELS = ["cut onion", "wash pan", "open fridge"]
TEMPLATE = "a video of {}."
REPO_FILES = sorted(
    [
        "README.md",
        "config.json",
        "handler.py",
        "model.safetensors",
        "processor_config.json",
        "requirements.txt",
        "tokenizer.json",
        "tokenizer_config.json",
        *REMOTE_CODE_FILES,
    ]
)


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny model folder, its assembled repo, two videos
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, mir_processor):
    folder = str(tmp_path_factory.mktemp("model"))
    tiny_mir_model(seed=3).save_pretrained(folder)
    mir_processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def repo_dir(model_dir, tmp_path_factory):
    """The --dry-run folder of the command line."""
    folder = str(tmp_path_factory.mktemp("repo") / "eva02at-tiny")
    assert cli_runs.push_to_hub(["--model", model_dir, "--repo-id", REPO_ID, "--dry-run", "--output", folder]) is None
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """clip.mp4 and other.mp4 (3 s at 30 fps, 64 x 48, different content), in one folder."""
    folder = tmp_path_factory.mktemp("videos")
    write_numbered_video(str(folder / "clip.mp4"), 90)
    write_numbered_video(str(folder / "other.mp4"), 90, first_number=1000, noise=40.0)
    return {"dir": str(folder), "clip": str(folder / "clip.mp4"), "other": str(folder / "other.mp4")}


@pytest.fixture(scope="module")
def model(model_dir):
    return Eva02AtModel.from_pretrained(model_dir).eval()


@pytest.fixture(scope="module")
def pipe(model, mir_processor):
    return pipeline("zero-shot-video-classification", model=model, processor=mir_processor, device="cpu")


def expected_scores(model, processor, labels, template=TEMPLATE, **video_kwargs) -> dict:
    """softmax over the labels of scale * cos(video, caption), computed with the model directly."""
    text = processor(text=[template.format(label) for label in labels])
    pixels = processor(**video_kwargs)["pixel_values_videos"]
    with torch.no_grad():
        text_embeds = F.normalize(model.get_text_features(**text).pooler_output, dim=-1)
        video_embeds = F.normalize(model.get_video_features(pixels).pooler_output, dim=-1)
        probabilities = (model.scale() * video_embeds @ text_embeds.T)[0].softmax(-1)
    return dict(zip(labels, probabilities.tolist()))


def as_dict(result) -> dict:
    return {entry["label"]: entry["score"] for entry in result}


def assert_sorted(result, labels=LABELS):
    assert sorted(entry["label"] for entry in result) == sorted(labels)
    scores = [entry["score"] for entry in result]
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# The pipeline, in process
# ---------------------------------------------------------------------------------------------------------------------


def test_pipeline_scores_a_video_file(pipe, model, mir_processor, videos):
    result = pipe(videos["clip"], candidate_labels=LABELS, hypothesis_template=TEMPLATE)
    assert_sorted(result)
    expected = expected_scores(model, mir_processor, LABELS, videos=videos["clip"])
    assert as_dict(result) == pytest.approx(expected, abs=1e-6)


def test_pipeline_takes_frames_in_memory(pipe, model, mir_processor):
    frames = make_frames(12, 48, 64, noise=20.0)
    expected = expected_scores(model, mir_processor, LABELS, videos=frames)
    for video in (frames, torch.from_numpy(frames), [Image.fromarray(frame) for frame in frames]):
        result = pipe(video, candidate_labels=LABELS)
        assert_sorted(result)
        assert as_dict(result) == pytest.approx(expected, abs=1e-6)


def test_pipeline_clip_range_in_seconds_and_ek100_timestamps(pipe, model, mir_processor, videos):
    seconds = pipe(videos["other"], candidate_labels=LABELS, start=1.0, end=2.5)
    stamps = pipe(videos["other"], candidate_labels=LABELS, start="00:00:01.00", end="00:00:02.50")
    assert seconds == stamps
    expected = expected_scores(model, mir_processor, LABELS, videos=videos["other"], start=1.0, end=2.5)
    assert as_dict(seconds) == pytest.approx(expected, abs=1e-6)
    whole = pipe(videos["other"], candidate_labels=LABELS)
    assert as_dict(whole) != pytest.approx(as_dict(seconds), abs=1e-6), "start/end did not reach the processor"
    # Frames in memory take a range with their frame rate.
    frames = make_frames(60, noise=20.0)
    in_memory = pipe(frames, candidate_labels=LABELS, start=0.5, end=1.5, video_fps=30)
    assert as_dict(in_memory) == pytest.approx(as_dict(pipe(frames[15:45], candidate_labels=LABELS)), abs=1e-6)


def test_pipeline_batch_encodes_the_captions_once(pipe, videos):
    singles = [
        pipe(path, candidate_labels=LABELS, start=start)
        for path, start in ((videos["clip"], 0), (videos["other"], "00:00:01.00"), (videos["clip"], 2))
    ]
    with mock.patch.object(pipe.model, "get_text_features", wraps=pipe.model.get_text_features) as text_tower:
        batch = pipe(
            [videos["clip"], videos["other"], videos["clip"]], candidate_labels=LABELS, start=[0, "00:00:01.00", 2]
        )
    assert text_tower.call_count == 1
    assert len(batch) == 3
    for result, single in zip(batch, singles):
        assert_sorted(result)
        assert as_dict(result) == pytest.approx(as_dict(single), abs=1e-6)
    # A batch of one is still a batch; batch_size > 1 gives the same scores.
    batch_of_one = pipe([videos["clip"]], candidate_labels=LABELS)
    assert len(batch_of_one) == 1 and isinstance(batch_of_one[0], list)
    batched = pipe([videos["clip"], videos["other"]], candidate_labels=LABELS, batch_size=2)
    assert as_dict(batched[0]) == pytest.approx(as_dict(pipe(videos["clip"], candidate_labels=LABELS)), abs=1e-5)


def test_pipeline_errors(pipe, videos, tmp_path):
    with pytest.raises(ValueError, match="candidate_labels is empty"):
        pipe(videos["clip"], candidate_labels=[])
    with pytest.raises(ValueError, match="candidate_labels is required"):
        pipe(videos["clip"])
    with pytest.raises(TypeError, match=r"write candidate_labels=\['cut onion'\]"):
        pipe(videos["clip"], candidate_labels="cut onion")
    with pytest.raises(ValueError, match="repeats 'wash pan'"):
        pipe(videos["clip"], candidate_labels=["wash pan", "wash pan"])
    with pytest.raises(ValueError, match=r'has no "\{\}" for the label'):
        pipe(videos["clip"], candidate_labels=LABELS, hypothesis_template="a video of a thing")
    with pytest.raises(ValueError, match="is not a time"):
        pipe(videos["clip"], candidate_labels=LABELS, start="one minute")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['candidate_label'\]"):
        pipe(videos["clip"], candidate_labels=LABELS, candidate_label=["x"])
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_text("these are not frames")
    with pytest.raises(VideoDecodeError, match="'notes.mp4': not a readable video"):
        pipe(str(not_a_video), candidate_labels=LABELS)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        pipe(str(tmp_path / "missing.mp4"), candidate_labels=LABELS)


def test_registered_pipeline_saves_custom_pipelines_and_its_file(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    with open(tmp_path / "config.json") as file:
        custom = json.load(file)["custom_pipelines"]
    assert custom["zero-shot-video-classification"]["impl"] == "pipeline_eva02at.ZeroShotVideoClassificationPipeline"
    assert (tmp_path / "pipeline_eva02at.py").is_file()


# ---------------------------------------------------------------------------------------------------------------------
# The assembled folder
# ---------------------------------------------------------------------------------------------------------------------


def test_dry_run_folder_holds_exactly_the_repo_files(repo_dir):
    assert sorted(os.listdir(repo_dir)) == REPO_FILES
    assert check_repo_folder(repo_dir) == []
    with open(os.path.join(repo_dir, "config.json")) as file:
        config = json.load(file)
    assert config["auto_map"] == {
        "AutoConfig": "configuration_eva02at.Eva02AtConfig",
        "AutoModel": "modeling_eva02at.Eva02AtModel",
    }
    assert config["custom_pipelines"] == {
        "zero-shot-video-classification": {
            "impl": "pipeline_eva02at.ZeroShotVideoClassificationPipeline",
            "pt": ["AutoModel"],
            "tf": [],
            "type": "multimodal",
        }
    }
    with open(os.path.join(REPO_ROOT, "modeling_eva02at", "hub", "handler.py")) as source:
        with open(os.path.join(repo_dir, "handler.py")) as copy:
            assert copy.read() == source.read()


def test_the_pushed_repo_and_its_download_are_the_model_they_were_assembled_from(
    model_dir, repo_dir, tmp_path, monkeypatch
):
    """A search index or feature cache made with the training folder serves the Hub repo pushed from it and the
    repo's download (a Space loads the Hub id): assembly adds `custom_pipelines` and fills the sub-configs' dtype,
    which say how to load the model, not what it computes."""
    identity = fingerprint_identity(model_fingerprint(model_dir))
    assert set(identity["model"]) == {"weights", "config", "tokenizer"}
    assert json.load(open(os.path.join(repo_dir, "config.json"))) != json.load(
        open(os.path.join(model_dir, "config.json"))
    )
    assert fingerprint_identity(model_fingerprint(repo_dir)) == identity

    cache = tmp_path / "hub"  # the Hub cache's layout after downloading REPO_ID
    repo_cache = cache / ("models--" + REPO_ID.replace("/", "--"))
    shutil.copytree(repo_dir, repo_cache / "snapshots" / ("0" * 40))
    (repo_cache / "refs").mkdir()
    (repo_cache / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    downloaded = model_fingerprint(REPO_ID)
    assert downloaded["model"]["path"] == REPO_ID and fingerprint_identity(downloaded) == identity
    assert model_fingerprint("someone/never-downloaded") == {"model": "someone/never-downloaded"}

    changed = tmp_path / "changed"
    shutil.copytree(model_dir, changed)
    config = json.loads((changed / "config.json").read_text())
    config["vision_config"]["use_temporal_rope"] = not config["vision_config"]["use_temporal_rope"]
    (changed / "config.json").write_text(json.dumps(config))
    assert fingerprint_identity(model_fingerprint(str(changed))) != identity  # a setting that changes the embeddings


def test_assembly_refuses_bad_inputs(model_dir, repo_dir, tmp_path):
    with pytest.raises(ValueError, match="invalid repo id 'no-owner'"):
        assemble_repo_folder(model_dir, str(tmp_path / "a"), "no-owner")
    with pytest.raises(FileExistsError, match="is not empty"):
        assemble_repo_folder(model_dir, repo_dir, REPO_ID)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(os.path.join(model_dir, "config.json"), bare)
    shutil.copy(os.path.join(model_dir, "model.safetensors"), bare)
    with pytest.raises(FileNotFoundError, match="has no processor_config.json"):
        assemble_repo_folder(str(bare), str(tmp_path / "b"), REPO_ID)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# The fresh process: the package cannot be imported (a meta-path hook refuses it), so the repo folder loads through
# remote code alone. It runs the card's snippets, then the computations the test compares with the package's.
REFUSE_PACKAGE = textwrap.dedent(
    """
    import importlib.abc, sys

    class RefusePackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "modeling_eva02at" or name.startswith("modeling_eva02at."):
                raise ImportError("the fresh process must not import the package")

    sys.meta_path.insert(0, RefusePackage())
    """
)
COMPARE = textwrap.dedent(
    """
    import base64, json
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoProcessor, pipeline

    from handler import EndpointHandler  # the clone's handler.py

    repo, clip, other, labels = sys.argv[1:5]
    labels = json.loads(labels)
    model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(repo, trust_remote_code=True)
    classifier = pipeline(model=repo, trust_remote_code=True)
    with torch.no_grad():
        video = F.normalize(model.get_video_features(**processor(videos=[clip, other])).pooler_output, dim=-1)
        text = F.normalize(model.get_text_features(**processor(text=labels)).pooler_output, dim=-1)
    handler = EndpointHandler(repo)
    with open(clip, "rb") as file:
        data = file.read()
    print("RESULT " + json.dumps({
        "model_class": type(model).__module__,
        "pipeline_class": type(classifier).__module__ + "." + type(classifier).__name__,
        "video_embeds": video.tolist(),
        "text_embeds": text.tolist(),
        "pipeline": classifier([clip, other], candidate_labels=labels, start=[0, 1.0], end=[None, 2.5]),
        "handler_base64": handler({"inputs": base64.b64encode(data).decode(),
                                   "parameters": {"candidate_labels": labels}}),
        "handler_bytes": handler({"inputs": data, "parameters": {"candidate_labels": labels, "start": 1.0}}),
        "handler_texts": handler({"inputs": {"texts": labels}}),
        "package_imported": sorted(m for m in sys.modules if m.split(".")[0] == "modeling_eva02at"),
    }))
    """
)


def card_snippets(readme: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)


@pytest.fixture(scope="module")
def fresh_process(repo_dir, videos, tmp_path_factory):
    """Run the card's ```python blocks (the repo id replaced by the folder) and COMPARE in one fresh process, from a
    clone of the repo folder holding the two videos (the handler snippet runs in a clone, as documented)."""
    clone = tmp_path_factory.mktemp("fresh") / "clone"
    shutil.copytree(repo_dir, clone)
    shutil.copy(videos["clip"], clone / "clip.mp4")
    shutil.copy(videos["other"], clone / "other.mp4")
    snippets = "".join(
        f"print('--- snippet {index}')\ndef snippet_{index}():\n{textwrap.indent(block, '    ')}snippet_{index}()\n"
        for index, block in enumerate(card_snippets((clone / "README.md").read_text()))
    ).replace(REPO_ID, str(clone))
    script = REFUSE_PACKAGE + snippets + COMPARE
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    # `python -c` puts the working directory (the clone) first on sys.path, and nothing else of this checkout.
    result = subprocess.run(
        [sys.executable, "-c", script, str(clone), "clip.mp4", "other.mp4", json.dumps(LABELS)],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return {"stdout": result.stdout, "script": script, "clone": str(clone)}


def test_repo_loads_in_a_fresh_process_and_matches_the_package(fresh_process, repo_dir, videos):
    line = next(line for line in fresh_process["stdout"].splitlines() if line.startswith("RESULT "))
    output = json.loads(line[len("RESULT ") :])
    assert output["package_imported"] == []
    assert output["model_class"].startswith("transformers_modules.")
    assert output["pipeline_class"].endswith("pipeline_eva02at.ZeroShotVideoClassificationPipeline")

    # The same computations with the package's classes, in this process.
    model = Eva02AtModel.from_pretrained(repo_dir).eval()
    processor = Eva02AtProcessor.from_pretrained(repo_dir)
    with torch.no_grad():
        video = F.normalize(
            model.get_video_features(**processor(videos=[videos["clip"], videos["other"]])).pooler_output, dim=-1
        )
        text = F.normalize(model.get_text_features(**processor(text=LABELS)).pooler_output, dim=-1)
    np.testing.assert_allclose(output["video_embeds"], video.numpy(), atol=1e-5)
    np.testing.assert_allclose(output["text_embeds"], text.numpy(), atol=1e-5)
    np.testing.assert_allclose(output["handler_texts"]["embeddings"], text.numpy(), atol=1e-5)

    local = pipeline("zero-shot-video-classification", model=model, processor=processor, device="cpu")
    expected = local([videos["clip"], videos["other"]], candidate_labels=LABELS, start=[0, 1.0], end=[None, 2.5])
    for fresh, here in zip(output["pipeline"], expected):
        assert [entry["label"] for entry in fresh] == [entry["label"] for entry in here]
        assert as_dict(fresh) == pytest.approx(as_dict(here), abs=1e-5)
    assert as_dict(output["handler_base64"]) == pytest.approx(as_dict(expected[0]), abs=1e-5)
    clip_from_one_second = local(videos["clip"], candidate_labels=LABELS, start=1.0)
    assert as_dict(output["handler_bytes"]) == pytest.approx(as_dict(clip_from_one_second), abs=1e-5)


# ---------------------------------------------------------------------------------------------------------------------
# The Endpoints handler's bad requests (in process, from the assembled folder)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handler(repo_dir):
    spec = importlib.util.spec_from_file_location("eva02at_test_handler", os.path.join(repo_dir, "handler.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EndpointHandler(repo_dir)


@pytest.mark.parametrize(
    "request_data, message",
    [
        ({"video": "x"}, 'the request has no "inputs"'),
        ({"inputs": "not base64!", "parameters": {"candidate_labels": LABELS}}, "not base64"),
        ({"inputs": b"", "parameters": {"candidate_labels": LABELS}}, '"inputs" is empty'),
        ({"inputs": b"\x00" * 64}, 'needs a non-empty "candidate_labels"'),
        (
            {"inputs": b"\x00" * 64, "parameters": {"candidate_labels": LABELS, "top_k": 2}},
            r"unknown \"parameters\" \['top_k'\]",
        ),
        (
            {"inputs": b"\x00" * 64, "parameters": {"candidate_labels": LABELS}},
            r"cannot open the uploaded video: not a readable video",
        ),
        ({"inputs": {"texts": []}}, '"texts" must be a non-empty list'),
        ({"inputs": {"captions": ["a"]}}, 'takes exactly one key, "texts"'),
        ({"inputs": 3, "parameters": {"candidate_labels": LABELS}}, '"inputs" must be a video'),
    ],
)
def test_handler_bad_requests(handler, request_data, message):
    with pytest.raises(ValueError, match=message) as error:
        handler(request_data)
    json.dumps({"error": str(error.value)})  # what the endpoint returns


def test_handler_returns_labels_sorted_by_score_whatever_their_order(handler, videos):
    with open(videos["clip"], "rb") as file:
        data = file.read()
    answers = [
        handler({"inputs": data, "parameters": {"candidate_labels": labels}}) for labels in (LABELS, LABELS[::-1])
    ]
    for answer in answers:
        scores = [entry["score"] for entry in answer]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1.0)
    # Of two opposite input orders at most one is the score order: the answers agree only if both are sorted.
    assert [entry["label"] for entry in answers[0]] == [entry["label"] for entry in answers[1]]


# ---------------------------------------------------------------------------------------------------------------------
# Upload, with HfApi patched
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def hub_api():
    """HfApi's network methods, patched at class level; each records its calls."""
    commit = mock.Mock(commit_url=f"https://huggingface.co/{REPO_ID}/commit/0123")
    with (
        mock.patch.object(huggingface_hub.HfApi, "create_repo") as create_repo,
        mock.patch.object(huggingface_hub.HfApi, "create_branch") as create_branch,
        mock.patch.object(huggingface_hub.HfApi, "create_commit", return_value=commit) as create_commit,
        mock.patch.object(huggingface_hub.HfApi, "upload_folder") as upload_folder,
    ):
        yield mock.Mock(
            create_repo=create_repo,
            create_branch=create_branch,
            create_commit=create_commit,
            upload_folder=upload_folder,
        )


def assert_no_network(api):
    for method in (api.create_repo, api.create_branch, api.create_commit, api.upload_folder):
        method.assert_not_called()


def uploaded(api) -> list[str]:
    api.create_commit.assert_called_once()
    api.upload_folder.assert_not_called()
    return sorted(operation.path_in_repo for operation in api.create_commit.call_args.kwargs["operations"])


def test_cli_push_uploads_the_repo_files_in_one_commit(model_dir, hub_api, tmp_path, capsys):
    folder = str(tmp_path / "repo")
    cli_runs.push_to_hub(
        [
            "--model",
            model_dir,
            "--repo-id",
            REPO_ID,
            "--output",
            folder,
            "--token",
            "hf_test",
            "--private",
            "--revision",
            "v1",
            "--commit-message",
            "Tiny EVA02-AT",
        ]
    )
    assert uploaded(hub_api) == REPO_FILES
    call = hub_api.create_commit.call_args
    assert call.args == (REPO_ID,)
    assert call.kwargs["commit_message"] == "Tiny EVA02-AT" and call.kwargs["revision"] == "v1"
    assert hub_api.create_repo.call_args.args == (REPO_ID,)
    assert hub_api.create_repo.call_args.kwargs == {"private": True, "exist_ok": True}
    hub_api.create_branch.assert_called_once_with(REPO_ID, branch="v1", exist_ok=True)
    assert "Pushed to someone/eva02at-tiny" in capsys.readouterr().out


def test_push_default_commit_message_and_no_branch(repo_dir, hub_api):
    push_to_hub(repo_dir, REPO_ID, token="hf_test")
    assert uploaded(hub_api) == REPO_FILES
    assert hub_api.create_commit.call_args.kwargs["commit_message"] == (
        "Upload EVA02-AT model, processor, pipeline, handler and model card"
    )
    assert hub_api.create_commit.call_args.kwargs["revision"] is None
    hub_api.create_branch.assert_not_called()


@pytest.mark.parametrize(
    "remove",
    ["handler.py", "pipeline_eva02at.py", "model.safetensors", "README.md", "tokenizer.json", "processor_config.json"],
)
def test_push_refuses_a_folder_missing_a_file(repo_dir, hub_api, tmp_path, remove):
    folder = tmp_path / "repo"
    shutil.copytree(repo_dir, folder)
    os.remove(folder / remove)
    with pytest.raises(FileNotFoundError, match=f"not uploading .*missing {re.escape(remove)}|missing the weights"):
        push_to_hub(str(folder), REPO_ID, token="hf_test")
    assert_no_network(hub_api)


def test_push_refuses_a_config_without_custom_pipelines(repo_dir, hub_api, tmp_path):
    folder = tmp_path / "repo"
    shutil.copytree(repo_dir, folder)
    with open(folder / "config.json") as file:
        config = json.load(file)
    del config["custom_pipelines"]
    with open(folder / "config.json", "w") as file:
        json.dump(config, file)
    with pytest.raises(FileNotFoundError, match="config.json has no custom_pipelines"):
        push_to_hub(str(folder), REPO_ID, token="hf_test")
    assert_no_network(hub_api)


def test_push_refuses_without_a_token(repo_dir, hub_api, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with mock.patch("modeling_eva02at.hub.push.get_token", return_value=None):
        with pytest.raises(PermissionError, match="log in with `hf auth login`, set HF_TOKEN"):
            push_to_hub(repo_dir, REPO_ID)
        with pytest.raises(PermissionError, match="no Hugging Face token"):
            cli_runs.push_to_hub(["--model", repo_dir, "--repo-id", REPO_ID])
    assert_no_network(hub_api)


@pytest.mark.parametrize("repo_id", ["no-owner", "a/b/c", "someone/has space", "someone/--double", ""])
def test_push_refuses_an_invalid_repo_id(repo_dir, hub_api, repo_id, capsys):
    with pytest.raises(ValueError, match="invalid repo id"):
        push_to_hub(repo_dir, repo_id, token="hf_test")
    with pytest.raises(ValueError, match="invalid repo id"):
        cli_runs.push_to_hub(["--model", repo_dir, "--repo-id", repo_id, "--token", "hf_test"])
    assert_no_network(hub_api)


def test_push_checkpoint_assembles_a_trainer_checkpoint(model_dir, hub_api, tmp_path):
    checkpoint = tmp_path / "checkpoint-20"
    shutil.copytree(model_dir, checkpoint)
    for name in ("optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "rng_state.pth"):
        (checkpoint / name).write_bytes(b"state")
    push_checkpoint(str(checkpoint), REPO_ID, token="hf_test", commit_message="Training in progress, step 20")
    assert uploaded(hub_api) == REPO_FILES
    assert hub_api.create_commit.call_args.kwargs["commit_message"] == "Training in progress, step 20"


# ---------------------------------------------------------------------------------------------------------------------
# The model card
# ---------------------------------------------------------------------------------------------------------------------


def write_eval_json(path, task: str, metrics: dict) -> str:
    """A report as examples/eval_*.py write it, measured on the real EK-100 test annotations (tests/data)."""
    report = EvaluationResult(task, metrics, num_videos=10, num_texts=10).to_json_dict(
        model_fingerprint={"model": {"path": "/models/b16", "weights": "0" * 64}},
        annotation_files=[os.path.join(REPO_ROOT, "tests", "data", "ek100", "EPIC_100_retrieval_test.csv")],
        num_frames=16,
    )
    with open(path, "w") as file:
        json.dump(report, file)
    return str(path)


EK100_METRICS = {
    "vis2txt_mAP": 0.301,
    "txt2vis_mAP": 0.252,
    "avg_mAP": 0.2765,
    "vis2txt_nDCG": 0.31,
    "txt2vis_nDCG": 0.29,
    "avg_nDCG": 0.30,
}


def test_card_metadata_and_model_index(tmp_path):
    config = Eva02AtConfig.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    reports = read_eval_reports([write_eval_json(tmp_path / "ek100.json", "ek100_mir", EK100_METRICS)])
    text = render_model_card(config, "someone/eva02at-b16", reports)
    card = ModelCard(text, ignore_metadata_errors=False)
    assert card.data.license == "mit"
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "video-classification"
    required_tags = {"custom_code", "zero-shot-video-classification", "video-text-retrieval", "egocentric"}
    assert required_tags <= set(card.data.tags)
    assert card.data.base_model == "timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k"
    assert card.data.datasets

    (tmp_path / "README.md").write_text(text)
    name, results = model_index_to_eval_results(metadata_load(tmp_path / "README.md")["model-index"])
    assert name == "eva02at-b16" and all(isinstance(result, EvalResult) for result in results)
    paper = {
        (r.dataset_name, r.dataset_config, r.metric_name): r
        for r in results
        if r.source_url == "https://arxiv.org/abs/2506.14356"
    }
    assert paper[("EPIC-Kitchens-100 MIR", "zero-shot", "avg mAP")].metric_value == 34.3
    assert paper[("EPIC-Kitchens-100 MIR", "fine-tuned", "avg nDCG")].metric_value == 70.8
    assert paper[("Charades-Ego", "fine-tuned", "mAP")].metric_value == 38.0
    assert paper[("EgoMCQ", "zero-shot", "intra-video accuracy")].metric_value == 63.2
    assert all(r.source_name == "EVA02-AT paper (arXiv 2506.14356)" for r in paper.values())
    own = {r.metric_name: r for r in results if r.dataset_config == "this checkpoint, 16 frames"}
    assert own["avg mAP"].metric_value == 27.65 and own["text-to-video nDCG"].metric_value == 29.0
    assert own["avg mAP"].source_url == "https://huggingface.co/someone/eva02at-b16"
    assert "| EPIC-Kitchens-100 MIR | this checkpoint | 16 | avg mAP | 27.65 |" in card.text
    assert not re.search(r"\{\{ \w+ \}\}", text), "a placeholder was left in the card"


def test_card_of_another_size_has_no_paper_numbers(repo_dir):
    card = ModelCard.load(os.path.join(repo_dir, "README.md"))
    assert card.data.base_model is None and card.data.eval_results is None
    assert "The paper reports no results for this size" in card.text and "Not evaluated yet" in card.text


def test_eval_json_errors(tmp_path):
    with pytest.raises(ValueError, match=r'has "task": \'retrieval\'; expected one of'):
        read_eval_reports([write_eval_json(tmp_path / "a.json", "retrieval", {})])
    with pytest.raises(ValueError, match=r"\(ek100_mir\) lacks the metrics \['avg_nDCG', 'vis2txt_mAP'"):
        read_eval_reports([write_eval_json(tmp_path / "b.json", "ek100_mir", {"avg_mAP": 0.3})])
    with pytest.raises(FileNotFoundError, match="write it with examples/eval_"):
        read_eval_reports([str(tmp_path / "missing.json")])
    ek100 = write_eval_json(tmp_path / "c.json", "ek100_mir", EK100_METRICS)
    with pytest.raises(ValueError, match="two eval JSON reports for \\['ek100_mir'\\]"):
        read_eval_reports([ek100, ek100])


def test_card_snippets_run_against_the_repo_folder(fresh_process, repo_dir):
    """Every ```python block of the rendered README.md ran in the fresh process (fixture `fresh_process`)."""
    with open(os.path.join(repo_dir, "README.md")) as file:
        assert len(card_snippets(file.read())) == 4
    assert REPO_ID not in fresh_process["script"]
    output = fresh_process["stdout"]
    assert [line for line in output.splitlines() if line.startswith("--- snippet")] == [
        f"--- snippet {index}" for index in range(4)
    ]
    assert "cut onion" in output and "other.mp4" in output
