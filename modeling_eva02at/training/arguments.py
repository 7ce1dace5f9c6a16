"""The training arguments: transformers' `TrainingArguments` plus the retrieval losses' settings and the learning-rate
schedule of docs/recipes.md. Importing this module loads transformers' arguments only (no model, no Trainer), so the
training scripts answer --help quickly."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.trainer_utils import HubStrategy


LOSS_NAMES = ("infonce", "egonce", "mimm", "adaptive_mimm", "sms", "sms_hard")
"""The losses of `modeling_eva02at.training.losses` (docs/losses.md), by the name `loss` takes."""
SMS_EDGE_NAMES = ("code", "paper")
"""The named values of `sms_edge`: the authors' code (1.1/240) or the paper (0.1); a number is accepted too."""
OPTIMIZER_NAMES = ("adamw", "lamb")
"""`optimizer_name`: transformers' AdamW (its `optim`), or LAMB from pytorch-optimizer."""


@dataclass
class Eva02AtTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the retrieval losses' settings and docs/recipes.md's learning-rate schedule.

    Defaults that differ from transformers': `remove_unused_columns=False` (rows carry paths and indices the model
    does not take), `ddp_find_unused_parameters=False`, `average_tokens_across_devices=False` (the loss is already
    global), `logging_nan_inf_filter=False` (the trainer stops on a non-finite loss at the next logging step; the
    filter would hide it there, and reads every step's loss on the host to do so).
    """

    loss: str = field(
        default="sms",
        metadata={"help": "the training loss (docs/losses.md); sms_hard needs 0/1 relevancy", "choices": LOSS_NAMES},
    )
    margin: float | None = field(
        default=None, metadata={"help": "margin gamma: SMS 0.6, sms_hard 0.3, MI-MM 0.2, adaptive MI-MM 0.4 by default"}
    )
    sms_tau: float = field(default=0.1, metadata={"help": "SMS relaxation tau"})
    sms_edge: str = field(
        default="code",
        metadata={"help": "SMS lambda: 'code' (1.1/240, the authors' code), 'paper' (0.1), or a number"},
    )
    quantize_relevancy: bool = field(
        default=True, metadata={"help": "look candidates' relevancy up as uint8(240 R)/240, as the authors' code"}
    )
    warmup_start_lr: float | None = field(
        default=None,
        metadata={"help": "docs/recipes.md schedule: linear warm-up from this lr (e.g. 1e-6), then cosine"},
    )
    min_lr: float | None = field(
        default=None, metadata={"help": "docs/recipes.md schedule: final lr of the cosine (e.g. 2e-6)"}
    )
    optimizer_name: str = field(
        default="adamw",
        metadata={
            "help": "adamw (transformers' --optim) or lamb (pytorch-optimizer's Lamb, the Charades-Ego recipe)",
            "choices": OPTIMIZER_NAMES,
        },
    )
    temperature: float | None = field(
        default=None,
        metadata={
            "help": "fix the contrastive temperature (pretraining: 0.05): the logit scale is set to "
            "ln(1/temperature) and frozen; default: the model's logit scale, learnable unless its "
            "config freezes it"
        },
    )
    zero_shot_eval_steps: int = field(
        default=0,
        metadata={
            "help": "run the trainer's zero-shot tasks (EK-100 MIR, EgoMCQ, Charades-Ego held-out sets) every "
            "N optimizer steps; 0: never during training"
        },
    )
    remove_unused_columns: bool = field(default=False)
    ddp_find_unused_parameters: bool | None = field(default=False)
    average_tokens_across_devices: bool = field(default=False)
    logging_nan_inf_filter: bool = field(
        default=False,
        metadata={
            "help": "transformers' filter that replaces a NaN / inf step loss in the log by the average so far. Off "
            "by default: the trainer stops on a non-finite loss at the next logging step instead, which the filter "
            "would hide (and it reads every step's loss on the host)"
        },
    )

    def __post_init__(self):
        # Checked here, not only by the command line's choices, so that a typo fails before a run starts.
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {', '.join(LOSS_NAMES)}; got {self.loss!r}")
        if self.push_to_hub and HubStrategy(self.hub_strategy) in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            # Every push is an assembled model repo (modeling_eva02at.hub); the optimizer state those strategies add
            # for resuming from the Hub is not part of it, and would be missing without a word.
            raise ValueError(
                f"hub_strategy={HubStrategy(self.hub_strategy).value!r} is not supported: each push uploads a "
                "complete, loadable model repo (see docs/hub.md), not the resumable checkpoint folder. Use every_save "
                "or end, and resume from a local checkpoint (--resume-from-checkpoint)"
            )
        if self.optimizer_name not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer_name must be one of {', '.join(OPTIMIZER_NAMES)}; got {self.optimizer_name!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive (e.g. 0.05), got {self.temperature}")
        # TrainingArguments accepts 0; the DataLoader refuses it only after the model is loaded and evaluated.
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        self.sms_edge_value()
        super().__post_init__()

    def sms_edge_value(self) -> float:
        """The SMS edge lambda that `sms_edge` names ('code', 'paper') or spells out (a number)."""
        from .losses import SMS_EDGE_CODE, SMS_EDGE_PAPER  # torch and the model: not needed for --help

        if self.sms_edge in SMS_EDGE_NAMES:
            return {"code": SMS_EDGE_CODE, "paper": SMS_EDGE_PAPER}[self.sms_edge]
        try:
            return float(self.sms_edge)
        except ValueError:
            raise ValueError(
                f"sms_edge must be {' or '.join(repr(name) for name in SMS_EDGE_NAMES)} or a number; "
                f"got {self.sms_edge!r}"
            ) from None

    def loss_hyperparameters(self) -> dict:
        params = {}
        if self.margin is not None:
            params["margin"] = self.margin
        if self.loss in ("sms", "sms_hard"):
            params["tau"] = self.sms_tau
        if self.loss == "sms":
            params["edge"] = self.sms_edge_value()
        return params


__all__ = ["LOSS_NAMES", "OPTIMIZER_NAMES", "SMS_EDGE_NAMES", "Eva02AtTrainingArguments"]
