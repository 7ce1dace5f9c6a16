"""Assemble the complete folder of a Hub repo from a model folder, and check that a folder is complete.

A repo folder holds everything `trust_remote_code=True` needs with transformers alone: the weights as safetensors,
config.json with `auto_map` and `custom_pipelines`, the processor and tokenizer files, every remote-code file
(`REMOTE_CODE_FILES`), the packages that code needs as requirements.txt, the Inference Endpoints `handler.py` and
the model card as README.md. The same assembly serves `examples/push_to_hub.py` and the Trainer's pushes
(:func:`modeling_eva02at.hub.push.push_checkpoint`), so an intermediate checkpoint on the Hub loads and runs too.
"""

from __future__ import annotations

import json
import os
import shutil

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .. import REMOTE_CODE_FILES, register_auto_classes
from ..utils.files import staged_folder
from .card import read_eval_reports, render_model_card


HANDLER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "handler.py")

PROCESSOR_FILES = ("processor_config.json", "tokenizer.json", "tokenizer_config.json")
REQUIRED_FILES = ("config.json", *PROCESSOR_FILES, *REMOTE_CODE_FILES, "requirements.txt", "handler.py", "README.md")
"""Every file a repo folder must hold, besides the weights (model.safetensors, or an index and its shards)."""

REPO_REQUIREMENTS = (
    "transformers>=5.0,<6",
    "torch>=2.4",
    "numpy>=1.26",
    "pillow",
    "av>=12",
    'decord==0.6.0; platform_machine == "x86_64" or platform_machine == "AMD64"',
)
"""The repo's requirements.txt: what its remote code imports, with this package's own bounds (pyproject.toml; a test
keeps them equal). Pillow because transformers' image-processor classes, which the video processor builds on,
require it even for video; PyAV decodes and checks every video's header before decord opens it; decord, where it has
wheels, decodes faster. Inference Endpoints installs the file; the model card names the same packages."""


