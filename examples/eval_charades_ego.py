#!/usr/bin/env python
"""Evaluate an EVA02-AT model on Charades-Ego action recognition (mAP over the 157 classes, SPEC 6).

    python examples/eval_charades_ego.py --model eva02at-b16-egoclip \\
        --csv CharadesEgo_v1_test_only1st.csv --classes Charades_v1_classes.txt \\
        --video-root /data/CharadesEgo_v1_480 --num-frames 16 --bf16 \\
        --cache-dir features/ --output-json results/charades_ego.json

Each labelled video (`<root>/<id>.mp4`, frames over the whole video) is scored against one text per class. Class
texts are the bare class names by default (LaViLa's zero-shot setting); --template "#C C {}" (repeatable) fills
templates instead and averages them per class. Videos without any action are left out, as the metric does.
The logic is in `modeling_eva02at.evaluation`.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation import (  # noqa: E402
    DEFAULT_CHARADES_TEMPLATES,
    PAPER_RESULTS,
    CharadesEgoAnnotations,
    add_common_arguments,
    evaluate_charades_ego,
    load_model_and_processor,
    model_fingerprint,
    run_settings,
    settings_from_args,
    write_json,
)
from modeling_eva02at.runtime import tune_cpu_allocator  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True, help="CharadesEgo_v1_test_only1st.csv")
    parser.add_argument("--classes", required=True, help="Charades_v1_classes.txt")
    parser.add_argument("--template", action="append", default=None,
                        help="class text template with {} for the class name; repeatable (default: '{}')")
    parser.add_argument("--video-ext", default="mp4", help="video file extension (default mp4)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def print_table(metrics: dict) -> None:
    print("\nCharades-Ego mAP (percent)")
    print(f"{'':<30}{'mAP':>10}")
    print(f"{'this model':<30}{100 * metrics['mAP']:>10.2f}")
    for name, results in PAPER_RESULTS.items():
        zero_shot, fine_tuned = results["charades_ego_zero_shot"]["mAP"], results["charades_ego_fine_tuned"]["mAP"]
        print(f"{f'paper {name} zero-shot':<30}{zero_shot:>10.1f}")
        print(f"{f'paper {name} fine-tuned':<30}{fine_tuned:>10.1f}")


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    if settings.device.type == "cpu":
        tune_cpu_allocator()
    templates = args.template or list(DEFAULT_CHARADES_TEMPLATES)
    annotations = CharadesEgoAnnotations.from_files(args.csv, args.classes)
    model, processor = load_model_and_processor(args.model, processor_path=args.processor,
                                                num_frames=args.num_frames, device=settings.device)  # fmt: skip
    result = evaluate_charades_ego(model, processor, annotations, args.video_root, settings, templates=templates,
                                   video_ext=args.video_ext, cache_dir=args.cache_dir,
                                   model_id=model_fingerprint(args.model, args.processor))  # fmt: skip
    print_table(result.metrics)
    report = result.to_json_dict(**run_settings(args, processor), csv=args.csv, classes=args.classes,
                                 templates=templates)  # fmt: skip
    if args.output_json:
        write_json(args.output_json, report)
        print(f"\nWrote {args.output_json}")
    return report


if __name__ == "__main__":
    main()
