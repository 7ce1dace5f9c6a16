"""The scripts in examples/, run as a user runs them (a fresh interpreter): every one answers --help with its usage,
accepts --dashed-flags and --underscored_flags alike, and reports a user's mistake as exactly one line `error: ...`
with exit status 2, never a traceback."""

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from modeling_eva02at.utils.cli import UsageError, one_line, parse_arguments

from .conftest import REPO_ROOT


SCRIPTS = (
    "app",
    "convert_checkpoint",
    "eval_charades_ego",
    "eval_egomcq",
    "eval_ek100_mir",
    "finetune_charades_ego",
    "index_videos",
    "pretrain_egoclip",
    "push_space",
    "push_to_hub",
    "search_videos",
    "train_mir",
)
TRAINING_SCRIPTS = ("finetune_charades_ego", "pretrain_egoclip", "train_mir")
EK100 = os.path.join(REPO_ROOT, "tests", "data", "ek100")


def run(name: str, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    for variable in ("EVA02AT_MODEL", "EVA02AT_INDEX", "EVA02AT_EXAMPLES", "EVA02AT_DTYPE", "EVA02AT_DEBUG"):
        if variable not in (env or {}):
            environment.pop(variable, None)
    script = os.path.join(REPO_ROOT, "examples", f"{name}.py")
    return subprocess.run(
        [sys.executable, script, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


def test_every_script_is_tested_here():
    assert sorted(name[:-3] for name in os.listdir(os.path.join(REPO_ROOT, "examples")) if name.endswith(".py")) == (
        sorted(SCRIPTS)
    )


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_shows_the_usage_and_the_scripts_own_text(name):
    probe = (
        f"import runpy, sys\nsys.argv = ['{name}.py', '--help']\n"
        f"try:\n    runpy.run_path({os.path.join(REPO_ROOT, 'examples', name + '.py')!r}, run_name='__main__')\n"
        "except SystemExit as done:\n    assert done.code in (0, None), done.code\n"
        "print('TORCH', 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"usage: {name}.py") and "--help" in result.stdout
    with open(os.path.join(REPO_ROOT, "examples", f"{name}.py")) as handle:
        first_line = handle.read().split('"""')[1].splitlines()[0]
    assert first_line in result.stdout  # the docstring is the description, as written
    # transformers' TrainingArguments needs torch; every other script parses its arguments without it
    assert result.stdout.rstrip().endswith(f"TORCH {name in TRAINING_SCRIPTS}")


@dataclass
class Settings:
    video_root: str = field(metadata={"help": "a folder"})
    num_frames: int | None = None
    flip: bool = False


def test_both_spellings_and_one_line_errors():
    dashed = parse_arguments((Settings,), ["--video-root", "v", "--num-frames", "4", "--flip"])
    underscored = parse_arguments((Settings,), ["--video_root", "v", "--num_frames", "4", "--flip", "true"])
    assert dashed == underscored == (Settings("v", 4, True),)
    with pytest.raises(UsageError, match=r"unrecognized arguments: --num-frame 4 \(--help lists the arguments\)"):
        parse_arguments((Settings,), ["--video-root", "v", "--num-frame", "4"])
    with pytest.raises(UsageError, match="invalid int value: 'four'"):
        parse_arguments((Settings,), ["--video-root", "v", "--num-frames", "four"])
    assert (
        one_line("videos missing under /d (first 2):\n  a.mp4\n  b.mp4")
        == "videos missing under /d (first 2): a.mp4; b.mp4"
    )
    assert one_line("the index does not match:\n  a: x\n  b: y\nUse a new folder.") == (
        "the index does not match: a: x; b: y; Use a new folder."
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Files a careless user points the scripts at: a folder with a file, an empty folder, bad JSON, a model-less
    folder."""
    root = tmp_path_factory.mktemp("careless")
    (root / "full").mkdir()
    (root / "full" / "notes.txt").write_text("precious")
    (root / "videos").mkdir()
    (root / "broken.json").write_text("{'not': json")
    (root / "checkpoint.pt").write_bytes(b"")
    (root / "not_an_index").mkdir()
    return root


def bad_inputs(root) -> dict[str, list[tuple[list[str], str, dict]]]:
    """Per script: (argv, a piece of the expected message, extra environment)."""
    videos, missing = str(root / "videos"), str(root / "missing")
    ek100 = [
        "--test-csv",
        os.path.join(EK100, "EPIC_100_retrieval_test.csv"),
        "--sentence-csv",
        os.path.join(EK100, "EPIC_100_retrieval_test_sentence.csv"),
    ]
    no_token = {"HF_TOKEN": "", "HF_HOME": str(root / "hf_home")}
    return {
        "eval_ek100_mir": [
            ([*ek100, "--model", "nobody/no-such-model", "--video-root", videos], "nobody/no-such-model", {}),
            (
                ["--test-csv", missing + ".csv", "--sentence-csv", "s.csv", "--model", "m", "--video-root", videos],
                "missing.csv",
                {},
            ),
            ([*ek100, "--model", "m", "--video-root", missing], f"--video-root {missing} is not a folder", {}),
            (
                [*ek100, "--model", "m", "--video-root", videos, "--batch-size", "0"],
                "--batch-size must be at least 1",
                {},
            ),
        ],
        "eval_egomcq": [
            (
                ["--egomcq-json", "q.json", "--model", "m", "--video-root", videos, "--video-layout", "chunked"],
                "invalid choice: 'chunked'",
                {},
            ),
            (["--egomcq-json", missing + ".json", "--model", "m", "--video-root", videos], "missing.json", {}),
            (
                ["--egomcq-json", str(root / "broken.json"), "--model", "m", "--video-root", videos],
                "is not valid JSON",
                {},
            ),
            (
                ["--egomcq-json", "q.json", "--model", "m", "--video-root", videos, "--chunk-seconds", "0"],
                "--chunk-seconds must be at least 1",
                {},
            ),
        ],
        "eval_charades_ego": [
            (["--csv", "test.csv", "--model", "m", "--video-root", videos], "required: --classes", {}),
            (
                ["--csv", "t.csv", "--classes", "c.txt", "--model", "m", "--video-root", videos, "--template", "{}"],
                "unrecognized arguments: --template {}",
                {},
            ),
            (
                ["--csv", "t.csv", "--classes", "c.txt", "--model", "m", "--video-root", videos, "--num-workers", "-1"],
                "--num-workers must be >= 0",
                {},
            ),
        ],
        "convert_checkpoint": [
            (
                ["--source", "clip", "--checkpoint", "c.pt", "--config", "c", "--output", "o"],
                "invalid choice: 'clip'",
                {},
            ),
            (
                [
                    "--source",
                    "timm",
                    "--checkpoint",
                    missing + ".pt",
                    "--config",
                    os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"),
                    "--output",
                    str(root / "out"),
                ],
                "missing.pt",
                {},
            ),
            (
                [
                    "--source",
                    "timm",
                    "--checkpoint",
                    str(root / "checkpoint.pt"),
                    "--config",
                    "c",
                    "--output",
                    str(root / "full"),
                ],
                "is not empty",
                {},
            ),
            (
                ["--source", "timm", "--checkpoint", "c.pt", "--config", "c", "--output", "o", "--projection-dim", "0"],
                "--projection-dim must be at least 1",
                {},
            ),
        ],
        "push_to_hub": [
            (
                ["--model", videos, "--repo-id", "you/model", "--dry-run"],
                "--dry-run writes the repo folder to --output",
                {},
            ),
            (
                ["--model", videos, "--repo-id", "no owner", "--dry-run", "--output", str(root / "repo")],
                "invalid repo id 'no owner'",
                {},
            ),
            (
                ["--model", missing, "--repo-id", "you/model", "--dry-run", "--output", str(root / "repo")],
                "has no config.json",
                {},
            ),
            (["--model", videos, "--repo-id", "you/model"], "no Hugging Face token", no_token),
        ],
        "push_space": [
            (
                ["--model", "you/model", "--space-id", "no owner", "--dry-run", "--output", str(root / "space")],
                "invalid repo id 'no owner'",
                {},
            ),
            (
                ["--model", "you/model", "--space-id", "you/space", "--dry-run"],
                "--dry-run writes the Space folder to --output",
                {},
            ),
            (
                [
                    "--model",
                    "you/model",
                    "--space-id",
                    "you/space",
                    "--index",
                    str(root / "not_an_index"),
                    "--dry-run",
                    "--output",
                    str(root / "space"),
                ],
                "is not a video index",
                {},
            ),
        ],
        "app": [
            ([], "--model is required (or set EVA02AT_MODEL)", {}),
            (
                ["--model", "m"],
                "EVA02AT_DTYPE must be one of auto, float32, bfloat16, got 'half'",
                {"EVA02AT_DTYPE": "half"},
            ),
            (["--model", "m", "--port", "eighty"], "invalid int value: 'eighty'", {}),
        ],
        "index_videos": [
            (["--model", "m", "--index", "i"], "give one source: --videos FOLDER or --ek100-csv", {}),
            (["--model", "m", "--index", "i", "--videos", missing], f"video folder {missing} does not exist", {}),
            (
                ["--model", "m", "--index", "i", "--videos", videos, "--window", "0"],
                "--window must be a positive number of seconds",
                {},
            ),
            (["--model", "m", "--index", str(root / "new_index"), "--videos", videos], "nothing to index", {}),
            (
                ["--model", "m", "--index", str(root / "new_index"), "--ek100-csv", ek100[1], "--video-root", videos],
                f"none of the 138 videos {ek100[1]} names is in --video-root {videos}",
                {},
            ),
        ],
        "search_videos": [
            (["--index", "i"], "required: --query", {}),
            (["--index", missing, "--query", "cut an onion"], f"{missing} is not a video index", {}),
            (["--index", "i", "--query", "x", "--top-k", "0"], "--top-k must be at least 1", {}),
        ],
        "train_mir": [
            (["--loss", "sms_hard"], "--loss sms_hard does not fit EK-100's graded relevancy", {}),
            (["--train-csv", "t.csv"], "--sentence-csv is required with --train-csv", {}),
            (["--positive-threshold", "1.5"], "--positive-threshold must be in [0, 1)", {}),
            (["--per-device-train-batch-size", "0"], "--per-device-train-batch-size must be at least 1, got 0", {}),
            (
                ["--train-csv", "t.csv", "--sentence-csv", "s.csv", "--video-root", videos],
                "--model is required with --train-csv",
                {},
            ),
        ],
        "pretrain_egoclip": [
            (["--metadata", "egoclip.csv"], "--video-root is required with --metadata", {}),
            (["--loss", "sms"], "--loss sms: pretraining takes infonce or egonce", {}),
            (["--metadata", "egoclip.csv", "--video-root", videos], "--model is required with --metadata", {}),
        ],
        "finetune_charades_ego": [
            (["--train-csv", "t.csv"], "--train-csv needs --test-csv, --classes and --video-root", {}),
            (["--loss", "mimm"], "--loss mimm: Charades-Ego's hard labels take sms_hard or infonce", {}),
            (
                ["--train-csv", "t.csv", "--test-csv", "e.csv", "--classes", "c.txt", "--video-root", videos],
                "--model is required with --train-csv",
                {},
            ),
        ],
    }


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_users_mistake_is_one_line_with_exit_status_2(name, inputs):
    cases = bad_inputs(inputs)[name]
    assert len(cases) >= 3
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda case: run(name, *case[0], env=case[2]), cases))
    for (argv, expected, _), result in zip(cases, results):
        shown = json.dumps({"argv": argv, "stdout": result.stdout[-1500:], "stderr": result.stderr[-3000:]}, indent=1)
        assert "Traceback" not in result.stderr + result.stdout, shown
        assert result.returncode == 2, shown
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], shown
