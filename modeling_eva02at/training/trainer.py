"""A transformers `Trainer` for EVA02-AT's contrastive and multi-instance retrieval objectives.

- `compute_loss` gathers video and text embeddings from every rank with gradients, builds the global
  `sim_text_video` matrix (rows texts, columns videos, as in `losses.py`), gathers what the configured loss needs
  (the batch's relevancy looked up by (clip, sentence) indices, verb / noun ids) and applies the loss (SMS by
  default). Every rank computes the same global loss; the gradient then equals one process on the concatenated
  batch (all_gather's backward sums over ranks, DDP averages).
- `evaluate` encodes the eval split and reports EK-100 MIR mAP / nDCG, so `metric_for_best_model` works.
- The warm-up-then-cosine schedule of docs/recipes.md (1e-6 -> lr over the warm-up, then cosine to `min_lr`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import HubStrategy, SaveStrategy
from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from .. import register_auto_classes
from ..evaluation.metrics import ek100_mir_metrics
from .losses import LOSS_NAMES, SMS_EDGE_CODE, SMS_EDGE_PAPER, batch_relevancy, get_loss, hard_batch_relevancy

SMS_EDGES = {"code": SMS_EDGE_CODE, "paper": SMS_EDGE_PAPER}
"""The named values of `Eva02AtTrainingArguments.sms_edge` (docs/losses.md)."""
OPTIMIZER_NAMES = ("adamw", "lamb")
"""`Eva02AtTrainingArguments.optimizer_name`: transformers' AdamW (its `optim`), or LAMB from pytorch-optimizer."""

register_auto_classes()  # saved folders get auto_map and the remote-code files

logger = logging.getLogger(__name__)


