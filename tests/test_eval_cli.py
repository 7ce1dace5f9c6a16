"""The command lines in examples/: every script answers --help at once (it parses its arguments before importing torch
or transformers), and every flag is accepted in both spellings, ``--dashed-flag`` and ``--dashed_flag``."""

import importlib.util
import os
import subprocess
import sys
import time

import pytest

from .conftest import REPO_ROOT

SCRIPTS = ("eval_ek100_mir", "eval_egomcq", "eval_charades_ego", "convert_checkpoint", "train_mir", "pretrain_egoclip",
           "finetune_charades_ego", "push_to_hub", "search_videos")
HELP_SECONDS = 5.0  # loose: importing torch + transformers alone takes ~7 s on the 2-core reference machine

# Runs a script with --help in a fresh interpreter and reports whether torch or transformers got imported.
_HELP_WITHOUT_TORCH = r"""
import runpy, sys
path = sys.argv[1]
sys.argv = [path, "--help"]
try:
    runpy.run_path(path, run_name="__main__")
except SystemExit as exit:
    code = exit.code
print("HEAVY:", sorted(name for name in ("torch", "transformers") if name in sys.modules))
sys.exit(code)
"""


def script_path(name):
    return os.path.join(REPO_ROOT, "examples", f"{name}.py")


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", script_path(name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_answers_at_once(name):
    started = time.perf_counter()
    run = subprocess.run([sys.executable, script_path(name), "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    seconds = time.perf_counter() - started
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("usage:") and "--help" in run.stdout
    assert seconds < HELP_SECONDS, f"{name}.py --help took {seconds:.1f} s"


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_imports_neither_torch_nor_transformers(name):
    # The timing above is loose (CI machines are noisy); this is the deterministic reason --help is fast.
    run = subprocess.run([sys.executable, "-c", _HELP_WITHOUT_TORCH, script_path(name)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "usage:" in run.stdout and "HEAVY: []" in run.stdout, run.stdout[-500:]


def test_convert_help_lists_the_choices():
    run = subprocess.run([sys.executable, script_path("convert_checkpoint"), "--help"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    from modeling_eva02at.conversion import SOURCES

    assert "--source {" + ",".join(SOURCES) + "}" in run.stdout
    assert "--dtype {bfloat16,float16,float32}" in run.stdout


EVAL_ARGS = {
    "eval_ek100_mir": {"test-csv": "test.csv", "sentence-csv": "sentences.csv"},
    "eval_egomcq": {"egomcq-json": "egomcq.json", "chunk-seconds": "2"},
    "eval_charades_ego": {"csv": "test.csv", "classes": "classes.txt", "video-ext": "MP4"},
}


@pytest.mark.parametrize("name", sorted(EVAL_ARGS))
def test_eval_scripts_accept_dashes_and_underscores(name):
    module = load_script(name)
    flags = {**EVAL_ARGS[name], "model": "model_dir", "video-root": "videos", "num-frames": "4", "batch-size": "2"}
    dashed = [item for key, value in flags.items() for item in (f"--{key}", value)]
    underscored = [item for key, value in flags.items() for item in (f"--{key.replace('-', '_')}", value)]
    assert vars(module.parse_args(underscored)) == vars(module.parse_args(dashed))
    args = module.parse_args(underscored)
    for key, value in flags.items():
        assert str(getattr(args, key.replace("-", "_"))) == value


def test_eval_ek100_mir_test_csv_both_spellings():
    module = load_script("eval_ek100_mir")
    common = ["--sentence-csv", "s.csv", "--model", "m", "--video-root", "v"]
    assert module.parse_args(["--test_csv", "t.csv"] + common).test_csv == "t.csv"
    assert module.parse_args(["--test-csv", "t.csv"] + common).test_csv == "t.csv"


def test_convert_checkpoint_accepts_dashes_and_underscores():
    module = load_script("convert_checkpoint")
    common = ["--source", "timm", "--checkpoint", "c.pt", "--config", "cfg", "--output", "out"]
    dashed = module.parse_args(common + ["--projection-dim", "8", "--num-frames", "4", "--no-processor"])
    underscored = module.parse_args(common + ["--projection_dim", "8", "--num_frames", "4", "--no_processor"])
    assert vars(dashed) == vars(underscored)
    assert (dashed.projection_dim, dashed.num_frames, dashed.no_processor) == (8, 4, True)
    with pytest.raises(SystemExit):
        module.parse_args(common[:1] + ["not_a_layout"] + common[2:])  # --source lists its choices and keeps to them
