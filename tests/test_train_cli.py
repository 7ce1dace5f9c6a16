"""examples/train_mir.py's run (modeling_eva02at.training.train_mir) from its command line: argument choices and
spellings, the demo's and the dataclasses' defaults, every offered loss end to end, weights in every layout
from_pretrained loads (or a clear error), resuming, the demo path, and the training options down to the loss of a step.

The runs parse an argv list as the script does and train in this process (a few steps of a tiny model on a small
demo dataset); the script itself, its --help and its one-line errors are tested in tests/test_cli.py.
"""

import functools
import inspect
import json
import os
import pickle
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_eva02at.demo.model import DEMO_MODEL_CONFIG
from modeling_eva02at.training import train_mir
from modeling_eva02at.training.setup import REPOSITORY_PROCESSOR
from modeling_eva02at.utils.cli import UsageError

from . import cli_runs
from .conftest import TINY_MIR_CONFIG as TINY_CONFIG
from .conftest import tiny_mir_model as tiny_model


run_mir = cli_runs.train_mir


def run_args(demo, output_dir, *extra, model=TINY_CONFIG, init="random"):
    """A 2-step run of the tiny model on the small demo dataset, without evaluation or checkpoints."""
    argv = [
        "--train-csv",
        demo.train_csv,
        "--sentence-csv",
        demo.train_sentence_csv,
        "--video-root",
        demo.video_root,
        "--model",
        model,
        "--num-frames",
        "2",
        "--output-dir",
        str(output_dir),
        "--max-steps",
        "2",
        "--per-device-train-batch-size",
        "8",
        "--use-cpu",
        "--save-strategy",
        "no",
        "--report-to",
        "none",
        "--disable-tqdm",
        "true",
        "--dataloader-num-workers",
        "0",
        "--logging-steps",
        "1",
    ]
    return argv + (["--init", init] if init else []) + list(extra)


def underscored(argv):
    return ["--" + arg[2:].replace("-", "_") if arg.startswith("--") else arg for arg in argv]


# ---------------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--loss", "sms_hard"], "--loss sms_hard does not fit EK-100's graded relevancy: choose one of sms, mimm"),
        (["--on-bad-row", "ignore"], "invalid choice: 'ignore' (choose from 'raise', 'skip')"),
        (["--on_bad_row", "ignore"], "invalid choice: 'ignore' (choose from 'raise', 'skip')"),
        (["--init", "zeros"], "invalid choice: 'zeros' (choose from 'pretrained', 'random')"),
        (["--sms-edge", "wide"], "sms_edge must be 'code' or 'paper' or a number; got 'wide'"),
        (["--positive-threshold", "1"], "--positive-threshold must be in [0, 1)"),
        (["--init", "pretrained"], "--init pretrained needs --model (the demo's own small model has no weights)"),
        (
            ["--train-csv", "t.csv", "--sentence-csv", "s.csv", "--video-root", "v"],
            "--model is required with --train-csv",
        ),
        (["--train-csv", "t.csv"], "--sentence-csv is required with --train-csv"),
        (["--learning-rat", "1e-3"], "unrecognized arguments: --learning-rat 1e-3"),
    ],
)
def test_bad_arguments_are_named_before_anything_runs(flags, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        run_mir(flags)


def test_without_the_demo_the_dataclasses_defaults_apply(demo, tmp_path):
    """Real data (--train-csv): Eva02AtTrainingArguments' own defaults, none of the demo's."""
    _, data, training = train_mir.parse_mir_arguments(run_args(demo, tmp_path))
    assert not data.demo
    assert (training.loss, training.min_lr, training.warmup_start_lr, training.sms_edge) == ("sms", None, None, "code")
    assert training.quantize_relevancy is True and training.output_dir == str(tmp_path)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], dict(loss="egonce", warmup_start_lr=1e-5, min_lr=1e-4, learning_rate=3e-4)),
        (
            ["--loss", "sms", "--min-lr", "2e-6", "--learning-rate", "1e-4"],
            dict(loss="sms", warmup_start_lr=1e-5, min_lr=2e-6, learning_rate=1e-4),
        ),
    ],
)
def test_the_demo_defaults_reach_the_training_arguments_and_flags_beat_them(flags, expected):
    """The demo's settings (DEMO_TRAINING) are used where no flag is given, and a flag overrides each."""
    _, data, training = train_mir.parse_mir_arguments(flags)
    assert data.demo
    assert {name: getattr(training, name) for name in expected} == expected
    assert training.num_train_epochs == train_mir.DEMO_TRAINING["num_train_epochs"]
    assert training.output_dir == train_mir.DEMO_TRAINING["output_dir"]


