"""The model fingerprint covers exactly what changes an embedding (issue 23, item 1): weights by value, the config
fields the forward reads, the tokenizer's vocabulary and settings; not where the files are or how they were saved.

The seam it must hold across: a search index (and a feature cache) made with a REAL training output folder
(examples/train_mir.py through Eva02AtTrainer: `use_cache` in config.json, training_args.bin beside the weights),
queried with the repo examples/push_to_hub.py --dry-run assembles from it, with that repo as a Hub download, and with
the download saved again offline and online (their tokenizer_config.json differ in `local_files_only`), and through
the Space assembly of docs/search_and_app.md. One changed weight is another model.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modeling_eva02at import Eva02AtModel, Eva02AtProcessor, register_auto_classes
from modeling_eva02at.evaluation.encoding import EncodeSettings, load_model_for_inference
from modeling_eva02at.evaluation.fingerprint import fingerprint_identity, model_fingerprint
from modeling_eva02at.search.build import search_index, update_index
from modeling_eva02at.search.sources import VideoFolder
from modeling_eva02at.search.store import IndexMismatchError, VideoIndex
from modeling_eva02at.utils.video_writer import write_video

from . import cli_runs
from .conftest import REPO_ROOT, TINY_MIR_CONFIG, tiny_mir_model


REPO_ID = "someone/eva02at-seams"
SETTINGS = EncodeSettings(batch_size=2, num_workers=0, progress=False)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The tiny model's ops are too small to share between threads (see tests/test_search.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train(demo, output_dir) -> str:
    """One step of examples/train_mir.py (Eva02AtTrainer) on the demo data: a real training output folder."""
    argv = [
        "--train-csv",
        demo.train_csv,
        "--sentence-csv",
        demo.train_sentence_csv,
        "--video-root",
        demo.video_root,
        "--model",
        TINY_MIR_CONFIG,
        "--init",
        "random",
        "--num-frames",
        "2",
        "--output-dir",
        str(output_dir),
        "--max-steps",
        "1",
        "--per-device-train-batch-size",
        "4",
        "--use-cpu",
        "--save-strategy",
        "no",
        "--report-to",
        "none",
        "--disable-tqdm",
        "true",
        "--dataloader-num-workers",
        "0",
    ]
    cli_runs.train_mir(argv)
    return str(output_dir)


def put_in_hub_cache(folder: str, repo_id: str) -> None:
    """`folder` as the local Hub cache holds a downloaded repo: `from_pretrained(repo_id)` resolves to it offline."""
    from huggingface_hub import constants

    commit = "5" * 40
    repo = os.path.join(constants.HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))
    shutil.rmtree(repo, ignore_errors=True)
    shutil.copytree(folder, os.path.join(repo, "snapshots", commit))
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as handle:
        handle.write(commit)


def save_download(repo_id: str, output_dir: str) -> str:
    """The model and processor of `repo_id` loaded from the Hub cache and saved again, as a user's copy would be."""
    register_auto_classes()
    Eva02AtModel.from_pretrained(repo_id).save_pretrained(output_dir)
    Eva02AtProcessor.from_pretrained(repo_id).save_pretrained(output_dir)
    return output_dir


@pytest.fixture(scope="module")
def folders(tmp_path_factory, demo):
    """The training output, its --dry-run repo, the repo as a Hub download (REPO_ID), and the download saved again
    with HF_HUB_OFFLINE=1 (the tests' setting) and as an online session would save it."""
    root = tmp_path_factory.mktemp("seams")
    trained = train(demo, root / "trained")
    repo = str(root / "repo")
    cli_runs.push_to_hub(["--model", trained, "--repo-id", REPO_ID, "--dry-run", "--output", repo])
    put_in_hub_cache(repo, REPO_ID)
    offline = save_download(REPO_ID, str(root / "saved_offline"))
    # Online, transformers writes local_files_only: false into tokenizer_config.json (offline: true). Only the
    # tokenizer's view of the offline mode is changed: huggingface_hub stays offline, so nothing reaches the network.
    with pytest.MonkeyPatch.context() as patch:
        import transformers.tokenization_utils_base as tokenization

        patch.setattr(tokenization, "is_offline_mode", lambda: False)
        online = save_download(REPO_ID, str(root / "saved_online"))
    return {"trained": trained, "repo": repo, "hub": REPO_ID, "offline": offline, "online": online}


def write_colour_video(path, colour) -> str:
    write_video(str(path), np.full((10, 24, 32, 3), colour, dtype=np.uint8), 10)
    return str(path)


