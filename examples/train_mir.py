#!/usr/bin/env python
"""Fine-tune EVA02-AT for EPIC-Kitchens-100 multi-instance retrieval (docs/recipes.md) with the SMS loss.

    accelerate launch examples/train_mir.py                     # the demo: synthetic EK-100-format data, tiny model
    accelerate launch --multi_gpu --num_processes 4 examples/train_mir.py \\
        --train-csv EPIC_100_retrieval_train.csv --sentence-csv EPIC_100_retrieval_train_sentence.csv \\
        --relevancy caption_relevancy_EPIC_100_retrieval_train.pkl --video-root /data/EK100_320p_15sec_30fps_libx264 \\
        --eval-csv EPIC_100_retrieval_test.csv --eval-sentence-csv EPIC_100_retrieval_test_sentence.csv \\
        --model ./eva02at-b16-egoclip --num-frames 16 --loss sms --output-dir runs/mir \\
        --per-device-train-batch-size 64 --learning-rate 2e-5 --warmup-start-lr 1e-6 --min-lr 2e-6 \\
        --num-train-epochs 100 --warmup-steps 0.01 --weight-decay 0.01 --bf16

With no --train-csv it generates (once, into --demo-dir) a small dataset in the exact EK-100 file formats whose
verbs are motions only temporal modelling can tell apart, trains a small model from random initialisation on it
(or --model) with EgoNCE on each clip's exact captions (docs/demo.md says why not SMS), evaluates before and after,
and saves a folder that `AutoModel.from_pretrained(folder, trust_remote_code=True)` loads.

The flags below are parsed before torch and transformers are imported (so --help answers at once); every other
flag goes to transformers' `HfArgumentParser` for `Eva02AtTrainingArguments`.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.demo.model import DEMO_MODEL_CONFIG  # noqa: E402
from modeling_eva02at.evaluation.cli import ArgumentParser  # noqa: E402
from modeling_eva02at.training import setup  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCESSOR_FOLDER = os.path.join(REPO, "hub_configs", "eva02at-b16")

LOSSES = ("sms", "mimm", "adaptive_mimm", "infonce", "egonce")
"""`--loss` choices: the losses of `modeling_eva02at.training.losses` that EK-100's graded relevancy supports. Not
`sms_hard`: it takes 0/1 labels (Charades-Ego) and rejects EK-100's soft relevancy (docs/losses.md)."""

PRETRAINING_ONLY = ("zero_shot_eval_steps",)
"""`Eva02AtTrainingArguments` fields this script does not offer: zero-shot tasks are examples/pretrain_egoclip.py's."""

SMS_EDGES = ("code", "paper")
"""The named `--sms-edge` values (`Eva02AtTrainingArguments.sms_edge`); a number is accepted too."""

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


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------


def boolean(text: str) -> bool:
    """A flag's optional true / false value, spelled as transformers' `HfArgumentParser` accepts it."""
    value = text.lower()
    if value in ("true", "t", "yes", "y", "1"):
        return True
    if value in ("false", "f", "no", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def sms_edge(text: str) -> str:
    if text in SMS_EDGES:
        return text
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(SMS_EDGES)} or a number, got {text!r}") from None
    return text


