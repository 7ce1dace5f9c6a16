"""Single-stage video-text pretraining on EgoClip (docs/pretraining.md, docs/recipes.md): the run behind
`examples/pretrain_egoclip.py`.

Metadata is EgoVLP's egoclip.csv (tab-separated) or a LaViLa / AVION pickled clip list (.pkl; a narration list is
sampled per step); videos are full files or EgoVLP / LaViLa / AVION chunks (`--video-layout`). The loss is InfoNCE over
the batch gathered from every rank (`--loss egonce` uses tag_verb / tag_noun). Zero-shot EK-100 MIR and EgoMCQ run
before and after training and every `--zero-shot-eval-steps`. With no metadata it is the demo: a small set in the real
formats, generated once, and a small model from random initialisation (or `--model`).

Importing this module is cheap (transformers' `TrainingArguments`, no model): the script's --help answers at once.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..data.layouts import VIDEO_LAYOUTS
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


PRETRAINING_LOSSES = ("infonce", "egonce")

RECIPE_DEFAULTS = dict(loss="infonce", temperature=0.05, num_frames=4)
"""The recipe's settings that differ from the arguments' defaults (docs/recipes.md: InfoNCE at temperature 0.05, fixed,
4 frames); flags override them."""

DEMO_TRAINING = dict(
    output_dir="outputs/demo-egoclip",
    per_device_train_batch_size=32,
    per_device_eval_batch_size=32,
    num_train_epochs=10,
    learning_rate=3e-4,
    lr_scheduler_type="constant",
    weight_decay=0.01,
    logging_steps=5,
    save_strategy="epoch",
    save_total_limit=1,
    eval_strategy="no",
    seed=0,
    dataloader_num_workers=1,
)
"""The demo's `TrainingArguments` defaults (flags override them); `use_cpu` is added when no GPU is found."""

DEFAULT_DEMO_DIR = os.path.join(os.path.expanduser("~"), ".cache", "eva02at", "demo-egoclip")


@dataclass
class EgoClipDataArguments:
    """The EgoClip metadata and videos (none: the demo), and the held-out zero-shot sets."""

    metadata: str | None = field(
        default=None, metadata={"help": "egoclip.csv (tab-separated) or a pickled clip list .pkl (none: the demo)"}
    )
    video_root: str | None = field(default=None, metadata={"help": "Ego4D videos or chunks (see --video-layout)"})
    video_layout: str = field(
        default="full",
        metadata={
            "help": "full <uid>.mp4; egovlp <uid>/<sec//600>.mp4; lavila <uid>.mp4/<sec//300*300>.mp4; avion "
            "<uid>.mp4/<sec//15*15>.mp4",
            "choices": tuple(VIDEO_LAYOUTS),
        },
    )
    chunk_seconds: int | None = field(default=None, metadata={"help": "override the layout's chunk length"})
    video_ext: str = field(default="mp4", metadata={"help": "video / chunk file extension"})
    on_bad_row: str = field(
        default="raise",
        metadata={
            "help": "a bad metadata row, missing video or unreadable clip raises naming its file line, or is skipped "
            "and counted in the log",
            "choices": BAD_ROW_SETTINGS,
        },
    )
    learnable_temperature: bool = field(
        default=False, metadata={"help": "keep the model's learnable logit scale instead of --temperature"}
    )
    ek100_csv: str | None = field(
        default=None, metadata={"help": "held-out EPIC_100_retrieval_test.csv for zero-shot MIR"}
    )
    ek100_sentence_csv: str | None = field(default=None, metadata={"help": "its sentence CSV"})
    ek100_video_root: str | None = field(
        default=None, metadata={"help": "its videos <root>/<participant>/<video_id>.MP4"}
    )
    egomcq_json: str | None = field(default=None, metadata={"help": "held-out egomcq.json for zero-shot EgoMCQ"})
    egomcq_video_root: str | None = field(default=None, metadata={"help": "its Ego4D videos (full or EgoVLP chunks)"})
    demo_dir: str = field(default=DEFAULT_DEMO_DIR, metadata={"help": "where the demo data is generated once"})

    def __post_init__(self):
        if self.metadata is not None and self.video_root is None:
            raise ValueError("--video-root is required with --metadata")
        if self.ek100_csv and not (self.ek100_sentence_csv and self.ek100_video_root):
            raise ValueError("--ek100-csv needs --ek100-sentence-csv and --ek100-video-root")
        if self.egomcq_json and not self.egomcq_video_root:
            raise ValueError("--egomcq-json needs --egomcq-video-root")
        if self.chunk_seconds is not None and self.chunk_seconds < 1:
            raise ValueError(f"--chunk-seconds must be at least 1, got {self.chunk_seconds}")

    @property
    def demo(self) -> bool:
        return self.metadata is None


PRETRAINING_ARGUMENTS = (ModelArguments, EgoClipDataArguments, Eva02AtTrainingArguments)
"""The argument dataclasses of `examples/pretrain_egoclip.py`, in the order :func:`pretrain_egoclip` takes them."""


