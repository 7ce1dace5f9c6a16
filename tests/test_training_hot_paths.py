"""The training hot paths: a training step of `Eva02AtTrainer` reads no tensor value on the host, every loss compiles
whole and equals eager, and a non-finite loss is still stopped, at the logging steps where the Trainer reads the loss
anyway."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import transformers

from modeling_eva02at.training.arguments import LOSS_NAMES, Eva02AtTrainingArguments
from modeling_eva02at.training.batch_relevancy import BatchRelevancy
from modeling_eva02at.training.losses import (
    adaptive_max_margin_loss,
    egonce_loss,
    infonce_loss,
    max_margin_loss,
    sms_hard_loss,
    sms_loss,
)
from modeling_eva02at.training.trainer import Eva02AtTrainer

from .conftest import tiny_mir_model
from .host_reads import HOST_SYNC_OPS, host_reads


BATCH = 6
CLIPS, SENTENCES = 10, 12


def relevancy_matrix() -> np.ndarray:
    """A graded (clips, sentences) matrix like EK-100's: 0.5 for a shared verb plus 0.5 x a noun overlap of 0, 1/3,
    2/3 or 1 (values that uint8(240 R) / 240 changes), 1 for each clip's own caption."""
    rng = np.random.default_rng(0)
    relevancy = 0.5 * (rng.random((CLIPS, SENTENCES)) < 0.5) + 0.5 * rng.integers(0, 4, (CLIPS, SENTENCES)) / 3
    relevancy[np.arange(CLIPS), np.arange(CLIPS)] = 1.0  # clip i's own caption is sentence i
    return relevancy.astype(np.float32)


def training_batch(mir_processor, loss: str) -> dict:
    """A collated batch as `VideoTextCollator` gives it (captions padded to the longest, so the mask has zeros),
    with the labels the losses take: clip / sentence indices and r_a, verb / noun multi-hot rows sharing a verb and
    a noun between items 0 and 1 (so EgoNCE is not InfoNCE); for sms_hard, class ids instead (as
    `CharadesEgoCollator` gives them)."""
    captions = ["open the drawer", "open drawer", "take a cup from the shelf", "cut", "wash the pan", "close it"]
    batch = dict(mir_processor(text=captions, padding="longest", return_tensors="pt"))
    generator = torch.Generator().manual_seed(0)
    batch["pixel_values_videos"] = torch.randn(BATCH, 2, 3, 16, 16, generator=generator)
    clips = torch.tensor([0, 1, 2, 3, 4, 1])
    sentences = torch.tensor([0, 1, 2, 3, 4, 5])
    batch["video_index"], batch["sentence_index"] = clips, sentences
    batch["positive_relevancy"] = torch.from_numpy(relevancy_matrix()[clips, sentences])
    batch["verb_multi_hot"] = F.one_hot(torch.tensor([0, 0, 1, 2, 3, 1]), 4).to(torch.uint8)
    batch["noun_multi_hot"] = F.one_hot(torch.tensor([2, 2, 0, 1, 3, 3]), 4).to(torch.uint8)
    if loss == "sms_hard":
        batch["class_ids"] = torch.tensor([3, 1, 3, 0, 2, 1])
    return batch


def make_trainer(tmp_path, loss: str, **overrides) -> Eva02AtTrainer:
    settings = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        loss=loss,
        per_device_train_batch_size=BATCH,
        disable_tqdm=True,
        save_strategy="no",
        dataloader_num_workers=0,
    )
    args = Eva02AtTrainingArguments(**{**settings, **overrides})
    # sms_hard takes the batch's class ids; the others read the split's relevancy matrix
    relevancy = None if loss == "sms_hard" else relevancy_matrix()
    return Eva02AtTrainer(model=tiny_mir_model(), args=args, relevancy=relevancy)


# ---------------------------------------------------------------------------------------------------------------------
# No host reads in a training step
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_a_training_step_reads_no_tensor_value_on_the_host(tmp_path, mir_processor, loss, monkeypatch):
    """`training_step` (forward, global negatives, the loss, backward) of every loss records no aten::item /
    aten::_local_scalar_dense: on a GPU each would stall the host until the device caught up. World size 1: the
    gathers are no-ops, and everything after them is the same code on every rank.

    The one read left is the relevancy look-up's (SMS, adaptive MI-MM): the batch's clip and sentence indices, read
    as numpy before the forward pass is queued, when the batch's upload has just finished and nothing is pending on
    the device."""
    monkeypatch.delenv("EVA02AT_DEBUG_CHECKS", raising=False)
    trainer = make_trainer(tmp_path, loss)
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which this test does not run
    batch = training_batch(mir_processor, loss)
    counts, reads = host_reads(lambda: trainer.training_step(trainer.model, dict(batch)), trainer.model)
    assert counts == dict.fromkeys(HOST_SYNC_OPS, 0), counts
    looks_up_relevancy = loss in ("sms", "adaptive_mimm")
    assert reads == (["numpy", "numpy"] if looks_up_relevancy else []) + ["forward"], reads