def build_parser() -> ArgumentParser:
    """This script's own flags, each as --dashed-flag and --underscore_flag. Those named like a field of
    `Eva02AtTrainingArguments` (loss, schedule) are handed to it (see :func:`training_arguments`)."""
    parser = setup.training_script_parser(
        os.path.basename(__file__), __doc__, "--output-dir, --learning-rate, --bf16,\n--per-device-train-batch-size, "
        "--report-to, --push-to-hub, --resume-from-checkpoint True|last|PATH",
    )  # fmt: skip

    # data
    parser.add_argument("--train-csv", default=None, help="EPIC_100_retrieval_train.csv (none: the demo)")
    parser.add_argument("--sentence-csv", default=None, help="EPIC_100_retrieval_train_sentence.csv")
    parser.add_argument("--relevancy", default=None, help="relevancy pickle (default: built from the CSVs)")
    parser.add_argument("--video-root", default=None, help="<root>/<participant>/<video_id>.MP4 (or chunks)")
    parser.add_argument("--eval-csv", default=None, help="EPIC_100_retrieval_test.csv (none: no evaluation)")
    parser.add_argument("--eval-sentence-csv", default=None, help="EPIC_100_retrieval_test_sentence.csv")
    parser.add_argument("--eval-relevancy", default=None, help="test relevancy pickle (default: built)")
    parser.add_argument("--eval-video-root", default=None, help="default: --video-root")
    parser.add_argument("--on-bad-row", choices=("raise", "skip"), default="raise",
                        help="an undecodable video raises, or is skipped and counted (default: raise)")  # fmt: skip
    parser.add_argument("--demo-dir", default=os.path.join(os.path.expanduser("~"), ".cache", "eva02at", "demo-ek100"),
                        help="where the demo dataset is generated once (default: %(default)s)")  # fmt: skip

    # model
    parser.add_argument("--model", default=None,
                        help="a folder or Hub id that from_pretrained loads (converted or trained checkpoint), or a "
                             "configuration folder such as hub_configs/eva02at-b16 with --init random; required "
                             "with --train-csv (demo default: its own small model)")  # fmt: skip
    parser.add_argument("--init", choices=setup.INITIALISATIONS, default=None,
                        help="load --model's weights (default; a folder or id without weights is an error) or "
                             "initialise its configuration randomly (the demo's own model: random)")  # fmt: skip
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the model's)")
    parser.add_argument("--no-temporal-rope", type=boolean, nargs="?", const=True, default=None,
                        help="ablation: spatial RoPE only (default: the model's config; on for the demo)")  # fmt: skip
    parser.add_argument("--no-temporal-embedding", type=boolean, nargs="?", const=True, default=None,
                        help="ablation: no learnable temporal embedding (default: the model's config; on for the "
                             "demo)")  # fmt: skip

    # Eva02AtTrainingArguments' own fields (the defaults are the dataclass's; tests/test_train_cli.py checks them)
    parser.add_argument("--loss", choices=LOSSES, default=None,
                        help="training loss, docs/losses.md (default: sms; the demo: egonce); not sms_hard, which "
                             "takes 0/1 labels (Charades-Ego) where EK-100's relevancy is graded")  # fmt: skip
    parser.add_argument("--positive-threshold", type=float, default=None,
                        help="training positives: for each clip, a caption drawn among those with relevancy above "
                             f"this (default: 0.1, EK-100's; the demo: {DEMO_POSITIVE_THRESHOLD})")  # fmt: skip
    parser.add_argument("--margin", type=float, default=None,
                        help="margin gamma (default: SMS 0.6, MI-MM 0.2, adaptive MI-MM 0.4)")  # fmt: skip
    parser.add_argument("--sms-tau", type=float, default=0.1, help="SMS relaxation tau (default: 0.1)")
    parser.add_argument("--sms-edge", type=sms_edge, default="code", metavar="{code,paper,NUMBER}",
                        help="SMS lambda: code (1.1/240, the authors' code; default), paper (0.1), or a number")
    parser.add_argument("--quantize-relevancy", type=boolean, nargs="?", const=True, default=True,
                        help="look candidates' relevancy up as uint8(240 R)/240, as the authors' code (default)")
    parser.add_argument("--no-quantize-relevancy", dest="quantize_relevancy", action="store_false",
                        help="use the relevancy as is (the paper)")  # fmt: skip
    parser.add_argument("--warmup-start-lr", type=float, default=None,
                        help="docs/recipes.md schedule: linear warm-up from this lr (e.g. 1e-6), then cosine")
    parser.add_argument("--min-lr", type=float, default=None,
                        help="docs/recipes.md schedule: final lr of the cosine (e.g. 2e-6)")  # fmt: skip
    parser.add_argument("--optimizer-name", choices=("adamw", "lamb"), default="adamw",
                        help="adamw (default) or lamb (pytorch-optimizer's Lamb)")  # fmt: skip
    parser.add_argument("--temperature", type=float, default=None,
                        help="fix the contrastive temperature: the logit scale becomes ln(1/temperature), frozen "
                             "(default: the model's logit scale)")  # fmt: skip
    return parser


