"""modeling_eva02at.training.trainer: the trainer with every loss (single and 2-process), resume, schedule, pushes,
bad input. The data pipeline is tested in tests/test_data.py, train_mir.py's command line in tests/test_train_cli.py."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_eva02at.data.collate import VideoTextCollator
from modeling_eva02at.data.ek100 import Ek100MirAnnotations, Ek100MirDataset
from modeling_eva02at.training.arguments import LOSS_NAMES, Eva02AtTrainingArguments
from modeling_eva02at.training.batch_relevancy import BatchRelevancy
from modeling_eva02at.training.losses import SMS_EDGE_PAPER, egonce_loss, get_loss, sms_loss
from modeling_eva02at.training.optimization import warmup_cosine_schedule
from modeling_eva02at.training.trainer import Eva02AtTrainer, last_complete_checkpoint

from .conftest import REPO_ROOT, run_on_two_cpu_processes
from .conftest import tiny_mir_model as tiny_model


HERE = os.path.dirname(os.path.abspath(__file__))


def training_args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        per_device_eval_batch_size=16,
        learning_rate=1e-3,
        use_cpu=True,
        report_to="none",
        seed=0,
        dataloader_num_workers=0,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    values.update(overrides)
    return Eva02AtTrainingArguments(**values)


def make_trainer(tmp_path, splits, mir_processor, model=None, **overrides):
    train, test = splits
    return Eva02AtTrainer(
        model=model or tiny_model(),
        args=training_args(tmp_path, **overrides),
        train_dataset=train,
        eval_dataset=test,
        data_collator=VideoTextCollator(mir_processor),
        processing_class=mir_processor,
        relevancy=train.relevancy,
    )


# ---------------------------------------------------------------------------------------------------------------------


def test_compute_loss_is_sms_of_the_batch(tmp_path, splits, mir_processor):
    trainer = make_trainer(tmp_path, splits, mir_processor)
    train, _ = splits
    batch = VideoTextCollator(mir_processor)([train[i] for i in range(6)])
    model = trainer.model.eval()
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values_videos=batch["pixel_values_videos"],
        )
    # sms_loss and BatchRelevancy are checked against plain loops in tests/test_losses.py, and the same step
    # from the command line against SMS written out by hand in tests/test_train_cli.py.
    batch_relevancy = BatchRelevancy.from_matrix(
        train.relevancy, batch["video_index"], batch["sentence_index"], positive_relevancy=batch["positive_relevancy"]
    )
    expected = sms_loss(out.text_embeds @ out.video_embeds.T, batch_relevancy.pairwise, batch_relevancy.positive)
    torch.testing.assert_close(loss.detach(), expected.to(loss.dtype))
    assert not trainer.model.logit_scale.requires_grad  # SMS does not use it: frozen, so DDP sees no unused param


def test_compute_loss_is_egonce_of_the_batch_with_the_clips_classes(tmp_path, splits, mir_processor):
    trainer = make_trainer(tmp_path, splits, mir_processor, loss="egonce")
    train, _ = splits
    clips = train.annotations.clips
    groups = clips.groupby(["verb_class", "noun_class"]).indices.values()
    twins = next(group for group in groups if len(group) > 1)[:2].tolist()  # sharing verb and noun: not InfoNCE
    items = [train[i] for i in twins + [i for i in range(8) if i not in twins][:6]]
    batch = VideoTextCollator(mir_processor)(items)
    model = trainer.model.eval()
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            pixel_values_videos=batch["pixel_values_videos"],
        )
        verbs = torch.tensor(np.stack([item["verb_multi_hot"] for item in items]))
        nouns = torch.tensor(np.stack([item["noun_multi_hot"] for item in items]))
        # egonce_loss is checked against a hand-written cross-entropy in tests/test_losses.py
        expected = egonce_loss(out.text_embeds @ out.video_embeds.T, model.scale(), verbs, nouns)
        infonce = get_loss("infonce")(out.text_embeds @ out.video_embeds.T, scale=model.scale())
    torch.testing.assert_close(loss.detach(), expected)
    assert abs(loss.item() - infonce.item()) > 1e-4
    assert trainer.model.logit_scale.requires_grad


@pytest.mark.parametrize("loss", [name for name in LOSS_NAMES if name != "sms_hard"])
def test_every_loss_trains_through_the_trainer(tmp_path, splits, mir_processor, loss):
    trainer = make_trainer(tmp_path, splits, mir_processor, loss=loss, max_steps=2)
    trainer.train()
    assert trainer.state.global_step == 2
    assert all(np.isfinite(entry["loss"]) for entry in trainer.state.log_history if "loss" in entry)


def test_sms_hard_trains_on_0_1_relevancy_and_names_sms_for_graded(tmp_path, splits, mir_processor):
    """sms_hard is the Charades-Ego loss: 0/1 relevancy trains, EK-100's graded relevancy is refused."""
    train, test = splits
    hard = (train.relevancy == 1).astype(np.float32)  # each clip is relevant to its own narration at least
    annotations = Ek100MirAnnotations(train.annotations.clips, train.annotations.sentences, hard)
    hard_train = Ek100MirDataset(annotations, train.video_root, train=True)
    trainer = make_trainer(tmp_path, (hard_train, test), mir_processor, loss="sms_hard", max_steps=2)
    trainer.train()
    assert trainer.state.global_step == 2
    # checked once, when the trainer gets the matrix, not by the loss on every step
    with pytest.raises(ValueError, match="'sms_hard' needs 0/1 relevancy .*use sms"):
        make_trainer(tmp_path / "graded", splits, mir_processor, loss="sms_hard", max_steps=1)


