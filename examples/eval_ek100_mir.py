#!/usr/bin/env python
"""Evaluate an EVA02-AT model on EPIC-Kitchens-100 multi-instance retrieval (mAP / nDCG).

    python examples/eval_ek100_mir.py --model eva02at-b16-ek100 \\
        --test-csv EPIC_100_retrieval_test.csv --sentence-csv EPIC_100_retrieval_test_sentence.csv \\
        --relevancy caption_relevancy_EPIC_100_retrieval_test.pkl \\
        --video-root /data/EK100_320p_15sec_30fps_libx264 --num-frames 16 --batch-size 32 --num-workers 8 --bf16 \\
        --cache-dir features/ --output-json results/ek100_mir.json

Each clip and its own narration are encoded; the sentence CSV picks the caption columns; the relevancy is the
official pickle or, by default, built from the CSVs (docs/relevancy.md). With --cache-dir a second run (e.g. with another
--relevancy) loads the embeddings instead of decoding the videos again. The logic is in `modeling_eva02at.evaluation`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation.cli import ArgumentParser, add_common_arguments, run_evaluation  # noqa: E402

METRIC_KEYS = ("vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test-csv", required=True, help="EPIC_100_retrieval_test.csv")
    parser.add_argument("--sentence-csv", required=True, help="EPIC_100_retrieval_test_sentence.csv")
    parser.add_argument("--relevancy", default=None, help="relevancy pickle (default: built from the CSVs)")
    parser.add_argument("--video-ext", default="MP4", help="<root>/<participant>/<video_id>.<ext> (default MP4)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def print_table(metrics: dict) -> None:
    from modeling_eva02at.evaluation.results import PAPER_RESULTS

    print("\nEK-100 MIR (percent)")
    print(f"{'':<28}" + "".join(f"{key:>14}" for key in METRIC_KEYS))
    print(f"{'this model':<28}" + "".join(f"{100 * metrics[key]:>14.2f}" for key in METRIC_KEYS))
    for name, results in PAPER_RESULTS.items():
        for setting in ("zero_shot", "fine_tuned"):
            paper = results[f"ek100_mir_{setting}"]
            cells = [f"{paper[key]:>14.1f}" if key in paper else f"{'-':>14}" for key in METRIC_KEYS]
            print(f"{f'paper {name} {setting}':<28}" + "".join(cells))


def main(argv=None) -> dict:
    args = parse_args(argv)
    from modeling_eva02at.data.ek100 import Ek100MirAnnotations
    from modeling_eva02at.evaluation.ek100_mir import evaluate_ek100_mir

    annotations = Ek100MirAnnotations.from_files(args.test_csv, args.sentence_csv, args.relevancy)

    def evaluate(model, processor, settings, model_id):
        return evaluate_ek100_mir(model, processor, annotations, args.video_root, settings, video_ext=args.video_ext,
                                  cache_dir=args.cache_dir, model_id=model_id, data_files=[args.test_csv])

    return run_evaluation(args, evaluate, print_table, test_csv=args.test_csv, sentence_csv=args.sentence_csv,
                          relevancy=args.relevancy or "built from the CSVs")


if __name__ == "__main__":
    main()
