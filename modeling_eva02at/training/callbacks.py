"""Trainer callbacks: the remote-code files kept in the output folder, and zero-shot evaluations during training."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transformers import TrainerCallback
from transformers.dynamic_module_utils import custom_object_save


if TYPE_CHECKING:
    from .trainer import Eva02AtTrainer


class RemoteCodeFilesCallback(TrainerCallback):
    """Put the remote-code `.py` files (the pipeline's with them) in `output_dir` when training starts. Every save
    writes them again, the final model's and each `checkpoint-N`'s, with `custom_pipelines` in config.json
    (`Eva02AtConfig.save_pretrained`), and the Trainer's pushes assemble a complete repo folder
    (`push_checkpoint`); this only makes the folder show its code before the first save."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None and getattr(model, "_auto_class", None):
            os.makedirs(args.output_dir, exist_ok=True)
            custom_object_save(model, args.output_dir, config=model.config)


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

    return ZeroShotTask(
        "ek100_mir",
        lambda model, processor, settings: evaluate_ek100_mir(
            model, processor, annotations, video_root, settings, video_ext=video_ext
        ),
    )


def egomcq_task(questions, video_root: str, layout: str = "auto", video_ext: str = "mp4") -> ZeroShotTask:
    """EgoMCQ inter- / intra-video accuracy of `questions` (an `EgoMcqQuestions`)."""
    from ..evaluation.egomcq import evaluate_egomcq

    return ZeroShotTask(
        "egomcq",
        lambda model, processor, settings: evaluate_egomcq(
            model, processor, questions, video_root, settings, layout=layout, video_ext=video_ext
        ),
    )


def charades_ego_task(annotations, video_root: str, video_ext: str = "mp4") -> ZeroShotTask:
    """Charades-Ego mAP over the classes of `annotations` (a `CharadesEgoAnnotations`)."""
    from ..evaluation.charades_ego import evaluate_charades_ego

    return ZeroShotTask(
        "charades_ego",
        lambda model, processor, settings: evaluate_charades_ego(
            model, processor, annotations, video_root, settings, video_ext=video_ext
        ),
    )


class ZeroShotEvaluationCallback(TrainerCallback):
    """Runs the trainer's zero-shot tasks every `args.zero_shot_eval_steps` optimizer steps."""

    def __init__(self, trainer: Eva02AtTrainer):
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if args.zero_shot_eval_steps > 0 and state.global_step % args.zero_shot_eval_steps == 0:
            self.trainer.zero_shot_evaluate()


__all__ = [
    "RemoteCodeFilesCallback",
    "ZeroShotEvaluationCallback",
    "ZeroShotTask",
    "charades_ego_task",
    "egomcq_task",
    "ek100_mir_task",
]
