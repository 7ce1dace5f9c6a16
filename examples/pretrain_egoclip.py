#!/usr/bin/env python
"""Single-stage video-text pretraining of EVA02-AT on EgoClip (docs/pretraining.md, docs/recipes.md).

    accelerate launch examples/pretrain_egoclip.py                # the demo: synthetic EgoClip-format data
    accelerate launch --multi_gpu --num_processes 8 examples/pretrain_egoclip.py \\
        --metadata egoclip.csv --video-root /data/ego4d_chunked --video-layout egovlp \\
        --model ./eva02at-b16-from-eva02-clip --num-frames 4 --temperature 0.05 \\
        --ek100-csv EPIC_100_retrieval_test.csv --ek100-sentence-csv EPIC_100_retrieval_test_sentence.csv \\
        --ek100-video-root /data/EK100_320p_15sec_30fps_libx264 --egomcq-json egomcq.json \\
        --egomcq-video-root /data/ego4d_chunked --zero-shot-eval-steps 2000 \\
        --per-device-train-batch-size 128 --learning-rate 3e-5 --lr-scheduler-type constant --weight-decay 0.01 \\
        --num-train-epochs 5 --bf16 --gradient-checkpointing --dataloader-num-workers 10 --output-dir runs/egoclip

Metadata is EgoVLP's egoclip.csv (tab-separated) or a LaViLa / AVION pickled clip list (.pkl; a narration list is
sampled per step); videos are full files or EgoVLP / LaViLa / AVION chunks (--video-layout). The loss is InfoNCE
over the batch gathered from every rank (--loss egonce uses tag_verb / tag_noun). Zero-shot EK-100 MIR and EgoMCQ run
before and after training and every --zero-shot-eval-steps; checkpoints are folders that
`AutoModel.from_pretrained(folder, trust_remote_code=True)` loads.

With no --metadata it generates (once, into --demo-dir) a small set in the real formats and pretrains a small model
from random initialisation (or --model). Flags below are parsed before torch is imported; every other flag goes to
transformers' `HfArgumentParser` for `Eva02AtTrainingArguments`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.demo.model import DEMO_MODEL_CONFIG  # noqa: E402
from modeling_eva02at.evaluation.cli import ArgumentParser  # noqa: E402
from modeling_eva02at.training import setup  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSOR_FOLDER = os.path.join(REPO, "hub_configs", "eva02at-b16")
LAYOUTS = ("full", "egovlp", "lavila", "avion")
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


def build_parser() -> ArgumentParser:
    parser = setup.training_script_parser(os.path.basename(__file__), __doc__,
                                          "--output-dir, --bf16, --gradient-checkpointing")  # fmt: skip
    parser.add_argument("--metadata", default=None, help="egoclip.csv (tab-separated) or a pickled clip list .pkl "
                                                         "(none: the demo)")  # fmt: skip
    parser.add_argument("--video-root", default=None, help="Ego4D videos or chunks (see --video-layout)")
    parser.add_argument("--video-layout", choices=LAYOUTS, default="full",
                        help="full <uid>.mp4; egovlp <uid>/<sec//600>.mp4; lavila <uid>.mp4/<sec//300*300>.mp4; "
                             "avion <uid>.mp4/<sec//15*15>.mp4 (default: full)")  # fmt: skip
    parser.add_argument("--chunk-seconds", type=int, default=None, help="override the layout's chunk length")
    parser.add_argument("--video-ext", default="mp4", help="video / chunk file extension (default: mp4)")
    parser.add_argument("--on-bad-row", choices=("raise", "skip"), default="raise",
                        help="a bad metadata row or unreadable clip raises naming its row, or is skipped and "
                             "counted in the log (default: raise)")  # fmt: skip
    parser.add_argument("--model", default=None, help="folder or Hub id (e.g. converted from EVA02-CLIP); demo "
                                                      "default: its own small model")  # fmt: skip
    parser.add_argument("--init", choices=setup.INITIALISATIONS, default=None,
                        help="load --model's weights (default with --model) or initialise its config randomly")
    parser.add_argument("--num-frames", type=int, default=4, help="frames per clip (default: 4, the recipe's)")
    parser.add_argument("--loss", choices=("infonce", "egonce"), default="infonce", help="default: infonce")
    parser.add_argument("--temperature", type=float, default=0.05,
                        help="fixed InfoNCE temperature (default: 0.05, the recipe's)")  # fmt: skip
    parser.add_argument("--learnable-temperature", action="store_true",
                        help="keep the model's learnable logit scale instead of --temperature")  # fmt: skip
    parser.add_argument("--optimizer-name", choices=("adamw", "lamb"), default="adamw", help="default: adamw")
    parser.add_argument("--zero-shot-eval-steps", type=int, default=0, help="zero-shot evaluation every N steps")
    parser.add_argument("--ek100-csv", default=None, help="held-out EPIC_100_retrieval_test.csv for zero-shot MIR")
    parser.add_argument("--ek100-sentence-csv", default=None, help="its sentence CSV")
    parser.add_argument("--ek100-video-root", default=None, help="its videos <root>/<participant>/<video_id>.MP4")
    parser.add_argument("--egomcq-json", default=None, help="held-out egomcq.json for zero-shot EgoMCQ")
    parser.add_argument("--egomcq-video-root", default=None, help="its Ego4D videos (full or EgoVLP chunks)")
    parser.add_argument("--demo-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "eva02at",
                                                           "demo-egoclip"),
                        help="where the demo data is generated once (default: %(default)s)")  # fmt: skip
    return parser


def training_arguments(parser, args, training_argv, demo: bool):
    """`Eva02AtTrainingArguments` from transformers' flags and this script's loss, optimizer and zero-shot settings."""
    settings = dict(loss=args.loss, optimizer_name=args.optimizer_name, zero_shot_eval_steps=args.zero_shot_eval_steps,
                    temperature=None if args.learnable_temperature else args.temperature)  # fmt: skip
    return setup.parse_training_arguments(parser, training_argv, settings, demo=DEMO_TRAINING if demo else None)


def zero_shot_tasks(args) -> list:
    from modeling_eva02at.data.ek100 import Ek100MirAnnotations
    from modeling_eva02at.data.egomcq import EgoMcqQuestions
    from modeling_eva02at.training.callbacks import egomcq_task, ek100_mir_task

    tasks = []
    if args.ek100_csv:
        annotations = Ek100MirAnnotations.from_files(args.ek100_csv, args.ek100_sentence_csv)
        tasks.append(ek100_mir_task(annotations, args.ek100_video_root))
    if args.egomcq_json:
        tasks.append(egomcq_task(EgoMcqQuestions.from_json(args.egomcq_json), args.egomcq_video_root))
    return tasks


def print_table(rows: dict) -> None:
    keys = sorted({key for metrics in rows.values() for key in metrics if key.endswith(("mAP", "nDCG", "accuracy"))})
    print("\nZero-shot on the held-out sets (percent)")
    for key in keys:
        print(f"{key.removeprefix('zero_shot_'):<44}" + "".join(f"{name}: {100 * m.get(key, float('nan')):>7.2f}   "
                                                                 for name, m in rows.items()))  # fmt: skip


def main(argv=None):
    parser = build_parser()
    args, training_argv = parser.parse_known_args(argv)  # None: sys.argv
    if args.help_all:
        setup.print_training_help(parser)
        return None
    setup.check_model_arguments(parser, args)
    demo = args.metadata is None
    if not demo and args.video_root is None:
        parser.error("--video-root is required with --metadata")
    if args.ek100_csv and not (args.ek100_sentence_csv and args.ek100_video_root):
        parser.error("--ek100-csv needs --ek100-sentence-csv and --ek100-video-root")
    if args.egomcq_json and not args.egomcq_video_root:
        parser.error("--egomcq-json needs --egomcq-video-root")

    from modeling_eva02at.data.egoclip import EgoClipCollator, EgoClipDataset, read_egoclip_metadata
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    training_args = training_arguments(parser, args, training_argv, demo)
    setup.prepare_run(training_args)
    if demo:
        from modeling_eva02at.demo.egoclip import make_egoclip_demo

        with training_args.main_process_first(desc="generating the demo data"):
            paths = make_egoclip_demo(args.demo_dir)
        args.metadata, args.video_root = paths.egoclip_tsv, paths.video_roots[args.video_layout]
        args.chunk_seconds = paths.chunk_seconds[args.video_layout]
        args.ek100_csv, args.ek100_sentence_csv = paths.ek100.test_csv, paths.ek100.test_sentence_csv
        args.ek100_video_root = paths.ek100.video_root
        args.egomcq_json, args.egomcq_video_root = paths.egomcq_json, paths.egomcq_video_root

    model, processor = setup.load_model_for_training(
        args.model, init=args.init, num_frames=args.num_frames, default_config=DEMO_MODEL_CONFIG,
        processor_folder=PROCESSOR_FOLDER,
    )  # fmt: skip
    metadata = read_egoclip_metadata(args.metadata, on_bad_row=args.on_bad_row)
    dataset = EgoClipDataset(metadata, args.video_root, args.video_layout, chunk_seconds=args.chunk_seconds,
                             video_ext=args.video_ext, seed=training_args.seed)  # fmt: skip
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=dataset,
        data_collator=EgoClipCollator(processor, dataset, on_bad_row=args.on_bad_row),
        processing_class=processor,
        zero_shot_tasks=zero_shot_tasks(args),
    )
    rows = {}
    if trainer.zero_shot_tasks:
        rows["before"] = trainer.zero_shot_evaluate()
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()
    if trainer.zero_shot_tasks:
        rows["after"] = trainer.zero_shot_evaluate()
        if trainer.is_world_process_zero():
            print_table(rows)
    if trainer.is_world_process_zero():
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        print(f"\nTraining loss every {training_args.logging_steps} steps: {', '.join(f'{x:.4f}' for x in losses)}")
        print(f"Saved to {training_args.output_dir}: AutoModel.from_pretrained({training_args.output_dir!r}, "
              "trust_remote_code=True)")
    return rows


if __name__ == "__main__":
    main()