def test_training_arguments_check_loss_and_sms_edge(tmp_path):
    with pytest.raises(ValueError, match="loss must be one of infonce, egonce, .*; got 'triplet'"):
        training_args(tmp_path, loss="triplet")
    with pytest.raises(ValueError, match="sms_edge must be 'code' or 'paper' or a number; got 'wide'"):
        training_args(tmp_path, sms_edge="wide")
    assert training_args(tmp_path, sms_edge="paper").loss_hyperparameters()["edge"] == SMS_EDGE_PAPER
    assert training_args(tmp_path, sms_edge="0.05").loss_hyperparameters()["edge"] == 0.05


def test_non_finite_loss_stops_with_step_and_batch_under_the_debug_switch(tmp_path, splits, mir_processor, monkeypatch):
    """EVA02AT_DEBUG_CHECKS=1 checks every step, before its update, naming the batch; without it the check waits for
    the next logging step (tests/test_training_hot_paths.py)."""
    monkeypatch.setenv("EVA02AT_DEBUG_CHECKS", "1")
    trainer = make_trainer(tmp_path, splits, mir_processor)
    train, _ = splits
    batch = VideoTextCollator(mir_processor)([train[i] for i in range(4)])
    batch["pixel_values_videos"][0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"at step 0 .*clip indices \[0, 1, 2, 3\]"):
        trainer.compute_loss(trainer.model, batch)


def test_warmup_cosine_schedule_follows_the_recipe():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=2e-5)
    schedule = warmup_cosine_schedule(optimizer, warmup_steps=10, total_steps=110, start_lr=1e-6, min_lr=2e-6)
    lrs = []
    for _ in range(111):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(1e-6) and lrs[5] == pytest.approx(1e-6 + 0.5 * 19e-6)
    assert lrs[10] == pytest.approx(2e-5) and lrs[60] == pytest.approx(2e-6 + 0.5 * 18e-6)
    assert lrs[110] == pytest.approx(2e-6)


def test_trainer_uses_the_recipe_schedule(tmp_path, splits, mir_processor):
    trainer = make_trainer(tmp_path, splits, mir_processor, warmup_start_lr=1e-5, min_lr=1e-4, warmup_steps=2)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(1e-5)


def test_train_evaluate_and_checkpoints_carry_remote_code(tmp_path, splits, mir_processor):
    # Only the ranges here: evaluate's numbers are compared with a computation by hand in
    # tests/test_evaluation_end_to_end.py.
    trainer = make_trainer(tmp_path, splits, mir_processor, max_steps=4, save_strategy="steps", save_steps=2)
    before = trainer.evaluate()
    assert set(before) >= {"eval_avg_mAP", "eval_avg_nDCG", "eval_vis2txt_mAP", "eval_txt2vis_nDCG"}
    trainer.train()
    after = trainer.evaluate()
    assert all(0.0 <= after[k] <= 1.0 for k in after if "mAP" in k or "nDCG" in k)
    for folder in (tmp_path, tmp_path / "checkpoint-2", tmp_path / "checkpoint-4"):
        files = set(os.listdir(folder))
        assert {"configuration_eva02at.py", "modeling_eva02at.py"} <= files, folder
    checkpoint = set(os.listdir(tmp_path / "checkpoint-4"))
    expected = {"model.safetensors", "config.json", "processor_config.json", "tokenizer.json", "trainer_state.json"}
    assert expected <= checkpoint