def parse_pretraining_arguments(argv: Sequence[str] | None = None, *, description: str | None = None) -> tuple:
    """:data:`PRETRAINING_ARGUMENTS` from a command line: the recipe's defaults, and the demo's without --metadata."""
    return parse_training_arguments(
        PRETRAINING_ARGUMENTS,
        argv,
        data_argument="metadata",
        demo=DEMO_TRAINING,
        recipe=RECIPE_DEFAULTS,
        description=description,
    )


def pretrain_egoclip(
    model_args: ModelArguments, data_args: EgoClipDataArguments, training_args: Eva02AtTrainingArguments
) -> dict:
    """Pretrain, run the zero-shot tasks before and after, save the final model; returns the zero-shot rows."""
    if not data_args.demo:
        require_model_for_real_data(model_args, "--metadata")
    if training_args.loss not in PRETRAINING_LOSSES:
        raise UsageError(f"--loss {training_args.loss}: pretraining takes {' or '.join(PRETRAINING_LOSSES)}")
    if data_args.learnable_temperature:
        training_args.temperature = None

    from ..data.egoclip import EgoClipCollator, EgoClipDataset, read_egoclip_metadata
    from .trainer import Eva02AtTrainer

    prepare_run(training_args)
    if data_args.demo:
        from ..demo.egoclip import make_egoclip_demo

        with training_args.main_process_first(desc="generating the demo data"):
            paths = make_egoclip_demo(data_args.demo_dir)
        layout = data_args.video_layout
        metadata_path, video_root, chunk_seconds = (
            paths.egoclip_tsv,
            paths.video_roots[layout],
            paths.chunk_seconds[layout],
        )
        ek100 = (paths.ek100.test_csv, paths.ek100.test_sentence_csv, paths.ek100.video_root)
        egomcq = (paths.egomcq_json, paths.egomcq_video_root)
    else:
        metadata_path, video_root, chunk_seconds = data_args.metadata, data_args.video_root, data_args.chunk_seconds
        ek100 = (data_args.ek100_csv, data_args.ek100_sentence_csv, data_args.ek100_video_root)
        egomcq = (data_args.egomcq_json, data_args.egomcq_video_root)

    model, processor = load_model_from_arguments(model_args)
    metadata = read_egoclip_metadata(metadata_path, on_bad_row=data_args.on_bad_row)
    dataset = EgoClipDataset(
        metadata,
        video_root,
        data_args.video_layout,
        chunk_seconds=chunk_seconds,
        video_ext=data_args.video_ext,
        seed=training_args.seed,
        on_bad_row=data_args.on_bad_row,
    )
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=EgoClipCollator(processor, dataset, on_bad_row=data_args.on_bad_row),
        processing_class=processor,
        zero_shot_tasks=_zero_shot_tasks(ek100, egomcq),
    )
    rows = {}
    if trainer.zero_shot_tasks:
        rows["before"] = trainer.zero_shot_evaluate()
    train_and_save(trainer, training_args)
    if trainer.zero_shot_tasks:
        rows["after"] = trainer.zero_shot_evaluate()
        if trainer.is_world_process_zero():
            _print_table(rows)
    if trainer.is_world_process_zero():
        print(f"\n{trainer.training_loss_line()}")
        print(saved_line(training_args.output_dir))
    return rows


def _zero_shot_tasks(ek100: tuple, egomcq: tuple) -> list:
    from ..data.egomcq import EgoMcqQuestions
    from ..data.ek100 import Ek100MirAnnotations
    from .callbacks import egomcq_task, ek100_mir_task

    tasks = []
    ek100_csv, ek100_sentence_csv, ek100_video_root = ek100
    if ek100_csv:
        tasks.append(ek100_mir_task(Ek100MirAnnotations.from_files(ek100_csv, ek100_sentence_csv), ek100_video_root))
    egomcq_json, egomcq_video_root = egomcq
    if egomcq_json:
        tasks.append(egomcq_task(EgoMcqQuestions.from_json(egomcq_json), egomcq_video_root))
    return tasks


def _print_table(rows: dict) -> None:
    keys = sorted({key for metrics in rows.values() for key in metrics if key.endswith(("mAP", "nDCG", "accuracy"))})
    print("\nZero-shot on the held-out sets (percent)")
    for key in keys:
        cells = "".join(f"{name}: {100 * metrics.get(key, float('nan')):>7.2f}   " for name, metrics in rows.items())
        print(f"{key.removeprefix('zero_shot_'):<44}" + cells)


__all__ = [
    "DEMO_TRAINING",
    "PRETRAINING_ARGUMENTS",
    "PRETRAINING_LOSSES",
    "RECIPE_DEFAULTS",
    "EgoClipDataArguments",
    "parse_pretraining_arguments",
    "pretrain_egoclip",
]