@pytest.fixture(scope="module")
def index(folders, tmp_path_factory):
    """An index of two one-second videos, built with the training output folder."""
    root = tmp_path_factory.mktemp("index")
    (root / "videos").mkdir()
    write_colour_video(root / "videos" / "red.mp4", (220, 30, 30))
    write_colour_video(root / "videos" / "blue.mp4", (30, 40, 220))
    model, processor = load_model_for_inference(folders["trained"])
    update_index(
        str(root / "index"),
        VideoFolder(str(root / "videos")),
        model,
        processor,
        SETTINGS,
        model_id=model_fingerprint(folders["trained"]),
    )
    return {"path": str(root / "index"), "videos": str(root / "videos")}


def query(index_path: str, model_path: str) -> list:
    model, processor = load_model_for_inference(model_path)
    hits = search_index(
        VideoIndex.load(index_path), model, processor, ["a red video"], model_id=model_fingerprint(model_path), top_k=2
    )[0]
    return [(os.path.basename(hit.path), round(hit.score, 5)) for hit in hits]


# ---------------------------------------------------------------------------------------------------------------------


def read_json(folder: str, name: str) -> dict:
    with open(os.path.join(folder, name)) as handle:
        return json.load(handle)


def test_an_index_of_a_training_folder_serves_its_pushed_repo_downloads_and_space(folders, index, tmp_path):
    # The folders do differ, in what says how they were saved.
    assert read_json(folders["trained"], "config.json")["use_cache"] is False
    assert "use_cache" not in read_json(folders["repo"], "config.json")
    assert os.path.isfile(os.path.join(folders["trained"], "training_args.bin"))
    tokenizer_configs = [read_json(folders[name], "tokenizer_config.json") for name in ("offline", "online")]
    assert [config["local_files_only"] for config in tokenizer_configs] == [True, False]

    expected = query(index["path"], folders["trained"])
    for name in ("repo", "hub", "offline", "online"):
        assert query(index["path"], folders[name]) == expected, name  # accepted, and the same embeddings

    # The Space of docs/search_and_app.md: the index built with the training folder, the model by its Hub id.
    from modeling_eva02at.app.space import assemble_space_folder

    files = assemble_space_folder(str(tmp_path / "space"), "someone/eva02at-demo", REPO_ID, index=index["path"])
    assert "index/index.json" in files

    # Extending the index with the pushed repo is accepted too (nothing new to encode).
    model, processor = load_model_for_inference(folders["repo"])
    report = update_index(
        index["path"], VideoFolder(index["videos"]), model, processor, SETTINGS, model_id=model_fingerprint(REPO_ID)
    )
    assert (report.encoded, report.unchanged) == (0, 2)


def test_one_changed_weight_is_another_model(folders, index, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(folders["repo"], changed)
    weights = load_file(changed / "model.safetensors")
    name = "visual_projection.weight" if "visual_projection.weight" in weights else sorted(weights)[0]
    weights[name][0, 0] += 1e-3  # one element of one tensor
    save_file(weights, changed / "model.safetensors", metadata={"format": "pt"})
    model, processor = load_model_for_inference(str(changed))
    with pytest.raises(IndexMismatchError) as refused:
        search_index(
            VideoIndex.load(index["path"]), model, processor, ["a red video"], model_id=model_fingerprint(str(changed))
        )
    message = str(refused.value)
    assert "the weights differ (another checkpoint, or the same one trained further)" in message
    assert "use a new --index folder" in message and "config" not in message.split("\n")[1]


def test_a_changed_forward_setting_is_named_in_the_refusal(folders, index, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(folders["repo"], changed)
    config = json.loads((changed / "config.json").read_text())
    config["vision_config"]["use_temporal_rope"] = False
    (changed / "config.json").write_text(json.dumps(config))
    with pytest.raises(IndexMismatchError, match=r"model config vision_config\.use_temporal_rope: index True, this"):
        VideoIndex.load(index["path"]).check_model(model_fingerprint(str(changed)))


def test_another_compute_dtype_is_refused_in_words(folders, index):
    model, processor = load_model_for_inference(folders["trained"])
    bfloat16 = EncodeSettings(batch_size=2, num_workers=0, progress=False, compute_dtype=torch.bfloat16)
    with pytest.raises(IndexMismatchError) as refused:
        update_index(
            index["path"],
            VideoFolder(index["videos"]),
            model,
            processor,
            bfloat16,
            model_id=model_fingerprint(folders["trained"]),
        )
    assert re.search(
        r"dtype: index 'torch.float32', this run 'torch.bfloat16' \(the dtype the embeddings were computed in: "
        r"bfloat16 and float32 embeddings differ slightly \(--dtype\)\)",
        str(refused.value),
    )


def test_weights_are_identified_by_value_not_by_file(tmp_path, mir_processor):
    """Sharding, file format and safetensors metadata do not matter; values do, in the dtype they were saved in."""
    model = tiny_mir_model(seed=2)
    model.save_pretrained(tmp_path / "one")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="2MB")
    assert os.path.isfile(tmp_path / "sharded" / "model.safetensors.index.json")
    (tmp_path / "bin").mkdir()
    model.config.save_pretrained(tmp_path / "bin")
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "metadata").mkdir()
    shutil.copy(tmp_path / "one" / "config.json", tmp_path / "metadata")
    save_file(load_file(tmp_path / "one" / "model.safetensors"), tmp_path / "metadata" / "model.safetensors")

    def weights(folder):
        return fingerprint_identity(model_fingerprint(str(tmp_path / folder)))["model"]["weights"]

    assert weights("sharded") == weights("bin") == weights("metadata") == weights("one")

    # bfloat16 weights are other values than the float32 ones they were rounded from; saved back as float32 (an
    # exact widening) they are the same values, which load and compute alike.
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    model.to(torch.float32).save_pretrained(tmp_path / "widened")
    assert weights("bf16") != weights("one") and weights("widened") == weights("bf16")


