#!/usr/bin/env python
"""Fine-tune EVA02-AT on Charades-Ego trimmed actions with the SMS hard-label loss (docs/pretraining.md,
docs/recipes.md), and report Charades-Ego mAP over the classes before and after.

    accelerate launch examples/finetune_charades_ego.py          # the demo: synthetic Charades-Ego-format data
    accelerate launch --multi_gpu --num_processes 8 examples/finetune_charades_ego.py \\
        --train-csv CharadesEgo_v1_train_only1st.csv --test-csv CharadesEgo_v1_test_only1st.csv \\
        --classes Charades_v1_classes.txt --video-root /data/CharadesEgo_v1_480 \\
        --model ./eva02at-b16-egoclip --num-frames 16 --loss sms_hard --optimizer-name lamb \\
        --learning-rate 3e-5 --warmup-start-lr 1e-6 --warmup-steps 0.1 --num-train-epochs 10 \\
        --per-device-train-batch-size 32 --bf16 --dataloader-num-workers 8 --output-dir runs/charades_ego

Every action segment of the training CSV is a sample, captioned with its class name; `sms_hard` (margin 0.3) treats
two samples of one class as equally relevant and the rest as irrelevant. Evaluation scores each labelled test video
(frames over the whole video) against every class name and reports the mean over classes of the average precision.
A model whose frame count differs from --num-frames is resized to it (temporal embedding interpolated).

With no --train-csv it generates (once, into --demo-dir) a small set in the real formats and fine-tunes a small
model from random initialisation (or --model). Flags below are parsed before torch is imported; every other flag
goes to transformers' `HfArgumentParser` for `Eva02AtTrainingArguments`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.demo.model import DEMO_MODEL_CONFIG  # noqa: E402
from modeling_eva02at.evaluation.cli import ArgumentParser  # noqa: E402
from modeling_eva02at.training import setup  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSOR_FOLDER = os.path.join(REPO, "hub_configs", "eva02at-b16")

RECIPE_TRAINING = dict(
    loss="sms_hard",
    learning_rate=3e-5,
    warmup_start_lr=1e-6,
    warmup_steps=0.1,  # one of the 10 epochs
    num_train_epochs=10,
    weight_decay=0.01,
    remove_unused_columns=False,
)
"""The recipe's `TrainingArguments` defaults (docs/recipes.md: SMS hard labels, LAMB, warm-up 1e-6 -> 3e-5, 10 epochs);
flags override them. The warm-up then follows a cosine to --min-lr (default 0)."""

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


def build_parser() -> ArgumentParser:
    parser = setup.training_script_parser(os.path.basename(__file__), __doc__,
                                          "--output-dir, --learning-rate, --bf16,\n--gradient-checkpointing")  # fmt: skip
    parser.add_argument("--train-csv", default=None, help="CharadesEgo_v1_train_only1st.csv (none: the demo)")
    parser.add_argument("--test-csv", default=None, help="CharadesEgo_v1_test_only1st.csv, for the mAP")
    parser.add_argument("--classes", default=None, help="Charades_v1_classes.txt")
    parser.add_argument("--video-root", default=None, help="folder of <id>.mp4 (e.g. CharadesEgo_v1_480)")
    parser.add_argument("--video-ext", default="mp4", help="video file extension (default: mp4)")
    parser.add_argument("--on-bad-row", choices=("raise", "skip"), default="raise",
                        help="a bad action (not '<class> <start> <end>', unknown class, end <= start), a missing "
                             "video or an undecodable segment raises naming its CSV line, or is skipped and counted "
                             "in the log (default: raise)")  # fmt: skip
    parser.add_argument("--model", default=None, help="folder or Hub id (e.g. pretrained on EgoClip); demo default: "
                                                      "its own small model")  # fmt: skip
    parser.add_argument("--init", choices=setup.INITIALISATIONS, default=None,
                        help="load --model's weights (default with --model) or initialise its config randomly")
    parser.add_argument("--num-frames", type=int, default=16, help="frames per clip (default: 16, the recipe's)")
    parser.add_argument("--loss", choices=("sms_hard", "infonce"), default="sms_hard",
                        help="sms_hard: SMS with 0/1 labels from the classes (margin --margin, default 0.3); "
                             "infonce: every other sample of the batch a negative (default: sms_hard)")  # fmt: skip
    parser.add_argument("--optimizer-name", choices=("lamb", "adamw"), default="lamb",
                        help="lamb (pytorch-optimizer's Lamb, the recipe's) or adamw (default: lamb)")  # fmt: skip
    parser.add_argument("--demo-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "eva02at",
                                                           "demo-charades-ego"),
                        help="where the demo data is generated once (default: %(default)s)")  # fmt: skip
    return parser


def training_arguments(parser, args, training_argv, demo: bool):
    """`Eva02AtTrainingArguments` from transformers' flags over the recipe's defaults, with this script's loss and
    optimizer."""
    settings = dict(loss=args.loss, optimizer_name=args.optimizer_name)
    return setup.parse_training_arguments(parser, training_argv, settings, recipe=RECIPE_TRAINING,
                                          demo=DEMO_TRAINING if demo else None)  # fmt: skip


def random_baseline(annotations, seed: int = 0) -> float:
    """The mAP of random scores on the test videos: what "no better than chance" means for these labels."""
    import numpy as np

    from modeling_eva02at.evaluation.metrics import charades_ego_map

    scores = np.random.default_rng(seed).normal(size=annotations.labels.shape)
    return charades_ego_map(scores, annotations.labels)["mAP"]


def main(argv=None):
    parser = build_parser()
    args, training_argv = parser.parse_known_args(argv)  # None: sys.argv
    if args.help_all:
        setup.print_training_help(parser)
        return None
    setup.check_model_arguments(parser, args)
    demo = args.train_csv is None
    if not demo and not (args.test_csv and args.classes and args.video_root):
        parser.error("--train-csv needs --test-csv, --classes and --video-root")

    from modeling_eva02at.data.charades_ego import CharadesEgoCollator, CharadesEgoDataset
    from modeling_eva02at.evaluation.charades_ego import CharadesEgoAnnotations
    from modeling_eva02at.training.callbacks import charades_ego_task
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    training_args = training_arguments(parser, args, training_argv, demo)
    setup.prepare_run(training_args)
    if demo:
        from modeling_eva02at.demo.charades_ego import make_charades_ego_demo

        with training_args.main_process_first(desc="generating the demo data"):
            paths = make_charades_ego_demo(args.demo_dir)
        args.train_csv, args.test_csv, args.classes = paths.train_csv, paths.test_csv, paths.classes
        args.video_root = paths.video_root

    model, processor = setup.load_model_for_training(
        args.model, init=args.init, num_frames=args.num_frames, default_config=DEMO_MODEL_CONFIG,
        processor_folder=PROCESSOR_FOLDER,
    )  # fmt: skip
    dataset = CharadesEgoDataset(args.train_csv, args.classes, args.video_root, train=True, seed=training_args.seed,
                                 on_bad_row=args.on_bad_row, video_ext=args.video_ext)  # fmt: skip
    test = CharadesEgoAnnotations.from_files(args.test_csv, args.classes)
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=CharadesEgoCollator(processor, on_bad_row=args.on_bad_row),
        processing_class=processor,
        zero_shot_tasks=[charades_ego_task(test, args.video_root, video_ext=args.video_ext)],
    )
    rows = {"before": trainer.zero_shot_evaluate(metric_key_prefix="eval_before")["eval_before_charades_ego_mAP"]}
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    rows["after"] = trainer.zero_shot_evaluate(metric_key_prefix="eval")["eval_charades_ego_mAP"]
    if trainer.is_world_process_zero():
        print(f"\nCharades-Ego mAP (percent): {len(test.video_ids)} test videos against {len(test.class_ids)} class "
              f"texts, the mean AP of the {int(test.labels.any(axis=0).sum())} classes with a positive video")
        print(f"random scores: {100 * random_baseline(test):.2f}   before: {100 * rows['before']:.2f}   "
              f"after: {100 * rows['after']:.2f}")  # fmt: skip
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        print(f"\nTraining loss every {training_args.logging_steps} steps: {', '.join(f'{x:.4f}' for x in losses)}")
        if dataset.skipped or trainer.data_collator.skipped:
            print(f"Skipped: {dict(dataset.skipped)} when reading, {trainer.data_collator.skipped} segments when "
                  "decoding (main process)")  # fmt: skip
        print(f"Saved to {training_args.output_dir}: AutoModel.from_pretrained({training_args.output_dir!r}, "
              "trust_remote_code=True)")
    return rows


if __name__ == "__main__":
    main()
