"""A transformers `Trainer` for EVA02-AT's contrastive and multi-instance retrieval objectives.

- `compute_loss` gathers video and text embeddings from every rank with gradients, builds the global
  `sim_text_video` matrix (rows texts, columns videos, as in `losses.py`), gathers what the configured loss needs
  (the batch's relevancy looked up by (clip, sentence) indices, verb / noun labels) and applies the loss (SMS by
  default). Every rank computes the same global loss; the gradient then equals one process on the concatenated
  batch (all_gather's backward sums over ranks, DDP averages). A training step reads no tensor value back from the
  device once its forward pass is queued; a non-finite loss stops training at the next logging step, where the
  Trainer reads the loss anyway (`EVA02AT_DEBUG_CHECKS=1`: at the batch itself; docs/losses.md).
- `evaluate` encodes the eval split and reports EK-100 MIR mAP / nDCG, so `metric_for_best_model` works.
- The warm-up-then-cosine schedule of docs/recipes.md (1e-6 -> lr over the warm-up, then cosine to `min_lr`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import HubStrategy, IntervalStrategy, SaveStrategy
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from .. import register_auto_classes
from ..evaluation.metrics import ek100_mir_metrics
from ..hub import push_checkpoint
from .arguments import Eva02AtTrainingArguments
from .batch_relevancy import BatchRelevancy, is_hard_labels
from .callbacks import RemoteCodeFilesCallback, ZeroShotEvaluationCallback, ZeroShotTask
from .distributed import gather_no_grad, gather_with_grad
from .losses import DEBUG_CHECKS_VARIABLE, debug_checks_enabled, get_loss
from .optimization import lamb_optimizer, warmup_cosine_schedule


register_auto_classes()  # saved folders get auto_map and the remote-code files

logger = logging.getLogger(__name__)


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest `checkpoint-N` in `folder` that was fully written (its `trainer_state.json` and model weights, in
    any of the layouts `save_pretrained` writes), or None.

    The Trainer writes a checkpoint in place and its `trainer_state.json` last: a run killed while saving leaves a
    folder without it, which transformers' `get_last_checkpoint` would still pick (and resuming would fail on).
    """
    if not os.path.isdir(folder):
        return None
    steps = sorted(
        (
            int(name.split("-", 1)[1])
            for name in os.listdir(folder)
            if name.startswith("checkpoint-") and name.split("-", 1)[1].isdigit()
        ),
        reverse=True,
    )
    for step in steps:
        path = os.path.join(folder, f"checkpoint-{step}")
        weights = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
        if os.path.isfile(os.path.join(path, "trainer_state.json")) and any(
            os.path.isfile(os.path.join(path, name)) for name in weights
        ):
            return path
        logger.warning(f"skipping {path}: it was not completely written (interrupted save?)")
    return None


class LogLastStepCallback(TrainerCallback):
    """With step-wise logging, the last step logs too, even when it is not a multiple of `logging_steps`.

    Otherwise a run shorter than the logging interval logs no training loss at all (the training scripts printed an
    empty loss line), the loss of the steps after the last multiple never reaches the log, and a non-finite loss among
    them escapes the trainer's check."""

    def on_step_end(self, args, state, control, **kwargs):
        if args.logging_strategy == IntervalStrategy.STEPS and state.global_step >= state.max_steps:
            control.should_log = True
        return control