def test_the_demo_trains_on_its_own_positives(demo, monkeypatch):
    """--positive-threshold reaches the training dataset: 0.9 (each clip's exact captions) for the demo unless given,
    EK-100's 0.1 with --train-csv."""
    from modeling_eva02at.data import ek100

    seen = []
    original = ek100.Ek100MirDataset.__init__

    def spy(self, *args, **kwargs):
        seen.append((kwargs.get("train"), kwargs.get("positive_threshold")))
        original(self, *args, **kwargs)

    monkeypatch.setattr(ek100.Ek100MirDataset, "__init__", spy)
    files = [
        "--train-csv",
        demo.train_csv,
        "--sentence-csv",
        demo.train_sentence_csv,
        "--video-root",
        demo.video_root,
        "--model",
        TINY_CONFIG,
    ]
    for flags, threshold in ((files, 0.1), ([*files, "--positive-threshold", "0.6"], 0.6)):
        seen.clear()
        train_mir.build_mir_datasets(train_mir.parse_mir_arguments(flags)[1], seed=0)
        assert seen == [(True, threshold)]
    # the demo (no --train-csv), on the small demo dataset instead of the generated one
    from modeling_eva02at.demo import ek100 as demo_dataset

    monkeypatch.setattr(demo_dataset, "make_demo_dataset", lambda *args, **kwargs: demo)
    seen.clear()
    train_mir.build_mir_datasets(train_mir.parse_mir_arguments([])[1], seed=0)
    assert (
        seen == [(True, train_mir.DEMO_POSITIVE_THRESHOLD), (False, None)] and train_mir.DEMO_POSITIVE_THRESHOLD == 0.9
    )


def test_both_flag_spellings_parse_alike(demo, tmp_path):
    argv = run_args(
        demo,
        tmp_path,
        "--loss",
        "mimm",
        "--sms-edge",
        "paper",
        "--no-quantize-relevancy",
        "--warmup-start-lr",
        "1e-6",
        "--min-lr",
        "2e-6",
        "--learning-rate",
        "1e-3",
    )
    dashed, underscore = (train_mir.parse_mir_arguments(spelling) for spelling in (argv, underscored(argv)))
    assert dashed[:2] == underscore[:2]
    assert dashed[1].train_csv == demo.train_csv
    training = dashed[2]
    for name in (
        "loss",
        "sms_edge",
        "quantize_relevancy",
        "warmup_start_lr",
        "min_lr",
        "learning_rate",
        "max_steps",
        "per_device_train_batch_size",
        "output_dir",
        "use_cpu",
    ):
        assert getattr(training, name) == getattr(underscore[2], name), name
    assert (training.loss, training.sms_edge, training.quantize_relevancy) == ("mimm", "paper", False)
    assert (training.warmup_start_lr, training.min_lr, training.learning_rate, training.max_steps) == (
        1e-6,
        2e-6,
        1e-3,
        2,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", train_mir.MIR_LOSSES)
def test_every_offered_loss_trains_end_to_end(demo, tmp_path, loss):
    run_mir(run_args(demo, tmp_path, "--loss", loss))
    state = load_file(tmp_path / "model.safetensors")
    assert all(torch.isfinite(tensor).all() for tensor in state.values())


def test_push_to_hub_pushes_the_final_model_once(demo, tmp_path, hub_commits):
    """--push-to-hub: one commit of the final model, the complete repo (Trainer.save_model would push it a second
    time as "Model save")."""
    run_mir(run_args(demo, tmp_path, "--push-to-hub", "--hub-model-id", "someone/eva02at-test", "--hub-token", "hf_x"))
    assert [message for message, _ in hub_commits] == ["End of training"]
    assert {"README.md", "handler.py", "model.safetensors", "pipeline_eva02at.py"} <= set(hub_commits[0][1])


# ---------------------------------------------------------------------------------------------------------------------
# --model and --init
# ---------------------------------------------------------------------------------------------------------------------


def test_model_without_weights_is_an_error_naming_folder_and_flag(demo, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--model .*tiny_mir_config: no weights .*--init random"):
        run_mir(run_args(demo, tmp_path, init=None))
    with pytest.raises(FileNotFoundError, match="--init random"):
        run_mir(run_args(demo, tmp_path, init="pretrained"))


def save_sharded(model, folder):
    model.save_pretrained(folder, max_shard_size="2MB")
    assert os.path.isfile(os.path.join(folder, "model.safetensors.index.json"))


def save_bin(model, folder):
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))