def test_resume_reaches_the_same_weights(tmp_path, splits, mir_processor):
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        """Simulates a run killed right after its step-3 checkpoint."""

        def on_save(self, args, state, control, **kwargs):
            if state.global_step == 3:
                control.should_training_stop = True

    common = dict(max_steps=6, save_strategy="steps", save_steps=3, per_device_train_batch_size=6)
    uninterrupted = make_trainer(tmp_path / "a", splits, mir_processor, **common)
    uninterrupted.train()

    killed = make_trainer(tmp_path / "b", splits, mir_processor, **common)
    killed.add_callback(StopAfter())
    killed.train()
    assert killed.state.global_step == 3
    # a later save that was interrupted half-way must not be picked
    (tmp_path / "b" / "checkpoint-5").mkdir()
    (tmp_path / "b" / "checkpoint-5" / "config.json").write_text("{}")
    assert last_complete_checkpoint(str(tmp_path / "b")) == str(tmp_path / "b" / "checkpoint-3")
    # a sharded save is complete too
    (tmp_path / "b" / "checkpoint-4").mkdir()
    (tmp_path / "b" / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (tmp_path / "b" / "checkpoint-4" / "model.safetensors.index.json").write_text("{}")
    assert last_complete_checkpoint(str(tmp_path / "b")) == str(tmp_path / "b" / "checkpoint-4")
    for name in os.listdir(tmp_path / "b" / "checkpoint-4"):
        os.remove(tmp_path / "b" / "checkpoint-4" / name)
    (tmp_path / "b" / "checkpoint-4").rmdir()
    resumed = make_trainer(tmp_path / "b", splits, mir_processor, model=tiny_model(seed=123), **common)
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 6
    for (name, a), (_, b) in zip(uninterrupted.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["sms", "infonce", "egonce"])
def test_two_processes_equal_one_process_on_the_concatenated_batch(tmp_path, loss):
    """accelerate launch --multi_gpu --num_processes 2 on CPU (gloo, DDP) against one process, same global batch."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    script = os.path.join(HERE, "distributed_loss_check.py")
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    subprocess.run([sys.executable, script, str(one), loss], check=True, env=env, cwd=tmp_path, timeout=300)
    result = run_on_two_cpu_processes(script, str(two), loss, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    single, double = load_file(one), load_file(two)
    assert single["world_size"].item() == 1 and double["world_size"].item() == 2
    torch.testing.assert_close(double["loss"], single["loss"], atol=1e-5, rtol=0)
    grads = [k for k in single if k.startswith("grad.")]
    assert grads and set(grads) == {k for k in double if k.startswith("grad.")}
    assert any("vision_model" in k for k in grads) and any("text_model" in k for k in grads)
    for key in grads:
        torch.testing.assert_close(double[key], single[key], atol=1e-5, rtol=0, msg=key)


@pytest.mark.slow
def test_train_mir_script_end_to_end(tmp_path, demo):
    """examples/train_mir.py on real-format files: trains, evaluates, saves a folder that loads as remote code."""
    output = tmp_path / "run"
    command = [
        sys.executable,
        os.path.join(REPO_ROOT, "examples", "train_mir.py"),
        "--train-csv",
        demo.train_csv,
        "--sentence-csv",
        demo.train_sentence_csv,
        "--video-root",
        demo.video_root,
        "--eval-csv",
        demo.test_csv,
        "--eval-sentence-csv",
        demo.test_sentence_csv,
        "--model",
        os.path.join(HERE, "fixtures", "tiny_mir_config"),
        "--init",
        "random",
        "--num-frames",
        "2",
        "--output-dir",
        str(output),
        "--max-steps",
        "3",
        "--per-device-train-batch-size",
        "8",
        "--use-cpu",
        "--save-strategy",
        "no",
        "--report-to",
        "tensorboard",
        "--logging-steps",
        "1",
        "--disable-tqdm",
        "true",
    ]
    result = subprocess.run(
        command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path, timeout=600, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "after training" in result.stdout and "random scores" in result.stdout
    events = [f for _, _, files in os.walk(output) for f in files if f.startswith("events.out.tfevents")]
    assert events, "--report-to tensorboard wrote no event file"
    loader = (
        "import sys, torch; from transformers import AutoModel, AutoProcessor;"
        "m = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True);"
        "p = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True);"
        "print(type(m).__module__, type(p).__name__, m.config.vision_config.num_frames)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", loader, str(output)],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    module, processor_name, frames = loaded.stdout.split()
    assert module.startswith("transformers_modules") and processor_name == "Eva02AtProcessor" and frames == "2"


def test_every_push_is_a_complete_hub_repo(tmp_path, splits, mir_processor, hub_commits):
    """hub_strategy=every_save pushes on each save: every commit must be the assembled repo (remote code with the
    pipeline, handler.py, the rendered card), so the Hub repo loads and runs mid-training. HfApi is patched."""
    from modeling_eva02at import REMOTE_CODE_FILES

    trainer = make_trainer(
        tmp_path,
        splits,
        mir_processor,
        max_steps=2,
        save_strategy="steps",
        save_steps=1,
        push_to_hub=True,
        hub_model_id="someone/eva02at-test",
        hub_token="hf_fake",
    )
    trainer.train()
    trainer.push_to_hub()
    expected = sorted(
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
    assert [message for message, _ in hub_commits] == [
        "Training in progress, step 1",
        "Training in progress, step 2",
        "End of training",
    ]
    for message, files in hub_commits:
        assert files == expected, message


@pytest.mark.parametrize("strategy", ["checkpoint", "all_checkpoints"])
def test_hub_strategies_that_push_resumable_checkpoints_are_refused(tmp_path, strategy):
    with pytest.raises(ValueError, match=f"hub_strategy='{strategy}' is not supported: each push uploads a complete"):
        training_args(tmp_path, push_to_hub=True, hub_model_id="someone/eva02at-test", hub_strategy=strategy)


class FixedBatch(torch.utils.data.Dataset):
    """The rows of one collated batch (decoded once): every training step sees exactly these clips and captions.
    As an eval dataset it carries the relevancy and caption columns `Eva02AtTrainer.evaluate` scores with."""

    def __init__(self, batch: dict, relevancy: np.ndarray):
        self.rows = {key: value for key, value in batch.items() if torch.is_tensor(value)}
        self.relevancy = relevancy
        self.caption_columns = np.arange(len(relevancy))  # clip i's own narration is sentence i

    def __len__(self) -> int:
        return len(self.rows["input_ids"])

    def __getitem__(self, index: int) -> dict:
        return {key: value[index] for key, value in self.rows.items()}


def test_a_few_dozen_steps_on_a_fixed_batch_lower_the_loss_and_raise_retrieval(tmp_path, splits, mir_processor):
    """Training learns: 24 SMS steps on 8 fixed clips (seed 0) lower the loss of that batch and raise its retrieval
    mAP / nDCG. A trainer that never stepped the optimizer, or stepped it the wrong way, fails here."""
    train, _ = splits
    annotations = train.annotations
    # 8 clips whose narration_id opens a caption of the sentence CSV, with those 8 captions: clip i <-> sentence i.
    rows = np.flatnonzero(annotations.clips["narration_id"].isin(annotations.sentences["narration_id"]))[:8]
    columns = [
        int(np.flatnonzero(annotations.sentences["narration_id"] == annotations.clips["narration_id"][row])[0])
        for row in rows
    ]
    subset = Ek100MirAnnotations(
        annotations.clips.iloc[rows].reset_index(drop=True),
        annotations.sentences.iloc[columns].reset_index(drop=True),
        annotations.relevancy[np.ix_(rows, columns)],
    )
    collate = VideoTextCollator(mir_processor)
    training = Ek100MirDataset(subset, train.video_root, train=True, seed=0)
    evaluation = Ek100MirDataset(subset, train.video_root, train=False)
    fixed = FixedBatch(collate([training[i] for i in range(8)]), subset.relevancy)
    own_captions = FixedBatch(collate([evaluation[i] for i in range(8)]), subset.relevancy)
    trainer = Eva02AtTrainer(
        model=tiny_model(seed=0),
        args=training_args(
            tmp_path, max_steps=24, learning_rate=2e-3, warmup_steps=0, per_device_eval_batch_size=8, logging_steps=10
        ),
        train_dataset=fixed,
        data_collator=torch.utils.data.default_collate,
        relevancy=subset.relevancy,
    )
    batch = torch.utils.data.default_collate([fixed[i] for i in range(8)])

    def loss_and_metrics():
        with torch.no_grad():
            loss = trainer.compute_loss(trainer.model.eval(), batch).item()
        # evaluate's numbers are checked against a computation by hand in tests/test_evaluation_end_to_end.py
        return loss, trainer.evaluate(eval_dataset=own_captions)

    loss_before, before = loss_and_metrics()
    trainer.train()
    loss_after, after = loss_and_metrics()
    assert trainer.state.global_step == 24
    assert loss_after < 0.75 * loss_before, (loss_before, loss_after)
    assert after["eval_avg_mAP"] > before["eval_avg_mAP"] + 0.1, (before, after)
    assert after["eval_avg_nDCG"] > before["eval_avg_nDCG"] + 0.1, (before, after)


@pytest.mark.parametrize("local_processes, workers", [(1, 0), (1, 1), (2, 0), (4, 3)])
def test_cpu_training_threads_leave_cores_to_workers_and_other_ranks(monkeypatch, local_processes, workers):
    from modeling_eva02at.utils.runtime import set_cpu_threads

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_processes))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    try:
        expected = max(1, 8 // local_processes - workers)
        assert set_cpu_threads(workers) == expected and torch.get_num_threads() == expected
        monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's (or accelerate launch's) choice is left alone
        torch.set_num_threads(before)
        assert set_cpu_threads(workers) is None and torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)
