"""Fine-tuning for EPIC-Kitchens-100 multi-instance retrieval (docs/recipes.md): the run behind `examples/train_mir.py`.

With no training CSV it is the demo: a small dataset in the exact EK-100 file formats whose verbs are motions only
temporal modelling can tell apart (generated once), a small model from random initialisation (or `--model`),
EgoNCE on each clip's exact captions (docs/demo.md says why not SMS), evaluation before and after with the motion-verb
table, and a saved folder that `AutoModel.from_pretrained(folder, trust_remote_code=True)` loads.

Importing this module is cheap (transformers' `TrainingArguments`, no model): the script's --help answers at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..data.rows import BAD_ROW_SETTINGS
from ..utils.cli import UsageError
from .arguments import Eva02AtTrainingArguments
from .setup import (
    ModelArguments,
    load_model_from_arguments,
    parse_training_arguments,
    prepare_run,
    require_model_for_real_data,
    saved_line,
    train_and_save,
)


MIR_LOSSES = ("sms", "mimm", "adaptive_mimm", "infonce", "egonce")
"""The losses EK-100's graded relevancy supports. Not `sms_hard`: it takes 0/1 labels (Charades-Ego) and rejects
EK-100's soft relevancy (docs/losses.md)."""

DEMO_TRAINING = dict(
    output_dir="outputs/demo-mir",
    per_device_train_batch_size=32,
    per_device_eval_batch_size=64,
    # EgoNCE, not SMS: from a random start both towers must find the verbs, and a clip's hard negatives for them
    # (its own objects moved the other way) are rare in a batch of 32 drawn from 48 verb x noun combinations. SMS
    # averages its hinge over all N(N-1) pairs, so those few pairs barely move it and the verbs stay at chance;
    # EgoNCE's softmax puts its weight on them once the nouns are learned (docs/demo.md has the measurements).
    loss="egonce",
    # 1200 steps over the 1600 demo clips: the nouns take ~200, the direction pairs most of the rest. Left / right
    # comes last (docs/demo.md says why), so the cosine ends at a third of the peak rather than near zero: ending
    # near 0 left it at 73 % after 1300 steps; ending at 1e-4 it reached 88 % after 1000 steps and 100 % after 1200.
    num_train_epochs=24,
    learning_rate=3e-4,
    warmup_start_lr=1e-5,
    min_lr=1e-4,
    warmup_steps=0.05,
    weight_decay=0.01,
    logging_steps=10,
    save_strategy="steps",  # every 6 epochs: resumable without a save in every one of the demo's short epochs
    save_steps=300,
    save_total_limit=2,
    eval_strategy="no",
    seed=0,
    dataloader_num_workers=1,
    optim="adamw_torch_fused",  # one kernel per step instead of one per tensor: ~20 % of a demo step on 2 cores
)
"""The demo's `TrainingArguments` defaults (flags still override them); `use_cpu` is added when no GPU is found."""

DEMO_POSITIVE_THRESHOLD = 0.9
"""The demo's training positives: captions with relevancy above 0.9, i.e. its own verb and objects (the demo's
relevancies are 0, 0.25, 0.5, 0.75 and 1). EK-100's 0.1 (EgoVLP hard mining) pairs a clip with a caption of another
verb about half the time here, where only 6 verbs and 8 nouns make the captions, and 0.5 still admits captions naming
objects the clip does not show; with either the motion verbs are not learned (docs/demo.md)."""

DEFAULT_DEMO_DIR = os.path.join(os.path.expanduser("~"), ".cache", "eva02at", "demo-ek100")