def save_to_hub_cache(model, folder):
    """A Hub id whose files are in the local cache (the tests run offline): returns the id instead of a folder."""
    from huggingface_hub import constants

    repo_id, commit = "someone/eva02at-tiny", "0123456789abcdef0123456789abcdef01234567"
    repo = os.path.join(constants.HF_HUB_CACHE, "models--" + repo_id.replace("/", "--"))
    os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
    with open(os.path.join(repo, "refs", "main"), "w") as f:
        f.write(commit)
    model.save_pretrained(os.path.join(repo, "snapshots", commit))
    return repo_id


@pytest.mark.parametrize("save", [save_sharded, save_bin, save_to_hub_cache], ids=["sharded", "bin", "hub_cache"])
def test_weights_in_every_layout_are_loaded(demo, tmp_path, save):
    """With lr 0 the trained model is the loaded one: its weights must come back out, not a random init."""
    source = tiny_model(seed=7)
    model = save(source, str(tmp_path / "source")) or str(tmp_path / "source")
    run_mir(run_args(demo, tmp_path / "run", "--learning-rate", "0", model=model, init=None))
    trained = load_file(tmp_path / "run" / "model.safetensors")
    expected = source.state_dict()
    assert set(trained) == set(expected)
    for name, tensor in trained.items():
        torch.testing.assert_close(tensor, expected[name], msg=name)


def test_num_frames_resizes_a_pretrained_model_and_its_processor(demo, tmp_path):
    """A 2-frame model trained with --num-frames 3: the model is resized and the processor must sample 3 frames too.
    from_pretrained copies the configuration it is given, so a processor matched to that copy kept the old count
    while the saved config said 3."""
    tiny_model(seed=7).save_pretrained(tmp_path / "source")  # no processor files: hub_configs/eva02at-b16's is used
    argv = run_args(demo, tmp_path / "run", "--max-steps", "1", model=str(tmp_path / "source"), init=None)
    argv[argv.index("--num-frames") + 1] = "3"
    run_mir(argv)
    from modeling_eva02at import Eva02AtConfig, Eva02AtProcessor

    assert Eva02AtConfig.from_pretrained(tmp_path / "run").vision_config.num_frames == 3
    assert Eva02AtProcessor.from_pretrained(tmp_path / "run").image_processor.num_frames == 3


def test_model_loader_names_what_it_cannot_do():
    """The shared loader of the three training scripts: a misspelt vision override would otherwise be set on the
    config and ignored by the model; "pretrained" without a model has no weights to load."""
    from modeling_eva02at.training.setup import load_model_for_training

    common = dict(num_frames=None, default_config=DEMO_MODEL_CONFIG, processor_folder=REPOSITORY_PROCESSOR)
    with pytest.raises(ValueError, match="vision_overrides: 'use_temporal_ropes' is not a field of the vision config"):
        load_model_for_training(None, init="random", vision_overrides={"use_temporal_ropes": False}, **common)
    with pytest.raises(ValueError, match=r"init='pretrained' needs a model folder or Hub id \(--model\)"):
        load_model_for_training(None, init="pretrained", **common)
    with pytest.raises(ValueError, match="init must be one of pretrained, random, got 'zeros'"):
        load_model_for_training(TINY_CONFIG, init="zeros", **common)