def check_repo_id(repo_id: str) -> str:
    """`repo_id` if it is a valid Hub model id ("owner/name"), else ValueError saying why."""
    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(
            f"invalid repo id {repo_id!r}: give it as 'owner/name' (your user or organisation name, a "
            f"slash, the model name)"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise ValueError(f"invalid repo id {repo_id!r}: {error}") from None
    return repo_id


def weight_files(folder: str) -> list[str]:
    """The safetensors weight files of `folder` (one file, or an index and the shards it names), or [] if none."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index):
        with open(index) as file:
            shards = sorted(set(json.load(file)["weight_map"].values()))
        return ["model.safetensors.index.json", *shards]
    return ["model.safetensors"] if os.path.isfile(os.path.join(folder, "model.safetensors")) else []


def _json(path: str) -> dict:
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, json.JSONDecodeError):
        return {}


def check_repo_folder(folder: str) -> list[str]:
    """What keeps `folder` from being a loadable repo: missing files, missing `auto_map` / `custom_pipelines`
    entries. Empty when the folder is complete."""
    if not os.path.isdir(folder):
        return [f"{folder} is not a folder"]
    problems = [f"missing {name}" for name in REQUIRED_FILES if not os.path.isfile(os.path.join(folder, name))]
    weights = weight_files(folder)
    if not weights:
        problems.append("missing the weights (model.safetensors, or model.safetensors.index.json and its shards)")
    problems += [f"missing weight shard {name}" for name in weights if not os.path.isfile(os.path.join(folder, name))]
    config = _json(os.path.join(folder, "config.json"))
    auto_map = config.get("auto_map") or {}
    problems += [f"config.json has no auto_map[{key!r}]" for key in ("AutoConfig", "AutoModel") if key not in auto_map]
    if "zero-shot-video-classification" not in (config.get("custom_pipelines") or {}):
        problems.append("config.json has no custom_pipelines['zero-shot-video-classification']")
    if os.path.isfile(os.path.join(folder, "processor_config.json")):
        if "AutoProcessor" not in (_json(os.path.join(folder, "processor_config.json")).get("auto_map") or {}):
            problems.append("processor_config.json has no auto_map['AutoProcessor']")
    return problems


def repo_files(folder: str) -> list[str]:
    """The files of a repo folder that go to the Hub: the required files and the weights, sorted."""
    return sorted({*REQUIRED_FILES, *weight_files(folder)})


def assemble_repo_folder(
    model_dir: str,
    output_dir: str,
    repo_id: str,
    eval_json=None,
    *,
    base_model: str | None = None,
    license: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write the complete repo folder of the model in `model_dir` to `output_dir`, atomically.

    The model and processor are loaded with the package's classes and saved afresh (weights as safetensors, in their
    saved dtype), so the folder holds only what the repo needs, whatever else `model_dir` holds (optimizer states of
    a Trainer checkpoint, .bin weights). `output_dir` is built beside itself and swapped in at the end: it is never
    seen half-written.

    Args:
        model_dir: a model folder with processor files: `convert_checkpoint.py --output`, `train_mir.py
            --output-dir`, or a Trainer checkpoint.
        output_dir: the folder to write; it must not exist or be empty, unless `overwrite`.
        repo_id: the Hub repo ("owner/name"), written into the model card.
        eval_json: a path or a list of paths of eval reports (`examples/eval_*.py --output-json`) for the card.
        base_model / license: see :func:`~modeling_eva02at.hub.card.render_model_card`.
        overwrite: replace a non-empty `output_dir`.

    Returns:
        The repo's file names, sorted.
    """
    check_repo_id(repo_id)
    model_dir, output_dir = os.path.abspath(model_dir), os.path.abspath(output_dir)
    if model_dir == output_dir:
        raise ValueError(f"output_dir is model_dir ({model_dir}): assemble into another folder")
    for name in ("config.json", *PROCESSOR_FILES):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise FileNotFoundError(
                f"{model_dir} has no {name}: pass a model folder with its processor (convert_checkpoint.py writes "
                f"one unless --no-processor; else save the processor of hub_configs/eva02at-b16 or -l14 into it, "
                f"with num_frames set to the model's)"
            )
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(
            f"output folder {output_dir} is not empty: choose another, or overwrite it (--overwrite / overwrite=True)"
        )
    reports = read_eval_reports(eval_json, model=model_dir)  # each must have measured this model

    register_auto_classes()
    from ..modeling_eva02at import Eva02AtModel
    from ..processing_eva02at import Eva02AtProcessor

    model, loading = Eva02AtModel.from_pretrained(model_dir, dtype="auto", output_loading_info=True)
    missing = loading.get("missing_keys") or []
    if missing:
        raise ValueError(
            f"the weights in {model_dir} lack {len(missing)} of the model's tensors (e.g. "
            f"{sorted(missing)[:3]}): they would be pushed randomly initialised"
        )
    processor = Eva02AtProcessor.from_pretrained(model_dir)

    with staged_folder(output_dir) as staging:
        # The model's save writes config.json with `custom_pipelines` and copies the remote-code files of the model
        # and the pipeline (Eva02AtConfig.save_pretrained); the processor's, its own.
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        with open(os.path.join(staging, "requirements.txt"), "w") as file:
            file.write("\n".join(REPO_REQUIREMENTS) + "\n")
        shutil.copyfile(HANDLER_SOURCE, os.path.join(staging, "handler.py"))
        card = render_model_card(model.config, repo_id, reports, base_model=base_model, license=license)
        with open(os.path.join(staging, "README.md"), "w") as file:
            file.write(card)
        problems = check_repo_folder(staging)
        if problems:
            raise RuntimeError(f"the assembled repo folder is incomplete: {'; '.join(problems)}")
    return repo_files(output_dir)


__all__ = [
    "REPO_REQUIREMENTS",
    "REQUIRED_FILES",
    "assemble_repo_folder",
    "check_repo_folder",
    "check_repo_id",
    "repo_files",
]