@dataclass
class MirDataArguments:
    """The EK-100 MIR annotation files and videos (none: the demo)."""

    train_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_train.csv (none: the demo)"})
    sentence_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_train_sentence.csv"})
    relevancy: str | None = field(default=None, metadata={"help": "relevancy pickle (default: built from the CSVs)"})
    video_root: str | None = field(
        default=None, metadata={"help": "<root>/<participant>/<video_id>.MP4 (a file or AVION's chunk folder)"}
    )
    eval_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_test.csv (none: no evaluation)"})
    eval_sentence_csv: str | None = field(default=None, metadata={"help": "EPIC_100_retrieval_test_sentence.csv"})
    eval_relevancy: str | None = field(default=None, metadata={"help": "test relevancy pickle (default: built)"})
    eval_video_root: str | None = field(default=None, metadata={"help": "default: --video-root"})
    positive_threshold: float | None = field(
        default=None,
        metadata={
            "help": "training positives: for each clip, a caption drawn among those with relevancy above "
            f"this (default: 0.1, EK-100's; the demo: {DEMO_POSITIVE_THRESHOLD})"
        },
    )
    on_bad_row: str = field(
        default="raise",
        metadata={
            "help": "an unreadable video raises naming it, or is skipped and counted",
            "choices": BAD_ROW_SETTINGS,
        },
    )
    demo_dir: str = field(default=DEFAULT_DEMO_DIR, metadata={"help": "where the demo dataset is generated once"})

    def __post_init__(self):
        if self.train_csv is not None:
            for name in ("sentence_csv", "video_root"):
                if getattr(self, name) is None:
                    raise ValueError(f"--{name.replace('_', '-')} is required with --train-csv")
        if self.eval_csv is not None and self.eval_sentence_csv is None:
            raise ValueError("--eval-sentence-csv is required with --eval-csv")
        if self.positive_threshold is not None and not 0 <= self.positive_threshold < 1:
            raise ValueError(
                f"--positive-threshold must be in [0, 1) (positives have relevancy above it; 1 is the "
                f"largest relevancy), got {self.positive_threshold}"
            )

    @property
    def demo(self) -> bool:
        return self.train_csv is None


MIR_ARGUMENTS = (ModelArguments, MirDataArguments, Eva02AtTrainingArguments)
"""The argument dataclasses of `examples/train_mir.py`, in the order :func:`train_mir` takes them."""


def parse_mir_arguments(argv: Sequence[str] | None = None, *, description: str | None = None) -> tuple:
    """:data:`MIR_ARGUMENTS` from a command line; the demo's defaults apply when it gives no --train-csv."""
    return parse_training_arguments(
        MIR_ARGUMENTS, argv, data_argument="train_csv", demo=DEMO_TRAINING, description=description
    )


def train_mir(
    model_args: ModelArguments,
    data_args: MirDataArguments,
    training_args: Eva02AtTrainingArguments,
    *,
    save_model: bool = True,
) -> dict:
    """Train, evaluate before and after (with an eval split), and save the final model unless `save_model` is False
    (the temporal ablation keeps only the scores). Returns the printed tables' rows.

    Raises:
        UsageError: real data without --model, or a loss EK-100's relevancy does not support.
    """
    if not data_args.demo:
        require_model_for_real_data(model_args, "--train-csv")
    if training_args.loss not in MIR_LOSSES:
        raise UsageError(
            f"--loss {training_args.loss} does not fit EK-100's graded relevancy: choose one of "
            f"{', '.join(MIR_LOSSES)} (sms_hard takes 0/1 labels, as Charades-Ego's)"
        )

    from ..data.collate import VideoTextCollator
    from .trainer import Eva02AtTrainer

    prepare_run(training_args)
    model, processor = load_model_from_arguments(model_args)
    train_dataset, eval_dataset = build_mir_datasets(data_args, training_args.seed)
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=VideoTextCollator(processor, on_bad_row=data_args.on_bad_row),
        processing_class=processor,
        relevancy=train_dataset.annotations.relevancy,
    )
    rows, motion = {}, {}

    def evaluate(name: str, prefix: str) -> None:
        metrics, (videos, _) = trainer.evaluate_and_encode(metric_key_prefix=prefix)
        rows[name] = {k.removeprefix(f"{prefix}_"): v for k, v in metrics.items()}
        if data_args.demo:
            motion[name] = _motion_accuracy(trainer, processor, eval_dataset, videos)

    if eval_dataset is not None:
        rows["random scores"] = _random_scores(eval_dataset)
        evaluate("before training", "eval_before")

    train_and_save(trainer, training_args, save_model=save_model)

    if eval_dataset is not None:
        evaluate("after training", "eval")
        if trainer.is_world_process_zero():
            _print_table(rows)
            if motion:
                from ..demo.motion import format_motion_table

                print(
                    "\nMotion verbs on the evaluation split (percent): top-1 among the six verbs with the clip's own "
                    "nouns (chance 16.7),\nand within each direction pair (chance 50)"
                )
                print(format_motion_table(motion))
    if save_model and trainer.is_world_process_zero():
        print(f"\n{saved_line(training_args.output_dir)}")
    return {**rows, **{f"motion {name}": values for name, values in motion.items()}}


