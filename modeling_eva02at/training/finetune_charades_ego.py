"""Fine-tuning on Charades-Ego trimmed actions with the SMS hard-label loss (docs/pretraining.md, docs/recipes.md): the
run behind `examples/finetune_charades_ego.py`.

Every action segment of the training CSV is a sample, captioned with its class name; `sms_hard` (margin 0.3) treats two
samples of one class as equally relevant and the rest as irrelevant. Evaluation scores each labelled test video (frames
over the whole video) against every class name and reports the mean over classes of the average precision, before and
after. With no training CSV it is the demo: a small set in the real formats, generated once, and a small model from
random initialisation (or `--model`).

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


CHARADES_EGO_LOSSES = ("sms_hard", "infonce")

RECIPE_DEFAULTS = dict(
    loss="sms_hard",
    optimizer_name="lamb",
    num_frames=16,
    learning_rate=3e-5,
    warmup_start_lr=1e-6,
    warmup_steps=0.1,  # one of the 10 epochs
    num_train_epochs=10,
    weight_decay=0.01,
)
"""The recipe's defaults (docs/recipes.md: SMS hard labels, LAMB, warm-up 1e-6 -> 3e-5, 10 epochs, 16 frames); flags
override them. The warm-up then follows a cosine to --min-lr (default 0)."""

DEMO_TRAINING = dict(
    output_dir="outputs/demo-charades-ego",
    per_device_train_batch_size=16,
    per_device_eval_batch_size=16,
    num_train_epochs=20,
    learning_rate=2e-3,
    warmup_start_lr=1e-5,
    warmup_steps=0.05,
    logging_steps=5,
    save_strategy="epoch",
    save_total_limit=1,
    eval_strategy="no",
    seed=0,
    dataloader_num_workers=1,
)
"""The demo's defaults on top of the recipe's: a small model from random initialisation needs a larger lr."""

DEFAULT_DEMO_DIR = os.path.join(os.path.expanduser("~"), ".cache", "eva02at", "demo-charades-ego")


@dataclass
class CharadesEgoDataArguments:
    """The Charades-Ego annotation files and videos (none: the demo)."""

    train_csv: str | None = field(default=None, metadata={"help": "CharadesEgo_v1_train_only1st.csv (none: the demo)"})
    test_csv: str | None = field(default=None, metadata={"help": "CharadesEgo_v1_test_only1st.csv, for the mAP"})
    classes: str | None = field(default=None, metadata={"help": "Charades_v1_classes.txt"})
    video_root: str | None = field(default=None, metadata={"help": "folder of <id>.mp4 (e.g. CharadesEgo_v1_480)"})
    video_ext: str = field(default="mp4", metadata={"help": "video file extension"})
    on_bad_row: str = field(
        default="raise",
        metadata={
            "help": "a bad action (not '<class> <start> <end>', unknown class, end <= start), a missing video "
            "or an undecodable segment raises naming its CSV line, or is skipped and counted in the log",
            "choices": BAD_ROW_SETTINGS,
        },
    )
    demo_dir: str = field(default=DEFAULT_DEMO_DIR, metadata={"help": "where the demo data is generated once"})

    def __post_init__(self):
        if self.train_csv is not None and not (self.test_csv and self.classes and self.video_root):
            raise ValueError("--train-csv needs --test-csv, --classes and --video-root")

    @property
    def demo(self) -> bool:
        return self.train_csv is None


FINE_TUNING_ARGUMENTS = (ModelArguments, CharadesEgoDataArguments, Eva02AtTrainingArguments)
"""The argument dataclasses of `examples/finetune_charades_ego.py`, in the order :func:`finetune_charades_ego` takes
them."""


def parse_fine_tuning_arguments(argv: Sequence[str] | None = None, *, description: str | None = None) -> tuple:
    """:data:`FINE_TUNING_ARGUMENTS` from a command line: the recipe's defaults, and the demo's without --train-csv."""
    return parse_training_arguments(
        FINE_TUNING_ARGUMENTS,
        argv,
        data_argument="train_csv",
        demo=DEMO_TRAINING,
        recipe=RECIPE_DEFAULTS,
        description=description,
    )


def finetune_charades_ego(
    model_args: ModelArguments, data_args: CharadesEgoDataArguments, training_args: Eva02AtTrainingArguments
) -> dict:
    """Fine-tune, report Charades-Ego mAP before and after, save the final model; returns the two mAPs."""
    if not data_args.demo:
        require_model_for_real_data(model_args, "--train-csv")
    if training_args.loss not in CHARADES_EGO_LOSSES:
        raise UsageError(
            f"--loss {training_args.loss}: Charades-Ego's hard labels take {' or '.join(CHARADES_EGO_LOSSES)}"
        )

    from ..data.charades_ego import CharadesEgoCollator, CharadesEgoDataset
    from ..evaluation.charades_ego import CharadesEgoAnnotations
    from .callbacks import charades_ego_task
    from .trainer import Eva02AtTrainer

    prepare_run(training_args)
    train_csv, test_csv, classes, video_root = (
        data_args.train_csv,
        data_args.test_csv,
        data_args.classes,
        data_args.video_root,
    )
    if data_args.demo:
        from ..demo.charades_ego import make_charades_ego_demo

        with training_args.main_process_first(desc="generating the demo data"):
            paths = make_charades_ego_demo(data_args.demo_dir)
        train_csv, test_csv, classes, video_root = paths.train_csv, paths.test_csv, paths.classes, paths.video_root

    model, processor = load_model_from_arguments(model_args)
    dataset = CharadesEgoDataset(
        train_csv,
        classes,
        video_root,
        train=True,
        seed=training_args.seed,
        on_bad_row=data_args.on_bad_row,
        video_ext=data_args.video_ext,
    )
    test = CharadesEgoAnnotations.from_files(test_csv, classes)
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=CharadesEgoCollator(processor, on_bad_row=data_args.on_bad_row),
        processing_class=processor,
        zero_shot_tasks=[charades_ego_task(test, video_root, video_ext=data_args.video_ext)],
    )
    rows = {"before": trainer.zero_shot_evaluate(metric_key_prefix="eval_before")["eval_before_charades_ego_mAP"]}
    train_and_save(trainer, training_args)
    rows["after"] = trainer.zero_shot_evaluate(metric_key_prefix="eval")["eval_charades_ego_mAP"]
    if trainer.is_world_process_zero():
        print(
            f"\nCharades-Ego mAP (percent): {len(test.video_ids)} test videos against {len(test.class_ids)} class "
            f"texts, the mean AP of the {int(test.labels.any(axis=0).sum())} classes with a positive video"
        )
        print(
            f"random scores: {100 * _random_scores(test):.2f}   before: {100 * rows['before']:.2f}   "
            f"after: {100 * rows['after']:.2f}"
        )
        print(f"\n{trainer.training_loss_line()}")
        if dataset.skipped or trainer.data_collator.skipped:
            print(
                f"Skipped: {dict(dataset.skipped)} when reading, {trainer.data_collator.skipped} segments when "
                "decoding (main process)"
            )
        print(saved_line(training_args.output_dir))
    return rows


def _random_scores(annotations, seed: int = 0) -> float:
    """The mAP of random scores on the test videos: what "no better than chance" means for these labels."""
    import numpy as np

    from ..evaluation.metrics import charades_ego_map

    scores = np.random.default_rng(seed).normal(size=annotations.labels.shape)
    return charades_ego_map(scores, annotations.labels)["mAP"]


__all__ = [
    "CHARADES_EGO_LOSSES",
    "DEMO_TRAINING",
    "FINE_TUNING_ARGUMENTS",
    "RECIPE_DEFAULTS",
    "CharadesEgoDataArguments",
    "finetune_charades_ego",
    "parse_fine_tuning_arguments",
]