class Eva02AtTrainer(Trainer):
    """Trainer for EVA02-AT dual encoders.

    Training batches hold `input_ids`, `attention_mask`, `pixel_values_videos` and, for relevancy-aware losses,
    `video_index`, `sentence_index` (global indices into `relevancy`) and `positive_relevancy` (r_a); for EgoNCE,
    `verb_multi_hot` and `noun_multi_hot` (`Ek100MirDataset` and `VideoTextCollator` provide them all). `relevancy` is
    the training split's (num_clips, num_sentences) matrix; the eval dataset provides its own.
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
        if self.args.loss == "sms_hard" and relevancy is not None and not is_hard_labels(relevancy):
            # checked once here rather than by the loss on every step (a read from the device)
            raise ValueError(
                "loss 'sms_hard' needs 0/1 relevancy (hard labels, e.g. Charades-Ego's): this relevancy matrix has "
                "other values; for graded relevancy such as EK-100's use sms"
            )
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
        self.add_callback(LogLastStepCallback())
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
        positive_relevancy = inputs.pop("positive_relevancy", None)
        verb_multi_hot, noun_multi_hot = inputs.pop("verb_multi_hot", None), inputs.pop("noun_multi_hot", None)
        class_ids = inputs.pop("class_ids", None)
        device = inputs["input_ids"].device
        # Before the forward pass: the relevancy look-up reads the batch's clip and sentence indices on the host, and
        # the batch has just been copied to the device, so nothing is pending there for that read to wait on. From
        # here on, forward, loss and backward are queued without reading a value back (docs/losses.md).
        batch_relevancy = self._batch_relevancy(video_index, sentence_index, positive_relevancy, class_ids, device)
        if self.loss_fn.needs_verb_noun:
            if verb_multi_hot is None or noun_multi_hot is None:
                raise ValueError(
                    f"loss {self.args.loss!r} needs verb_multi_hot and noun_multi_hot in every batch (the datasets' "
                    "items carry them and VideoTextCollator batches them)"
                )
            verb_multi_hot, noun_multi_hot = gather_no_grad(verb_multi_hot), gather_no_grad(noun_multi_hot)

        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs.get("attention_mask"),
            pixel_values_videos=inputs["pixel_values_videos"],
        )
        video = gather_with_grad(outputs.video_embeds)
        text = gather_with_grad(outputs.text_embeds)
        sim_text_video = text @ video.T  # positives on the diagonal
        # Per-step value checks read from the device: only under EVA02AT_DEBUG_CHECKS, which stops at the batch
        # itself. Otherwise a non-finite loss is caught at the next logging step (see `log`).
        debug = debug_checks_enabled()
        if debug and not torch.isfinite(sim_text_video).all():
            self._stop_on_non_finite("similarities", video_index)
        scale = self.accelerator.unwrap_model(model).scale() if self.loss_fn.needs_scale else None
        loss = self.loss_fn(
            sim_text_video,
            scale=scale,
            batch_relevancy=batch_relevancy,
            verb_multi_hot=verb_multi_hot,
            noun_multi_hot=noun_multi_hot,
        )
        if debug and not torch.isfinite(loss):
            self._stop_on_non_finite(f"loss ({loss.item()})", video_index)
        return (loss, outputs) if return_outputs else loss

    def _batch_relevancy(self, video_index, sentence_index, positive_relevancy, class_ids, device):
        """The global batch's `BatchRelevancy` for a loss that needs one (None otherwise): from the batch's class ids
        (sms_hard), or looked up in the split's relevancy matrix by the gathered clip and sentence indices."""
        if not self.loss_fn.needs_relevancy:
            return None
        if class_ids is not None:
            if self.args.loss != "sms_hard":
                raise ValueError(
                    f"the batch carries class_ids (hard labels), which only sms_hard takes; loss "
                    f"{self.args.loss!r} needs graded relevancy (video_index, sentence_index)"
                )
            # compared on the device: no value is read back
            return BatchRelevancy.from_class_ids(gather_no_grad(class_ids), device=device)
        if self.relevancy is None:
            raise ValueError(
                f"loss {self.args.loss!r} needs class_ids in every batch (CharadesEgoDataset items "
                "carry them) or the split's relevancy matrix (Eva02AtTrainer(relevancy=...))"
            )
        if video_index is None or sentence_index is None:
            raise ValueError(f"loss {self.args.loss!r} needs video_index and sentence_index in every batch")
        if positive_relevancy is not None:
            positive_relevancy = gather_no_grad(positive_relevancy)
        return BatchRelevancy.from_matrix(
            self.relevancy,
            gather_no_grad(video_index).cpu().numpy(),
            gather_no_grad(sentence_index).cpu().numpy(),
            quantized=self.args.quantize_relevancy,
            positive_relevancy=positive_relevancy,
            device=device,
        )

    def _stop_on_non_finite(self, what: str, video_index) -> None:
        ids = video_index.tolist() if video_index is not None else "n/a"
        raise FloatingPointError(
            f"non-finite {what} at step {self.state.global_step} (epoch {self.state.epoch}); batch clip indices "
            f"{ids}. Raised before the update: the last checkpoint is intact."
        )

    def training_loss_line(self) -> str:
        """The logged training losses as one line, each with its step (the last step always logs one)."""
        logged = [(entry["step"], entry["loss"]) for entry in self.state.log_history if "loss" in entry]
        if not logged:
            return "Training loss: none logged"
        return "Training loss by step: " + ", ".join(f"{step}: {loss:.4f}" for step, loss in logged)

    # -- the non-finite loss stop, where the Trainer reads the loss anyway ---------------------------------------------

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Stop on a non-finite training loss before it is logged.

        The Trainer sums the steps' losses on the device and reads the sum on the host only at a logging step (and
        once at the end for `train_loss`): checking it here costs no device sync, where a check in every step would
        cost one. `logging_nan_inf_filter` is off by default (Eva02AtTrainingArguments) so that the sum carries the
        NaN here; the last step is always a logging step (`LogLastStepCallback`). `_save_checkpoint` checks the sum
        too, so no checkpoint is written after a non-finite step."""
        for key in ("loss", "train_loss"):
            if key in logs and not math.isfinite(logs[key]):
                self._stop_on_non_finite_sum(f"training {key.replace('_', ' ')} ({logs[key]})")
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial):
        # A save between logging steps reads the sum of the losses since the last log: a save copies every weight to
        # the host anyway, so this read adds no wait worth counting.
        accumulated = getattr(self, "_tr_loss", None)  # the Trainer's on-device sum (transformers 5)
        if isinstance(accumulated, torch.Tensor) and not torch.isfinite(accumulated).all():
            self._stop_on_non_finite_sum("training loss")
        return super()._save_checkpoint(model, trial)

    def _stop_on_non_finite_sum(self, what: str) -> None:
        # the sum covers the steps since the last logged loss
        logged = [entry["step"] for entry in self.state.log_history if "loss" in entry]
        first, step = (logged[-1] + 1 if logged else 1), self.state.global_step
        steps = f"step {step}" if first == step else f"one of steps {first}-{step}"
        raise FloatingPointError(
            f"non-finite {what} at step {step} (epoch {self.state.epoch}): {steps} produced it. Stopped before "
            f"writing a checkpoint after it; run with {DEBUG_CHECKS_VARIABLE}=1 to stop at the batch itself, before "
            "its update, with its clip indices."
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
        if self.args.save_strategy == SaveStrategy.STEPS:
            message = f"Training in progress, step {self.state.global_step}"
        else:
            message = f"Training in progress, epoch {int(self.state.epoch)}"
        push_checkpoint(
            checkpoint_folder,
            self.hub_model_id,
            token=self.args.hub_token,
            revision=self.args.hub_revision,
            commit_message=message,
        )

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
        return push_checkpoint(
            self.args.output_dir,
            self.hub_model_id,
            token=token or self.args.hub_token,
            revision=revision or self.args.hub_revision,
            commit_message=commit_message,
        )

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
            settings = EncodeSettings(
                batch_size=self.args.per_device_eval_batch_size,
                progress=False,
                num_workers=self.args.dataloader_num_workers,
                device=self.args.device,
                compute_dtype=dtype,
            )
            for task in self.zero_shot_tasks:
                result = task.run(model, self.processing_class, settings)
                metrics.update(
                    {
                        f"{metric_key_prefix}_{task.name}_{k}": float(v)
                        for k, v in result.metrics.items()
                        if isinstance(v, (int, float))
                    }
                )
            model.train(was_training)
        if self.accelerator.num_processes > 1:
            shared = [metrics]
            broadcast_object_list(shared, src=0)
            metrics = shared[0]
        self.log(dict(metrics))  # log() adds the epoch to the dict it gets
        return metrics