def test_init_random_ignores_the_weights(demo, tmp_path):
    source = tiny_model(seed=7)
    source.save_pretrained(tmp_path / "source")
    run_mir(run_args(demo, tmp_path / "run", "--learning-rate", "0", model=str(tmp_path / "source")))
    trained = load_file(tmp_path / "run" / "model.safetensors")
    name = "text_projection.weight"
    assert not torch.allclose(trained[name], source.state_dict()[name])


# ---------------------------------------------------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["True", "true", "last"])
def test_resume_from_checkpoint_true_resumes_the_last_complete_checkpoint(demo, tmp_path, value):
    first = run_args(demo, tmp_path, "--save-strategy", "steps", "--save-steps", "2")
    run_mir(underscored(first))  # steps 1-2, saved as checkpoint-2
    (tmp_path / "checkpoint-5").mkdir()  # an interrupted save: never picked
    resumed = run_args(
        demo, tmp_path, "--save-strategy", "steps", "--save-steps", "1", "--resume-from-checkpoint", value
    )
    resumed[resumed.index("--max-steps") + 1] = "3"
    run_mir(resumed)
    checkpoints = sorted(name for name in os.listdir(tmp_path) if name.startswith("checkpoint-"))
    assert checkpoints == ["checkpoint-2", "checkpoint-3", "checkpoint-5"]  # a fresh start would save checkpoint-1
    with open(tmp_path / "checkpoint-3" / "trainer_state.json") as f:
        assert json.load(f)["global_step"] == 3


def test_resume_from_a_checkpoint_path(demo, tmp_path):
    run_mir(run_args(demo, tmp_path, "--save-strategy", "steps", "--save-steps", "2"))
    resumed = run_args(
        demo,
        tmp_path / "again",
        "--resume-from-checkpoint",
        str(tmp_path / "checkpoint-2"),
        "--save-strategy",
        "steps",
        "--save-steps",
        "3",
    )
    resumed[resumed.index("--max-steps") + 1] = "3"
    run_mir(resumed)
    assert os.listdir(tmp_path / "again").count("checkpoint-3") == 1
    assert not os.path.exists(tmp_path / "again" / "checkpoint-2")


@pytest.mark.parametrize(
    "value, message",
    [
        ("True", r"no complete checkpoint-N folder .* in output_dir"),
        ("last", r"no complete checkpoint-N folder .* in output_dir"),
        ("missing/checkpoint-9", r"'missing/checkpoint-9' \(--resume-from-checkpoint\) is not a folder"),
    ],
)
def test_nothing_to_resume_is_a_clear_error(demo, tmp_path, value, message):
    with pytest.raises(FileNotFoundError, match=message):
        run_mir(run_args(demo, tmp_path, "--resume-from-checkpoint", value))


# ---------------------------------------------------------------------------------------------------------------------
# The demo
# ---------------------------------------------------------------------------------------------------------------------


def test_demo_trains_its_own_model_from_random_initialisation(tmp_path, monkeypatch, capsys):
    """`make demo` runs the script without arguments; here on a smaller demo dataset, for one step."""
    import modeling_eva02at.demo.ek100 as demo_dataset
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    monkeypatch.setattr(
        demo_dataset, "make_demo_dataset", functools.partial(demo_dataset.make_demo_dataset, num_train=32, num_test=16)
    )
    encoded = []
    encode = Eva02AtTrainer.encode
    monkeypatch.setattr(
        Eva02AtTrainer,
        "encode",
        lambda self, dataset, **kw: encoded.append(len(dataset)) or encode(self, dataset, **kw),
    )
    flags = [
        "--demo-dir",
        str(tmp_path / "demo"),
        "--max-steps",
        "1",
        "--disable-tqdm",
        "true",
        "--report-to",
        "none",
        "--dataloader-num-workers",
        "0",
    ]
    rows = run_mir([*flags, "--output-dir", str(tmp_path / "run")])
    assert encoded == [16, 16]  # the MIR table and the motion table share each encoding of the eval clips
    assert set(rows) == {
        "random scores",
        "before training",
        "after training",
        "motion before training",
        "motion after training",
    }
    for name in ("left/right", "up/down", "enlarge/shrink"):
        assert 0 <= rows["motion after training"][f"pair/{name}"] <= 1
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["vision_config"]["hidden_size"] == DEMO_MODEL_CONFIG["vision_config"]["hidden_size"]
    printed = capsys.readouterr().out
    assert "after training" in printed and "Motion verbs on the evaluation split" in printed
    assert "left/right" in printed and "enlarge/shrink" in printed and "Saved to" in printed
    # the ablation's runs keep only their scores: nothing saved, and no message saying otherwise
    run_mir([*flags, "--output-dir", str(tmp_path / "scores-only"), "--save-strategy", "no"], save_model=False)
    assert not os.path.exists(tmp_path / "scores-only" / "config.json")
    assert "Saved to" not in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------------------------