def build_mir_datasets(data_args: MirDataArguments, seed: int):
    """The training split and, with eval files (always for the demo), the evaluation split, every video checked."""
    from ..data.ek100 import Ek100MirAnnotations, Ek100MirDataset
    from ..data.relevancy import POSITIVE_THRESHOLD
    from ..demo.ek100 import make_demo_dataset
    from ..utils.files import require_paths

    train_csv, sentence_csv, video_root = data_args.train_csv, data_args.sentence_csv, data_args.video_root
    eval_csv, eval_sentence_csv = data_args.eval_csv, data_args.eval_sentence_csv
    if data_args.demo:
        paths = make_demo_dataset(data_args.demo_dir, seed=0)
        train_csv, sentence_csv, video_root = paths.train_csv, paths.train_sentence_csv, paths.video_root
        eval_csv, eval_sentence_csv = paths.test_csv, paths.test_sentence_csv
    positive_threshold = data_args.positive_threshold
    if positive_threshold is None:
        positive_threshold = DEMO_POSITIVE_THRESHOLD if data_args.demo else POSITIVE_THRESHOLD
    train = Ek100MirDataset(
        Ek100MirAnnotations.from_files(train_csv, sentence_csv, data_args.relevancy),
        video_root,
        train=True,
        seed=seed,
        positive_threshold=positive_threshold,
    )
    evaluation = None
    if eval_csv:
        evaluation = Ek100MirDataset(
            Ek100MirAnnotations.from_files(eval_csv, eval_sentence_csv, data_args.eval_relevancy),
            data_args.eval_video_root or video_root,
            train=False,
        )
    for split, dataset in (("training", train), ("evaluation", evaluation)):
        if dataset is not None:
            require_paths(dataset.video_paths(), f"{split} videos", dataset.video_root)
    return train, evaluation


def _random_scores(dataset, seed: int = 0) -> dict:
    """EK-100 MIR of random scores: what "no better than chance" means for these annotations."""
    import numpy as np

    from ..evaluation.metrics import ek100_mir_metrics

    similarity = np.random.default_rng(seed).standard_normal(dataset.relevancy.shape).astype(np.float32)
    return ek100_mir_metrics(similarity, dataset.relevancy)


def _motion_accuracy(trainer, processor, dataset, videos) -> dict:
    """Per-verb top-1 and direction-pair accuracy of the demo's motion verbs (modeling_eva02at.demo.motion), from
    the clips' embeddings `videos` (in dataset order) and the probe captions encoded here."""
    from ..demo.motion import motion_verb_accuracy, verb_probe_captions
    from ..evaluation.encoding import EncodeSettings, encode_texts

    clips = dataset.annotations.clips
    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()
    settings = EncodeSettings(device=trainer.args.device, progress=False)
    captions = encode_texts(model, processor, verb_probe_captions(clips["all_noun_classes"]), settings)
    model.train(was_training)
    return motion_verb_accuracy(videos.numpy(), captions.numpy(), clips["verb_class"].to_numpy())


def _print_table(rows: dict[str, dict]) -> None:
    keys = ["vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG"]
    print("\nEK-100 MIR on the evaluation split (percent)")
    print(f"{'':<16}" + "".join(f"{k:>14}" for k in keys))
    for name, metrics in rows.items():
        values = [metrics.get(k, metrics.get(f"eval_{k}")) for k in keys]
        print(f"{name:<16}" + "".join(f"{100 * v:>14.2f}" for v in values))


__all__ = [
    "DEMO_POSITIVE_THRESHOLD",
    "DEMO_TRAINING",
    "MIR_ARGUMENTS",
    "MIR_LOSSES",
    "MirDataArguments",
    "build_mir_datasets",
    "parse_mir_arguments",
    "train_mir",
]