def test_the_debug_switch_turns_the_value_checks_on(tmp_path, mir_processor, monkeypatch):
    """EVA02AT_DEBUG_CHECKS=1: the losses' and the trainer's checks read values on every step (and a NaN batch is
    named before its update: tests/test_trainer.py)."""
    monkeypatch.setenv("EVA02AT_DEBUG_CHECKS", "1")
    trainer = make_trainer(tmp_path, "sms")
    trainer.current_gradient_accumulation_steps = 1
    batch = training_batch(mir_processor, "sms")
    counts, reads = host_reads(lambda: trainer.training_step(trainer.model, dict(batch)), trainer.model)
    assert counts["aten::_local_scalar_dense"] > 0 and "__bool__" in reads, (counts, reads)


# ---------------------------------------------------------------------------------------------------------------------
# Logging steps: where the Trainer reads the loss anyway, and where a non-finite one stops training
# ---------------------------------------------------------------------------------------------------------------------


class BatchRows(torch.utils.data.Dataset):
    """The rows of one collated batch (all captions padded alike, so `default_collate` batches them again)."""

    def __init__(self, batch: dict):
        self.batch = batch

    def __len__(self) -> int:
        return len(self.batch["input_ids"])

    def __getitem__(self, index: int) -> dict:
        return {key: value[index] for key, value in self.batch.items()}


def train(tmp_path, mir_processor, callbacks=(), **overrides) -> Eva02AtTrainer:
    """`Eva02AtTrainer.train` with SMS, one step per epoch over the batch's rows."""
    trainer = make_trainer(tmp_path, "sms", **{"optim": "sgd", **overrides})  # the optimizer is not under test
    trainer.train_dataset = BatchRows(training_batch(mir_processor, "sms"))
    trainer.data_collator = torch.utils.data.default_collate
    for callback in callbacks:
        trainer.add_callback(callback)
    trainer.train()
    return trainer