def check_arguments(parser: ArgumentParser, args) -> None:
    """Flag combinations, checked before anything is loaded."""
    if args.train_csv is not None:
        for name in ("model", "sentence_csv", "video_root"):
            if getattr(args, name) is None:
                parser.error(f"--{name.replace('_', '-')} is required with --train-csv")
    if args.eval_csv is not None and args.eval_sentence_csv is None:
        parser.error("--eval-sentence-csv is required with --eval-csv")
    if args.positive_threshold is not None and not 0 <= args.positive_threshold < 1:
        parser.error(f"--positive-threshold must be in [0, 1) (positives have relevancy above it; 1 is the "
                     f"largest relevancy), got {args.positive_threshold}")  # fmt: skip
    setup.check_model_arguments(parser, args)


def trainer_settings() -> list[str]:
    """The fields `Eva02AtTrainingArguments` adds to transformers' `TrainingArguments`."""
    from dataclasses import fields

    from transformers import TrainingArguments

    from modeling_eva02at.training.arguments import Eva02AtTrainingArguments

    inherited = {field.name for field in fields(TrainingArguments)}
    return [field.name for field in fields(Eva02AtTrainingArguments)
            if field.name not in inherited and field.name not in PRETRAINING_ONLY]  # fmt: skip


def training_arguments(parser: ArgumentParser, args, training_argv: list[str], demo: bool):
    """`Eva02AtTrainingArguments` from the flags this script's parser left (transformers' own) and the settings it
    parsed (loss, schedule)."""
    settings = {name: getattr(args, name) for name in trainer_settings()}  # None (not given): the demo's or default
    return setup.parse_training_arguments(parser, training_argv, settings, demo=DEMO_TRAINING if demo else None)


# ---------------------------------------------------------------------------------------------------------------------
# Model and data
# ---------------------------------------------------------------------------------------------------------------------


def load_model_for_training(args):
    """The model and processor that --model, --init, --num-frames and the --no-temporal-* ablations ask for
    (`modeling_eva02at.training.setup.load_model_for_training`; benchmarks/bench_train.py calls this too)."""
    # --no-temporal-*: None keeps the model configuration's switch
    temporal = {"use_temporal_rope": args.no_temporal_rope, "use_temporal_embedding": args.no_temporal_embedding}
    return setup.load_model_for_training(
        args.model, init=args.init, num_frames=args.num_frames, default_config=DEMO_MODEL_CONFIG,
        processor_folder=PROCESSOR_FOLDER,
        vision_overrides={field: None if off is None else not off for field, off in temporal.items()},
    )  # fmt: skip


def build_datasets(args, demo: bool, seed: int):
    from modeling_eva02at.data.ek100 import Ek100MirAnnotations, Ek100MirDataset
    from modeling_eva02at.data.relevancy import POSITIVE_THRESHOLD
    from modeling_eva02at.demo.ek100 import make_demo_dataset
    from modeling_eva02at.utils.files import require_paths

    if demo:
        paths = make_demo_dataset(args.demo_dir, seed=0)
        args.train_csv, args.sentence_csv = paths.train_csv, paths.train_sentence_csv
        args.eval_csv, args.eval_sentence_csv = paths.test_csv, paths.test_sentence_csv
        args.video_root = paths.video_root
    positive_threshold = args.positive_threshold
    if positive_threshold is None:
        positive_threshold = DEMO_POSITIVE_THRESHOLD if demo else POSITIVE_THRESHOLD
    train = Ek100MirDataset(
        Ek100MirAnnotations.from_files(args.train_csv, args.sentence_csv, args.relevancy),
        args.video_root, train=True, seed=seed, positive_threshold=positive_threshold,
    )  # fmt: skip
    evaluation = None
    if args.eval_csv:
        evaluation = Ek100MirDataset(
            Ek100MirAnnotations.from_files(args.eval_csv, args.eval_sentence_csv, args.eval_relevancy),
            args.eval_video_root or args.video_root, train=False,
        )  # fmt: skip
    for split, dataset in (("training", train), ("evaluation", evaluation)):
        if dataset is not None:
            require_paths(dataset.video_paths(), f"{split} videos", dataset.video_root)
    return train, evaluation