# Training options: from the command line into the loss of a training step
# ---------------------------------------------------------------------------------------------------------------------

DEFAULT_SMS = {"margin": 0.6, "tau": 0.1, "edge": 1.1 / 240, "quantized": True}
"""docs/losses.md's SMS defaults (the authors' code), written out here rather than read from the package."""


@pytest.fixture(scope="module")
def graded_train_relevancy(demo, tmp_path_factory):
    """A train relevancy pickle whose grades are not multiples of 1/240 (so quantising changes them): 1 for each
    clip's own narration, 0.13 / 0.37 / 0.66 / 0.91 or 0 elsewhere. Returns (path, matrix)."""
    import pandas as pd

    clips, sentences = pd.read_csv(demo.train_csv), pd.read_csv(demo.train_sentence_csv)
    rng = np.random.default_rng(0)
    relevancy = rng.choice([0.0, 0.0, 0.13, 0.37, 0.66, 0.91], size=(len(clips), len(sentences))).astype(np.float32)
    relevancy[clips["narration"].to_numpy()[:, None] == sentences["narration"].to_numpy()[None, :]] = 1.0
    path = tmp_path_factory.mktemp("relevancy") / "train_relevancy.pkl"
    with open(path, "wb") as file:
        pickle.dump(relevancy, file)
    return str(path), relevancy


def quantized_by_hand(values: np.ndarray) -> np.ndarray:
    """The authors' uint8(240 R) / 240, the product taken in float32 as their code does."""
    return np.trunc(values.astype(np.float32) * np.float32(240)).astype(np.float64) / 240


def sms_by_hand(sim, relevancy, clips, sentences, margin, tau, edge, quantized) -> float:
    """docs/losses.md's SMS over every ordered pair a != b of the batch, both directions, in plain loops.
    sim[t, v]: text t against video v; sample a is clip clips[a] with its drawn sentence sentences[a]."""
    candidate = quantized_by_hand(relevancy) if quantized else relevancy.astype(np.float64)
    n, terms = len(clips), []
    for a in range(n):
        positive = float(relevancy[clips[a], sentences[a]])  # r_a, never quantised
        for b in range(n):
            if a == b:
                continue
            for delta, d in (
                (positive - candidate[clips[b], sentences[a]], sim[a, a] - sim[a, b]),  # text a -> videos
                (positive - candidate[clips[a], sentences[b]], sim[a, a] - sim[b, a]),
            ):  # video a -> texts
                if delta > edge:
                    terms.append(max(margin * delta - d, 0.0))
                elif abs(delta) < edge:
                    terms.append(max(abs(margin * delta - d) - tau, 0.0))
                else:
                    terms.append(max(d - margin * delta, 0.0))
    return float(np.mean(terms))


def adaptive_mimm_by_hand(sim, relevancy, clips, sentences, margin) -> float:
    """docs/losses.md's adaptive MI-MM: relu(m r_a - d) over every ordered pair a != b, both directions."""
    n, terms = len(clips), []
    for a in range(n):
        anchor_margin = margin * float(relevancy[clips[a], sentences[a]])
        for b in range(n):
            if a != b:
                terms += [
                    max(anchor_margin - (sim[a, a] - sim[a, b]), 0.0),
                    max(anchor_margin - (sim[a, a] - sim[b, a]), 0.0),
                ]
    return float(np.mean(terms))