@dataclass
class Eva02AtTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the retrieval losses' settings and docs/recipes.md's learning-rate schedule.

    Defaults that differ from transformers': `remove_unused_columns=False` (rows carry paths and indices the model
    does not take), `ddp_find_unused_parameters=False`, `average_tokens_across_devices=False` (the loss is already
    global).
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
        metadata={"help": "adamw (transformers' --optim) or lamb (pytorch-optimizer's Lamb, the Charades-Ego recipe)",
                  "choices": OPTIMIZER_NAMES},
    )
    temperature: float | None = field(
        default=None,
        metadata={"help": "fix the contrastive temperature (pretraining: 0.05): the logit scale is set to "
                          "ln(1/temperature) and frozen; default: the model's logit scale, learnable unless its "
                          "config freezes it"},
    )
    zero_shot_eval_steps: int = field(
        default=0,
        metadata={"help": "run the trainer's zero-shot tasks (EK-100 MIR, EgoMCQ, Charades-Ego held-out sets) every "
                          "N optimizer steps; 0: never during training"},
    )
    remove_unused_columns: bool = field(default=False)
    ddp_find_unused_parameters: bool | None = field(default=False)
    average_tokens_across_devices: bool = field(default=False)

    def __post_init__(self):
        # Checked here, not only by the command line's choices, so that a typo fails before a run starts.
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {', '.join(LOSS_NAMES)}; got {self.loss!r}")
        if self.push_to_hub and HubStrategy(self.hub_strategy) in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            # Every push is an assembled model repo (modeling_eva02at.hub); the optimizer state those strategies add
            # for resuming from the Hub is not part of it, and would be missing without a word.
            raise ValueError(
                f"hub_strategy={HubStrategy(self.hub_strategy).value!r} is not supported: each push uploads a complete, loadable model "
                "repo (see docs/hub.md), not the resumable checkpoint folder. Use every_save or end, and resume "
                "from a local checkpoint (--resume-from-checkpoint)"
            )
        if self.optimizer_name not in OPTIMIZER_NAMES:
            raise ValueError(f"optimizer_name must be one of {', '.join(OPTIMIZER_NAMES)}; got {self.optimizer_name!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"temperature must be positive (e.g. 0.05), got {self.temperature}")
        self.sms_edge_value()
        super().__post_init__()

    def sms_edge_value(self) -> float:
        """The SMS edge lambda that `sms_edge` names ('code', 'paper') or spells out (a number)."""
        if self.sms_edge in SMS_EDGES:
            return SMS_EDGES[self.sms_edge]
        try:
            return float(self.sms_edge)
        except ValueError:
            raise ValueError(
                f"sms_edge must be {' or '.join(repr(name) for name in SMS_EDGES)} or a number; got {self.sms_edge!r}"
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


def warmup_cosine_schedule(optimizer, warmup_steps: int, total_steps: int, start_lr: float, min_lr: float) -> LambdaLR:
    """Linear warm-up from `start_lr` to each group's lr over `warmup_steps`, then cosine down to `min_lr`."""
    base_lrs = [group["lr"] for group in optimizer.param_groups]

    def factor(base_lr):
        def at(step):
            if step < warmup_steps:
                return (start_lr + (base_lr - start_lr) * step / warmup_steps) / base_lr
            progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
            return (min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base_lr

        return at

    return LambdaLR(optimizer, [factor(lr) for lr in base_lrs])


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` from all ranks along dim 0, keeping the autograd graph (a no-op on one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest `checkpoint-N` in `folder` that was fully written (its `trainer_state.json` and model weights, in
    any of the layouts `save_pretrained` writes), or None.

    The Trainer writes a checkpoint in place and its `trainer_state.json` last: a run killed while saving leaves a
    folder without it, which transformers' `get_last_checkpoint` would still pick (and resuming would fail on).
    """
    if not os.path.isdir(folder):
        return None
    steps = sorted(
        (int(name.split("-", 1)[1]) for name in os.listdir(folder)
         if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit()),
        reverse=True,
    )  # fmt: skip
    for step in steps:
        path = os.path.join(folder, f"checkpoint-{step}")
        weights = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
        if os.path.isfile(os.path.join(path, "trainer_state.json")) and any(
            os.path.isfile(os.path.join(path, name)) for name in weights
        ):
            return path
        logger.warning(f"skipping {path}: it was not completely written (interrupted save?)")
    return None


class RemoteCodeFilesCallback(TrainerCallback):
    """Keep the remote-code `.py` files in `output_dir` from the start: pushes made on each save upload `output_dir`
    but copy only weights and configs into it, so without this the Hub repo cannot load mid-training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None and getattr(model, "_auto_class", None):
            os.makedirs(args.output_dir, exist_ok=True)
            custom_object_save(model, args.output_dir, config=model.config)


def lamb_optimizer(args: TrainingArguments) -> tuple[type, dict]:
    """`(Lamb, kwargs)` for the Trainer's `optimizer_cls_and_kwargs`: pytorch-optimizer's LAMB with the run's lr, betas,
    eps (its weight decay per parameter group comes from the Trainer, which exempts biases and norms)."""
    try:
        from pytorch_optimizer import Lamb
    except ImportError as error:
        raise ImportError("optimizer_name='lamb' (--optimizer-name lamb) needs pytorch-optimizer: "
                          "pip install pytorch-optimizer") from error  # fmt: skip
    return Lamb, {"lr": args.learning_rate, "betas": (args.adam_beta1, args.adam_beta2), "eps": args.adam_epsilon}


@dataclass
class ZeroShotTask:
    """A held-out evaluation from `modeling_eva02at.evaluation`: `run(model, processor, settings)` returns its
    `EvaluationResult`; its metrics are logged as `<prefix>_<name>_<metric>`. Build them with
    :func:`ek100_mir_task`, :func:`egomcq_task` and :func:`charades_ego_task`."""

    name: str
    run: Callable


def ek100_mir_task(annotations, video_root: str, video_ext: str = "MP4") -> ZeroShotTask:
    """EK-100 MIR mAP / nDCG on `annotations` (an `Ek100MirAnnotations`)."""
    from ..evaluation.ek100_mir import evaluate_ek100_mir

    return ZeroShotTask("ek100_mir", lambda model, processor, settings: evaluate_ek100_mir(
        model, processor, annotations, video_root, settings, video_ext=video_ext))  # fmt: skip


def egomcq_task(questions, video_root: str, layout: str = "auto", video_ext: str = "mp4") -> ZeroShotTask:
    """EgoMCQ inter- / intra-video accuracy of `questions` (an `EgoMcqQuestions`)."""
    from ..evaluation.egomcq import evaluate_egomcq

    return ZeroShotTask("egomcq", lambda model, processor, settings: evaluate_egomcq(
        model, processor, questions, video_root, settings, layout=layout, video_ext=video_ext))  # fmt: skip


def charades_ego_task(annotations, video_root: str, video_ext: str = "mp4") -> ZeroShotTask:
    """Charades-Ego mAP over the classes of `annotations` (a `CharadesEgoAnnotations`)."""
    from ..evaluation.charades_ego import evaluate_charades_ego

    return ZeroShotTask("charades_ego", lambda model, processor, settings: evaluate_charades_ego(
        model, processor, annotations, video_root, settings, video_ext=video_ext))  # fmt: skip


class ZeroShotEvaluationCallback(TrainerCallback):
    """Runs the trainer's zero-shot tasks every `args.zero_shot_eval_steps` optimizer steps."""

    def __init__(self, trainer: "Eva02AtTrainer"):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if args.zero_shot_eval_steps > 0 and state.global_step % args.zero_shot_eval_steps == 0:
            self.trainer.zero_shot_evaluate()


class Eva02AtTrainer(Trainer):
    """Trainer for EVA02-AT dual encoders.

    Training batches hold `input_ids`, `attention_mask`, `pixel_values_videos` and, for relevancy-aware losses,
    `video_index`, `sentence_index` (global indices into `relevancy`) and `relevancy` (r_a); for EgoNCE, `verb_ids`
    and `noun_ids` (`Ek100MirDataset` and `VideoTextCollator` provide them all). `relevancy` is the training split's
    (num_clips, num_sentences) matrix; the eval dataset provides its own.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self,
        *args,
        relevancy: np.ndarray | None = None,
        zero_shot_tasks: Sequence[ZeroShotTask] = (),
        **kwargs,
    ):
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if not isinstance(training_args, Eva02AtTrainingArguments):
            raise TypeError("Eva02AtTrainer needs Eva02AtTrainingArguments (loss settings, schedule)")
        if training_args.optimizer_name == "lamb":
            kwargs["optimizer_cls_and_kwargs"] = lamb_optimizer(training_args)
        super().__init__(*args, **kwargs)
        launched = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if launched > self.args.world_size:
            # e.g. an FSDP accelerate config on a machine without GPUs: accelerate falls back to no distribution
            raise RuntimeError(
                f"{launched} processes were launched but the Trainer runs on {self.args.world_size} (accelerate's "
                f"distributed type {self.accelerator.distributed_type}): each process would train alone on the whole "
                "dataset. FSDP through accelerate needs GPUs (or another accelerator); on CPUs launch DDP instead: "
                "accelerate launch --multi_gpu --num_processes N ... --use-cpu"
            )
        self.loss_fn = get_loss(self.args.loss, **self.args.loss_hyperparameters())
        # sms_hard may instead take class labels from the batch (class_ids, Charades-Ego)
        if self.loss_fn.needs_relevancy and relevancy is None and self.args.loss != "sms_hard":
            raise ValueError(f"loss {self.args.loss!r} needs the training split's relevancy matrix (relevancy=...)")
        self.relevancy = relevancy
        if self.args.temperature is not None:
            with torch.no_grad():
                self.model.logit_scale.fill_(math.log(1 / self.args.temperature))
            self.model.logit_scale.requires_grad_(False)
            logger.info(f"temperature fixed at {self.args.temperature}: logit scale ln(1/T) frozen")
        if not self.loss_fn.needs_scale and self.model.logit_scale.requires_grad:
            # A parameter outside the loss gets no gradient, which DDP (find_unused_parameters=False) rejects.
            logger.info(f"loss {self.args.loss!r} does not use the logit scale: freezing it")
            self.model.logit_scale.requires_grad_(False)
        self.zero_shot_tasks = list(zero_shot_tasks)
        self.add_callback(RemoteCodeFilesCallback())
        if self.args.zero_shot_eval_steps > 0:
            if not self.zero_shot_tasks:
                raise ValueError("zero_shot_eval_steps is set but the trainer got no zero_shot_tasks")
            self.add_callback(ZeroShotEvaluationCallback(self))

    def train(self, resume_from_checkpoint=None, **kwargs):
        """`resume_from_checkpoint`: a checkpoint folder, or True / "true" / "last" (any case, as a command line
        passes it) for the newest *complete* checkpoint of output_dir."""
        value = resume_from_checkpoint
        if value is True or (isinstance(value, str) and value.lower() in ("true", "last")):
            resume_from_checkpoint = last_complete_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise FileNotFoundError(
                    f"resume_from_checkpoint={value!r} (--resume-from-checkpoint): no complete checkpoint-N folder "
                    f"(with trainer_state.json and model weights) in output_dir {self.args.output_dir}; check "
                    "--output-dir, pass a checkpoint folder, or start without resuming"
                )
            logger.info(f"resuming from {resume_from_checkpoint}")
        elif isinstance(value, str) and not os.path.isdir(value):
            raise FileNotFoundError(
                f"resume_from_checkpoint={value!r} (--resume-from-checkpoint) is not a folder: pass a checkpoint-N "
                f"folder, or True / last for the newest complete checkpoint in output_dir {self.args.output_dir}"
            )
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    # -- loss ---------------------------------------------------------------------------------------------------------

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        video_index = inputs.pop("video_index", None)
        sentence_index = inputs.pop("sentence_index", None)
        positive = inputs.pop("relevancy", None)
        verb_ids, noun_ids = inputs.pop("verb_ids", None), inputs.pop("noun_ids", None)
        class_ids = inputs.pop("class_ids", None)
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs.get("attention_mask"),
            pixel_values_videos=inputs["pixel_values_videos"],
        )
        video = gather_with_grad(outputs.video_embeds)
        text = gather_with_grad(outputs.text_embeds)
        sim_text_video = text @ video.T  # positives on the diagonal
        if not torch.isfinite(sim_text_video).all():
            self._stop_on_non_finite("similarities", video_index)

        relevancy = None
        if self.loss_fn.needs_relevancy and class_ids is not None:
            if self.args.loss != "sms_hard":
                raise ValueError(f"the batch carries class_ids (hard labels), which only sms_hard takes; loss "
                                 f"{self.args.loss!r} needs graded relevancy (video_index, sentence_index)")  # fmt: skip
            relevancy = hard_batch_relevancy(gather_no_grad(class_ids), device=sim_text_video.device)
        elif self.loss_fn.needs_relevancy:
            if self.relevancy is None:
                raise ValueError(f"loss {self.args.loss!r} needs class_ids in every batch (CharadesEgoDataset items "
                                 "carry them) or the split's relevancy matrix (Eva02AtTrainer(relevancy=...))")
            if video_index is None or sentence_index is None:
                raise ValueError(f"loss {self.args.loss!r} needs video_index and sentence_index in every batch")
            video_index, sentence_index = gather_no_grad(video_index), gather_no_grad(sentence_index)
            positive = gather_no_grad(positive) if positive is not None else None
            relevancy = batch_relevancy(
                self.relevancy,
                video_index.cpu().numpy(),
                sentence_index.cpu().numpy(),
                quantized=self.args.quantize_relevancy,
                positive=positive.cpu() if positive is not None else None,
                device=sim_text_video.device,
            )
        if self.loss_fn.needs_verb_noun:
            if verb_ids is None or noun_ids is None:
                raise ValueError(
                    f"loss {self.args.loss!r} needs verb_ids and noun_ids in every batch (Ek100MirDataset items "
                    "carry them and VideoTextCollator batches them)"
                )
            verb_ids, noun_ids = gather_no_grad(verb_ids), gather_no_grad(noun_ids)
        scale = self.accelerator.unwrap_model(model).scale() if self.loss_fn.needs_scale else None
        loss = self.loss_fn(sim_text_video, scale=scale, relevancy=relevancy, verb_ids=verb_ids, noun_ids=noun_ids)
        if not torch.isfinite(loss):
            self._stop_on_non_finite(f"loss ({loss.item()})", video_index)
        return (loss, outputs) if return_outputs else loss

    def _stop_on_non_finite(self, what: str, video_index) -> None:
        ids = video_index.tolist() if video_index is not None else "n/a"
        raise FloatingPointError(
            f"non-finite {what} at step {self.state.global_step} (epoch {self.state.epoch}); batch clip indices "
            f"{ids}. Raised before the update: the last checkpoint is intact."
        )

    # -- schedule -----------------------------------------------------------------------------------------------------

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.args.warmup_start_lr is None and self.args.min_lr is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.lr_scheduler = warmup_cosine_schedule(
                self.optimizer if optimizer is None else optimizer,
                warmup_steps=self.args.get_warmup_steps(num_training_steps),
                total_steps=num_training_steps,
                start_lr=self.args.warmup_start_lr if self.args.warmup_start_lr is not None else 0.0,
                min_lr=self.args.min_lr if self.args.min_lr is not None else 0.0,
            )
            self._created_lr_scheduler = True
        return self.lr_scheduler

    # -- evaluation ---------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, dataset, description: str = "Encoding") -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised (video, text) embeddings of every item of `dataset`, in dataset order, on every rank."""
        dataloader = self.get_eval_dataloader(dataset)
        model = self.model
        was_training = model.training
        model.eval()
        videos, texts = [], []
        quiet = self.args.disable_tqdm or not self.is_world_process_zero()
        for batch in tqdm(dataloader, desc=description, disable=quiet):
            batch = self._prepare_inputs(batch)
            with self.autocast_smart_context_manager():
                out = model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch.get("attention_mask"),
                    pixel_values_videos=batch["pixel_values_videos"],
                )
            videos.append(self.accelerator.gather_for_metrics(out.video_embeds.float()).cpu())
            texts.append(self.accelerator.gather_for_metrics(out.text_embeds.float()).cpu())
        model.train(was_training)
        return torch.cat(videos), torch.cat(texts)

    # Hub pushes go through modeling_eva02at.hub: every commit is a complete repo (weights, processor, remote code with
    # the pipeline, handler.py, rendered card) that loads and runs, rather than the Trainer's copy of a few files.
    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        from ..hub import push_checkpoint

        if self.args.save_strategy == SaveStrategy.STEPS:
            message = f"Training in progress, step {self.state.global_step}"
        else:
            message = f"Training in progress, epoch {int(self.state.epoch)}"
        push_checkpoint(checkpoint_folder, self.hub_model_id, token=self.args.hub_token,
                        revision=self.args.hub_revision, commit_message=message)  # fmt: skip

    def push_to_hub(self, commit_message="End of training", blocking=True, token=None, revision=None, **kwargs):
        """Push the final model as a complete repo folder (see `modeling_eva02at.hub.push_checkpoint`)."""
        if kwargs:
            raise TypeError(
                f"push_to_hub got {sorted(kwargs)}: the model card is rendered from model_card.md, not from the "
                "Trainer's card arguments; add results with examples/push_to_hub.py --eval-json"
            )
        if self.hub_model_id is None:
            self.init_hf_repo(token=token)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        from ..hub import push_checkpoint

        return push_checkpoint(self.args.output_dir, self.hub_model_id, token=token or self.args.hub_token,
                               revision=revision or self.args.hub_revision, commit_message=commit_message)  # fmt: skip

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """EK-100 MIR mAP / nDCG (video->text, text->video, mean; fractions in [0, 1]) of the eval split."""
        return self.evaluate_and_encode(eval_dataset, metric_key_prefix=metric_key_prefix)[0]

    def evaluate_and_encode(self, eval_dataset=None, metric_key_prefix: str = "eval"):
        """:meth:`evaluate`'s metrics (logged the same way) and the `(video, text)` embeddings of :meth:`encode` they
        come from, for callers that score more on the same clips (the demo's motion-verb table) without encoding them
        again."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None or not hasattr(dataset, "caption_columns"):
            raise ValueError("evaluate needs an Ek100MirDataset-like eval dataset (relevancy and caption_columns)")
        videos, texts = self.encode(dataset, description="Evaluating")
        captions = texts[torch.from_numpy(np.array(dataset.caption_columns))]
        sim_video_text = (videos @ captions.T).numpy()  # clips x captions, the layout of the relevancy matrix
        scores = ek100_mir_metrics(sim_video_text, dataset.relevancy)
        metrics = {f"{metric_key_prefix}_{k}": v for k, v in scores.items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics, (videos, texts)

    def zero_shot_evaluate(self, metric_key_prefix: str = "zero_shot") -> dict[str, float]:
        """Run the zero-shot tasks (on the main process; the others wait for its metrics) and log
        `<prefix>_<task>_<metric>`, e.g. `zero_shot_ek100_mir_avg_mAP`, `zero_shot_egomcq_inter_video_accuracy`."""
        from torch.distributed import broadcast_object_list

        from ..evaluation.encoding import EncodeSettings

        metrics = {}
        if self.is_world_process_zero():
            model = self.accelerator.unwrap_model(self.model)
            was_training = model.training
            model.eval()
            dtype = torch.bfloat16 if self.args.bf16 else torch.float16 if self.args.fp16 else None
            settings = EncodeSettings(batch_size=self.args.per_device_eval_batch_size, progress=False,
                                      num_workers=self.args.dataloader_num_workers, device=self.args.device,
                                      dtype=dtype)  # fmt: skip
            for task in self.zero_shot_tasks:
                result = task.run(model, self.processing_class, settings)
                metrics.update({f"{metric_key_prefix}_{task.name}_{k}": float(v) for k, v in result.metrics.items()
                                if isinstance(v, (int, float))})  # fmt: skip
            model.train(was_training)
        if self.accelerator.num_processes > 1:
            shared = [metrics]
            broadcast_object_list(shared, src=0)
            metrics = shared[0]
        self.log(dict(metrics))  # log() adds the epoch to the dict it gets
        return metrics