def random_baseline(dataset, seed: int = 0) -> dict:
    import numpy as np

    from modeling_eva02at.evaluation.metrics import ek100_mir_metrics

    similarity = np.random.default_rng(seed).standard_normal(dataset.relevancy.shape).astype(np.float32)
    return ek100_mir_metrics(similarity, dataset.relevancy)


def motion_accuracy(trainer, processor, dataset, videos) -> dict:
    """Per-verb top-1 and direction-pair accuracy of the demo's motion verbs (modeling_eva02at.demo.motion), from
    the clips' embeddings `videos` (in dataset order) and the probe captions encoded here."""
    from modeling_eva02at.demo.motion import motion_verb_accuracy, verb_probe_captions
    from modeling_eva02at.evaluation.encoding import encode_texts

    clips = dataset.annotations.clips
    model = trainer.accelerator.unwrap_model(trainer.model)
    was_training = model.training
    model.eval()
    captions = encode_texts(model, processor, verb_probe_captions(clips["all_noun_classes"]),
                            device=trainer.args.device, progress=False)  # fmt: skip
    model.train(was_training)
    return motion_verb_accuracy(videos.numpy(), captions.numpy(), clips["verb_class"].to_numpy())


def print_table(rows: dict[str, dict]) -> None:
    keys = ["vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG"]
    print("\nEK-100 MIR on the evaluation split (percent)")
    print(f"{'':<16}" + "".join(f"{k:>14}" for k in keys))
    for name, metrics in rows.items():
        values = [metrics.get(k, metrics.get(f"eval_{k}")) for k in keys]
        print(f"{name:<16}" + "".join(f"{100 * v:>14.2f}" for v in values))


# ---------------------------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------------------------


def main(argv=None, save_model: bool = True):
    """Train, evaluate before and after (with an eval split), and save the final model unless `save_model` is False
    (benchmarks/ablation_temporal.py keeps only the scores). Returns the tables' rows."""
    parser = build_parser()
    args, training_argv = parser.parse_known_args(argv)  # None: sys.argv
    if args.help_all:
        setup.print_training_help(parser)
        return None
    check_arguments(parser, args)
    demo = args.train_csv is None

    from modeling_eva02at.data.collate import VideoTextCollator
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    training_args = training_arguments(parser, args, training_argv, demo)
    setup.prepare_run(training_args)
    model, processor = load_model_for_training(args)
    train_dataset, eval_dataset = build_datasets(args, demo, training_args.seed)
    trainer = Eva02AtTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=VideoTextCollator(processor, on_bad_row=args.on_bad_row),
        processing_class=processor,
        relevancy=train_dataset.annotations.relevancy,
    )
    rows, motion = {}, {}

    def evaluate(name: str, prefix: str) -> None:
        metrics, (videos, _) = trainer.evaluate_and_encode(metric_key_prefix=prefix)
        rows[name] = {k.removeprefix(f"{prefix}_"): v for k, v in metrics.items()}
        if demo:
            motion[name] = motion_accuracy(trainer, processor, eval_dataset, videos)

    if eval_dataset is not None:
        rows["random scores"] = random_baseline(eval_dataset)
        evaluate("before training", "eval_before")

    # a string from the command line: a checkpoint folder, or True / last (Eva02AtTrainer.train resolves it)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    if save_model:
        trainer.save_model()  # config, weights, remote-code files and processor in output_dir

    if eval_dataset is not None:
        evaluate("after training", "eval")
        if trainer.is_world_process_zero():
            print_table(rows)
            if motion:
                from modeling_eva02at.demo.motion import format_motion_table

                print("\nMotion verbs on the evaluation split (percent): top-1 among the six verbs with the clip's own "
                      "nouns (chance 16.7),\nand within each direction pair (chance 50)")
                print(format_motion_table(motion))
    if save_model and trainer.is_world_process_zero():
        print(f"\nSaved to {training_args.output_dir}: load with "
              f"AutoModel.from_pretrained({training_args.output_dir!r}, trust_remote_code=True)")  # fmt: skip
    if training_args.push_to_hub:
        trainer.push_to_hub()  # the complete repo folder with the card rendered from model_card.md
    return {**rows, **{f"motion {name}": values for name, values in motion.items()}}


if __name__ == "__main__":
    main()