def test_a_run_shorter_than_the_logging_interval_logs_its_loss(tmp_path, mir_processor):
    """2 steps with logging every 10: the last step logs the loss of the run, so the training scripts' loss line
    ("Training loss by step: ...") is not printed empty and a non-finite loss there is caught."""
    trainer = train(tmp_path, mir_processor, max_steps=2, logging_steps=10)
    logged = [(entry["step"], entry["loss"]) for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 1 and logged[0][0] == 2 and math.isfinite(logged[0][1]) and logged[0][1] > 0, logged
    # the logged value is the mean over the two steps, as transformers' own logging steps give it
    assert logged[0][1] == pytest.approx(trainer.state.log_history[-1]["train_loss"], rel=1e-6)
    # a run the interval divides logs as before: steps 2 and 4
    trainer = train(tmp_path / "every-2", mir_processor, max_steps=4, logging_steps=2)
    assert [entry["step"] for entry in trainer.state.log_history if "loss" in entry] == [2, 4]
    assert re.fullmatch(r"Training loss by step: 2: \d\.\d{4}, 4: \d\.\d{4}", trainer.training_loss_line())


class PoisonAfterStep(transformers.TrainerCallback):
    """Sets a weight to NaN after step `step`'s update: every later step's loss is NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))


def test_a_non_finite_loss_stops_training_at_the_next_logging_step(tmp_path, mir_processor, monkeypatch):
    """Step 3's loss is NaN. No step reads it; the logging step 4, which reads the summed loss anyway, raises."""
    monkeypatch.delenv("EVA02AT_DEBUG_CHECKS", raising=False)
    with pytest.raises(
        FloatingPointError, match=r"non-finite training loss \(nan\) at step 4 .*one of steps 1-4 produced it"
    ):
        train(tmp_path, mir_processor, callbacks=[PoisonAfterStep(2)], max_steps=8, logging_steps=4)


def test_no_checkpoint_is_written_after_a_non_finite_loss(tmp_path, mir_processor, monkeypatch):
    """A save between logging steps checks the loss summed since the last log: step 3's NaN stops the save of
    step 3, so the last checkpoint on disk is from before it."""
    monkeypatch.delenv("EVA02AT_DEBUG_CHECKS", raising=False)
    with pytest.raises(FloatingPointError, match=r"at step 3 .*: step 3 produced it"):
        train(
            tmp_path,
            mir_processor,
            callbacks=[PoisonAfterStep(2)],
            max_steps=8,
            logging_steps=2,
            save_strategy="steps",
            save_steps=3,
        )
    assert not (tmp_path / "checkpoint-3").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Whole-graph compilation
# ---------------------------------------------------------------------------------------------------------------------


def loss_calls() -> dict:
    """Each loss function with tiny inputs as the trainer gives them: a float32 similarity matrix that needs grad,
    the model's scale as a 0-d tensor, float64 relevancies, uint8 multi-hot rows."""
    generator = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(BATCH, 8, generator=generator), dim=-1)
    video = F.normalize(torch.randn(BATCH, 8, generator=generator), dim=-1)
    sim = (text @ video.T).requires_grad_()
    scale = torch.tensor(math.log(1 / 0.07)).exp().requires_grad_()
    clips, sentences = [0, 1, 2, 3, 4, 1], [0, 1, 2, 3, 4, 5]
    graded = BatchRelevancy.from_matrix(relevancy_matrix(), clips, sentences)
    hard = BatchRelevancy.from_class_ids(torch.tensor([3, 1, 3, 0, 2, 1]))
    verbs = F.one_hot(torch.tensor([0, 0, 1, 2, 3, 1]), 4).to(torch.uint8)
    nouns = F.one_hot(torch.tensor([2, 2, 0, 1, 3, 3]), 4).to(torch.uint8)
    return {
        "infonce": (infonce_loss, (sim, scale)),
        "egonce": (egonce_loss, (sim, scale, verbs, nouns)),
        "mimm": (max_margin_loss, (sim,)),
        "adaptive_mimm": (adaptive_max_margin_loss, (sim, graded.positive)),
        "sms": (sms_loss, (sim, graded.pairwise, graded.positive)),
        "sms_hard": (sms_hard_loss, (sim, hard.pairwise, hard.positive)),
    }


def test_every_loss_function_is_tested_here():
    assert sorted(loss_calls()) == sorted(LOSS_NAMES)


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_loss_traces_as_one_graph(loss, monkeypatch):
    """No graph break under dynamo: a value read, a data-dependent shape (a boolean-mask selection) or an
    unsupported call would be one."""
    monkeypatch.delenv("EVA02AT_DEBUG_CHECKS", raising=False)
    fn, args = loss_calls()[loss]
    torch._dynamo.reset()
    try:
        explanation = torch._dynamo.explain(fn)(*args)
    finally:
        torch._dynamo.reset()
    reasons = "\n".join(f"{reason.reason}\n  at {reason.user_stack[-1:]}" for reason in explanation.break_reasons)
    assert explanation.graph_break_count == 0, f"{explanation.graph_break_count} graph breaks:\n{reasons}"
    assert explanation.graph_count == 1


def test_every_loss_compiled_whole_by_inductor_equals_eager(monkeypatch):
    """torch.compile(fullgraph=True) with inductor (C++ on the CPU) of every loss, and of its gradient with respect
    to the similarities, equals eager to 1e-5. The six losses are compiled as one function (still one graph, or
    fullgraph=True would raise) so that inductor's start-up is paid once."""
    monkeypatch.delenv("EVA02AT_DEBUG_CHECKS", raising=False)
    calls = loss_calls()
    sim = next(iter(calls.values()))[1][0]

    def every_loss():
        return torch.stack([fn(*args) for fn, args in calls.values()])

    torch._dynamo.reset()
    try:
        compiled = torch.compile(every_loss, fullgraph=True)()
        (compiled_grad,) = torch.autograd.grad(compiled.sum(), sim)  # inductor's backward graph
    finally:
        torch._dynamo.reset()
    expected = every_loss()
    (expected_grad,) = torch.autograd.grad(expected.sum(), sim)
    for name, got, want in zip(calls, compiled, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0, msg=name)
    torch.testing.assert_close(compiled_grad, expected_grad, atol=1e-5, rtol=0)
