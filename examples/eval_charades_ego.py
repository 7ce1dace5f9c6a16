#!/usr/bin/env python
"""Evaluate an EVA02-AT model on Charades-Ego action recognition (mAP over the 157 classes).

    python examples/eval_charades_ego.py --model eva02at-b16-egoclip \\
        --csv CharadesEgo_v1_test_only1st.csv --classes Charades_v1_classes.txt \\
        --video-root /data/CharadesEgo_v1_480 --num-frames 16 --bf16 \\
        --cache-dir features/ --output-json results/charades_ego.json

Each labelled video (`<root>/<id>.mp4`, frames over the whole video) is scored against one text per class. Class
texts are the bare class names by default (LaViLa's zero-shot setting); --template "#C C {}" (repeatable) fills
templates instead and averages them per class. Videos without any action are left out, as the metric does.
The logic is in `modeling_eva02at.evaluation`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation.cli import ArgumentParser, add_common_arguments, run_evaluation  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, help="CharadesEgo_v1_test_only1st.csv")
    parser.add_argument("--classes", required=True, help="Charades_v1_classes.txt")
    parser.add_argument("--template", action="append", default=None,
                        help="class text template with {} for the class name; repeatable (default: '{}')")
    parser.add_argument("--video-ext", default="mp4", help="video file extension (default mp4)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def print_table(metrics: dict) -> None:
    from modeling_eva02at.evaluation.results import PAPER_RESULTS

    print("\nCharades-Ego mAP (percent)")
    print(f"{'':<30}{'mAP':>10}")
    print(f"{'this model':<30}{100 * metrics['mAP']:>10.2f}")
    for name, results in PAPER_RESULTS.items():
        zero_shot, fine_tuned = results["charades_ego_zero_shot"]["mAP"], results["charades_ego_fine_tuned"]["mAP"]
        print(f"{f'paper {name} zero-shot':<30}{zero_shot:>10.1f}")
        print(f"{f'paper {name} fine-tuned':<30}{fine_tuned:>10.1f}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    from modeling_eva02at.evaluation.charades_ego import (
        DEFAULT_CHARADES_TEMPLATES,
        CharadesEgoAnnotations,
        evaluate_charades_ego,
    )

    templates = args.template or list(DEFAULT_CHARADES_TEMPLATES)
    annotations = CharadesEgoAnnotations.from_files(args.csv, args.classes)

    def evaluate(model, processor, settings, model_id):
        return evaluate_charades_ego(model, processor, annotations, args.video_root, settings, templates=templates,
                                     video_ext=args.video_ext, cache_dir=args.cache_dir, model_id=model_id)

    return run_evaluation(args, evaluate, print_table, csv=args.csv, classes=args.classes, templates=templates)


if __name__ == "__main__":
    main()