def first_training_step(monkeypatch, argv):
    """Run the script for one step and return what its first compute_loss saw: the trainer, the batch's clip and
    sentence indices, the similarity of the model as it was at that step (float64) and the loss it returned."""
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    original, seen = Eva02AtTrainer.compute_loss, {}

    def spy(self, model, inputs, *args, **kwargs):
        loss = original(self, model, inputs, *args, **kwargs)
        if not seen:
            with torch.no_grad():
                out = model(
                    input_ids=inputs["input_ids"],
                    attention_mask=inputs["attention_mask"],
                    pixel_values_videos=inputs["pixel_values_videos"],
                )
            seen.update(
                trainer=self,
                loss=loss.item(),
                clips=inputs["video_index"].numpy(),
                sentences=inputs["sentence_index"].numpy(),
                sim=(out.text_embeds.double() @ out.video_embeds.double().T).numpy(),
            )
        return loss

    monkeypatch.setattr(Eva02AtTrainer, "compute_loss", spy)
    run_mir(argv)
    return seen


SMS_OPTIONS = [
    ([], DEFAULT_SMS, True),
    (
        ["--sms-edge", "0.3", "--margin", "0.9", "--sms-tau", "0.25", "--no-quantize-relevancy", "--no-temporal-rope"],
        {"margin": 0.9, "tau": 0.25, "edge": 0.3, "quantized": False},
        False,
    ),
    (
        ["--sms-edge", "paper", "--quantize-relevancy", "false", "--margin", "0.45"],
        {"margin": 0.45, "tau": 0.1, "edge": 0.1, "quantized": False},
        True,
    ),
]


@pytest.mark.parametrize("flags, expected, temporal_rope", SMS_OPTIONS, ids=["defaults", "every_flag", "paper_edge"])
def test_sms_flags_reach_the_loss_of_a_training_step(
    demo, tmp_path, monkeypatch, graded_train_relevancy, flags, expected, temporal_rope
):
    """--sms-edge, --margin, --sms-tau, --(no-)quantize-relevancy: the trainer's loss object holds them, and the loss
    of the first step equals SMS computed by hand with them; --no-temporal-rope reaches the trained model."""
    path, relevancy = graded_train_relevancy
    step = first_training_step(monkeypatch, run_args(demo, tmp_path, "--relevancy", path, "--max-steps", "1", *flags))
    assert step["trainer"].model.config.vision_config.use_temporal_rope is temporal_rope
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["vision_config"]["use_temporal_rope"] is temporal_rope
    loss_fn = step["trainer"].loss_fn
    defaults = inspect.signature(loss_fn.fn).parameters  # what the loss uses where the trainer sets nothing
    used = {name: loss_fn.hyperparameters.get(name, defaults[name].default) for name in ("margin", "tau", "edge")}
    assert loss_fn.name == "sms" and used == pytest.approx({k: expected[k] for k in used})
    assert step["trainer"].args.quantize_relevancy is expected["quantized"]
    inputs = (step["sim"], relevancy, step["clips"], step["sentences"])
    assert step["loss"] == pytest.approx(sms_by_hand(*inputs, **expected), abs=1e-6, rel=1e-5)
    # Each flag changes this batch's loss, so a flag the wiring dropped would show in the value too.
    for name, value in expected.items():
        if value != DEFAULT_SMS[name]:
            assert abs(sms_by_hand(*inputs, **{**expected, name: DEFAULT_SMS[name]}) - step["loss"]) > 1e-5, name


def test_loss_and_margin_flags_reach_the_loss_of_a_training_step(demo, tmp_path, monkeypatch, graded_train_relevancy):
    path, relevancy = graded_train_relevancy
    flags = ["--relevancy", path, "--max-steps", "1", "--loss", "adaptive_mimm", "--margin", "0.7"]
    step = first_training_step(monkeypatch, run_args(demo, tmp_path, *flags))
    loss_fn = step["trainer"].loss_fn
    assert loss_fn.name == "adaptive_mimm" and loss_fn.hyperparameters == {"margin": 0.7}
    inputs = (step["sim"], relevancy, step["clips"], step["sentences"])
    assert step["loss"] == pytest.approx(adaptive_mimm_by_hand(*inputs, margin=0.7), abs=1e-6, rel=1e-5)
    assert abs(adaptive_mimm_by_hand(*inputs, margin=0.4) - step["loss"]) > 1e-5  # the default margin differs