def test_the_fingerprint_leaves_out_save_time_bookkeeping_of_config_and_tokenizer(tmp_path, mir_processor):
    from modeling_eva02at.evaluation.fingerprint import forward_config

    tiny_mir_model(seed=2).save_pretrained(tmp_path / "model")
    mir_processor.save_pretrained(tmp_path / "model")
    before = fingerprint_identity(model_fingerprint(str(tmp_path / "model")))
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    config.update(use_cache=False, transformers_version="0.0.1", architectures=["Other"], dtype="bfloat16")
    config["_name_or_path"] = "/somewhere/else"
    (tmp_path / "model" / "config.json").write_text(json.dumps(config))
    tokenizer = json.loads((tmp_path / "model" / "tokenizer_config.json").read_text())
    tokenizer.update(local_files_only=True, is_local=True, name_or_path="x", max_length=12, processor_class="P")
    (tmp_path / "model" / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    assert fingerprint_identity(model_fingerprint(str(tmp_path / "model"))) == before

    # ... but what changes the token ids does count.
    tokenizer["model_max_length"] = 16
    (tmp_path / "model" / "tokenizer_config.json").write_text(json.dumps(tokenizer))
    after = fingerprint_identity(model_fingerprint(str(tmp_path / "model")))
    assert after["model"]["tokenizer"] != before["model"]["tokenizer"]
    assert set(before["model"]["config"]) >= {"vision_config", "text_config", "projection_dim", "logit_scale_max"}
    assert before["model"]["config"] == forward_config(Eva02AtModel.from_pretrained(tmp_path / "model").config)


def test_every_config_attribute_the_modeling_code_reads_is_fingerprinted():
    """The fingerprint's config fields are derived from the config classes; an attribute the forward reads that is not
    a declared field would be missed silently: this catches it."""
    from modeling_eva02at import Eva02AtConfig
    from modeling_eva02at.evaluation.fingerprint import forward_config

    def names(fields: dict) -> set:
        nested = [names(value) for value in fields.values() if isinstance(value, dict)]
        return set(fields).union(*nested)

    fingerprinted = names(forward_config(Eva02AtConfig()))
    with open(os.path.join(REPO_ROOT, "modeling_eva02at", "modeling_eva02at.py")) as handle:
        read = set(re.findall(r"config\.(\w+)", handle.read()))
    runtime = {
        "_attn_implementation",
        "output_attentions",
        "output_hidden_states",
        "return_dict",
        "validate_architecture",
    }
    assert read - runtime <= fingerprinted, read - runtime - fingerprinted
    assert not {"use_cache", "transformers_version", "dtype", "architectures", "auto_map"} & fingerprinted


def test_the_feature_cache_of_a_training_folder_serves_its_pushed_repo(folders, demo, tmp_path):
    """evaluation/cache.py keys on the same fingerprint: the repo's evaluation reuses the training folder's features."""

    def evaluate(model):
        argv = [
            "--model",
            model,
            "--video-root",
            demo.video_root,
            "--test-csv",
            demo.test_csv,
            "--sentence-csv",
            demo.test_sentence_csv,
            "--cache-dir",
            str(tmp_path / "cache"),
            "--batch-size",
            "8",
            "--num-workers",
            "0",
            "--device",
            "cpu",
            "--dtype",
            "float32",
            "--no-progress",
        ]
        report = cli_runs.eval_ek100_mir(argv)
        return report["features_cache"], report["metrics"]

    (first, metrics), (second, again) = evaluate(folders["trained"]), evaluate(folders["offline"])
    assert (first["hit"], second["hit"]) == (False, True) and first["path"] == second["path"] and again == metrics


def test_an_index_of_the_old_fingerprint_is_refused_with_a_message_to_rebuild_it(index, tmp_path):
    old = tmp_path / "old_index"
    shutil.copytree(index["path"], old)
    manifest = json.loads((old / "index.json").read_text())
    manifest["version"] = 2  # the fingerprint of the model files' content, save-time keys included
    (old / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"built by an older version of this package \(index version 2\).* rebuild it"):
        VideoIndex.load(str(old))
