#!/usr/bin/env python
"""Evaluate an EVA02-AT model on EgoMCQ (inter-video / intra-video accuracy).

    python examples/eval_egomcq.py --model eva02at-b16-egoclip --egomcq-json egomcq.json \\
        --video-root /data/ego4d_256/data_chunked --video-layout egovlp --num-frames 4 --bf16 \\
        --cache-dir features/ --output-json results/egomcq.json

Each question's query text is scored against its 5 candidate clips (prediction: the most similar clip). Videos are
full Ego4D files `<root>/<video_uid>.mp4` or EgoVLP's 600-second chunks `<root>/<video_uid>/<k>.mp4`
(--video-layout auto picks per video). The logic is in `modeling_eva02at.evaluation`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation.cli import ArgumentParser, add_common_arguments, run_evaluation  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--egomcq-json", required=True, help="EgoVLP's egomcq.json")
    parser.add_argument("--video-layout", choices=("auto", "full", "egovlp"), default="auto",
                        help="full: <root>/<video_uid>.mp4; egovlp: <root>/<video_uid>/<k>.mp4 (EgoVLP); "
                             "auto: per video, the full file if it exists (default)")
    parser.add_argument("--video-ext", default="mp4", help="video file extension (default mp4)")
    parser.add_argument("--chunk-seconds", type=int, default=600,
                        help="seconds per chunk of the egovlp layout (EgoVLP: 600, the default)")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def print_table(metrics: dict) -> None:
    from modeling_eva02at.evaluation.results import PAPER_RESULTS

    print("\nEgoMCQ accuracy (percent)")
    print(f"{'':<24}{'inter-video':>14}{'intra-video':>14}")
    inter, intra = 100 * metrics["inter_video_accuracy"], 100 * metrics["intra_video_accuracy"]
    print(f"{'this model':<24}{inter:>14.2f}{intra:>14.2f}")
    for name, results in PAPER_RESULTS.items():
        paper = results["egomcq"]
        print(f"{f'paper {name}':<24}{paper['inter_video_accuracy']:>14.1f}{paper['intra_video_accuracy']:>14.1f}")
    print(f"({metrics['num_inter_video']} inter-video (types 1) and {metrics['num_intra_video']} intra-video (types 2) "
          "questions)")


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.chunk_seconds < 1:
        raise ValueError(f"--chunk-seconds must be at least 1, got {args.chunk_seconds}")
    from modeling_eva02at.data.egomcq import EgoMcqQuestions
    from modeling_eva02at.evaluation.egomcq import evaluate_egomcq

    questions = EgoMcqQuestions.from_json(args.egomcq_json)

    def evaluate(model, processor, settings, model_id):
        return evaluate_egomcq(model, processor, questions, args.video_root, settings, layout=args.video_layout,
                               video_ext=args.video_ext, chunk_seconds=args.chunk_seconds, cache_dir=args.cache_dir,
                               model_id=model_id)

    return run_evaluation(args, evaluate, print_table, egomcq_json=args.egomcq_json, video_layout=args.video_layout)


if __name__ == "__main__":
    main()
