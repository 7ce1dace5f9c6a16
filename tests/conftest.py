"""Test session set-up: no Hub access, a private HF cache, deterministic CPU torch."""

import os
import tempfile


# Set before transformers / huggingface_hub / evaluate are imported by any test module.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="eva02at-hf-home-"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO_ROOT, "tests", "data")


def run_on_two_cpu_processes(script: str, *args: str, cwd):
    """`accelerate launch --multi_gpu --num_processes 2` of `script` on the CPU (gloo, DDP), one thread per process,
    offline; the finished process with its output captured."""
    import subprocess
    import sys

    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([*launch, script, *args], env=env, cwd=cwd, timeout=300, capture_output=True, text=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def data_dir():
    """tests/data: the real EK-100 test annotations and class lists, and the CLIP BPE merges (see its README)."""
    return DATA_DIR


TINY_MIR_CONFIG = os.path.join(REPO_ROOT, "tests", "fixtures", "tiny_mir_config")
"""The tiny dual encoder that trains on the demo data in seconds: 2 frames of 16 px, 1 layer per tower, the real
49408-token vocabulary. Tests that need other shapes (RoPE, conversion) build their own configs on purpose."""


def tiny_mir_model(seed: int = 0, **vision_overrides):
    """A freshly initialised model of TINY_MIR_CONFIG (vision fields overridden by keyword), seeded."""
    from modeling_eva02at import Eva02AtConfig, Eva02AtModel

    config = Eva02AtConfig.from_pretrained(TINY_MIR_CONFIG)
    for name, value in vision_overrides.items():
        setattr(config.vision_config, name, value)
    torch.manual_seed(seed)
    return Eva02AtModel(config)


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """A small synthetic EK-100-format dataset (48 train, 24 test clips), generated once per session."""
    from modeling_eva02at.demo.ek100 import make_demo_dataset

    return make_demo_dataset(tmp_path_factory.mktemp("demo"), seed=0, num_train=48, num_test=24)


@pytest.fixture(scope="session")
def mir_processor():
    """The real CLIP tokenizer with a video processor set to TINY_MIR_CONFIG's 2 frames of 16 px."""
    from modeling_eva02at import Eva02AtConfig, Eva02AtProcessor
    from modeling_eva02at.utils.processor import match_processor_to_model

    processor = Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    match_processor_to_model(processor, Eva02AtConfig.from_pretrained(TINY_MIR_CONFIG), resize=True)
    return processor


@pytest.fixture(scope="session")
def splits(demo):
    """(train, test) `Ek100MirDataset`s of the demo data."""
    from modeling_eva02at.data.ek100 import Ek100MirAnnotations, Ek100MirDataset

    train = Ek100MirDataset(
        Ek100MirAnnotations.from_files(demo.train_csv, demo.train_sentence_csv), demo.video_root, train=True, seed=0
    )
    test = Ek100MirDataset(
        Ek100MirAnnotations.from_files(demo.test_csv, demo.test_sentence_csv), demo.video_root, train=False
    )
    return train, test


@pytest.fixture
def hub_commits(monkeypatch):
    """The Hub as a list: every commit's message and sorted file paths, with HfApi's repo creation and commits patched
    (and `upload_folder` refused: pushes go through one `create_commit`)."""
    from unittest import mock

    from huggingface_hub import HfApi, RepoUrl

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    commits = []

    def create_commit(self, repo_id, *, operations, commit_message=None, **kwargs):
        commits.append((commit_message, sorted(operation.path_in_repo for operation in operations)))
        return mock.Mock(commit_url="")

    repo_url = RepoUrl("https://huggingface.co/someone/eva02at-test", endpoint="https://huggingface.co")
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, *args, **kwargs: repo_url)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    monkeypatch.setattr(
        HfApi, "upload_folder", mock.Mock(side_effect=AssertionError("pushes go through create_commit"))
    )
    return commits
