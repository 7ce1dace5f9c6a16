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
SHARED_DATA = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data next to the checkout (EK-100 annotations, CLIP BPE merges)."""
    if not os.path.isdir(SHARED_DATA):
        pytest.fail(f"shared data folder not found: {SHARED_DATA}")
    return SHARED_DATA
