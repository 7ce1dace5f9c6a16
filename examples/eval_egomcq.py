#!/usr/bin/env python
"""Evaluate an EVA02-AT model on EgoMCQ (inter-video / intra-video accuracy, SPEC 6).

    python examples/eval_egomcq.py --model eva02at-b16-egoclip --egomcq-json egomcq.json \\
        --video-root /data/ego4d_256/data_chunked --video-layout chunked --num-frames 4 --bf16 \\
        --cache-dir features/ --output-json results/egomcq.json

Each question's query text is scored against its 5 candidate clips (prediction: the most similar clip). Videos are
full Ego4D files `<root>/<video_uid>.mp4` or EgoVLP's 600-second chunks `<root>/<video_uid>/<k>.mp4`
(--video-layout auto picks per video). The logic is in `modeling_eva02at.evaluation`.
"""

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation import (  # noqa: E402
    EGOMCQ_VIDEO_LAYOUTS,
    EGOVLP_CHUNK_SECONDS,
    PAPER_RESULTS,
    EgoMcqQuestions,
    add_common_arguments,
    evaluate_egomcq,
    load_model_and_processor,
    model_fingerprint,
    run_settings,
    settings_from_args,
    write_json,
)
from modeling_eva02at.runtime import tune_cpu_allocator  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--egomcq-json", required=True, help="EgoVLP's egomcq.json")
    parser.add_argument("--video-layout", choices=EGOMCQ_VIDEO_LAYOUTS, default="auto",
                        help="full: <root>/<video_uid>.mp4; chunked: <root>/<video_uid>/<k>.mp4 (EgoVLP)")
    parser.add_argument("--video-ext", default="mp4", help="video file extension (default mp4)")
    parser.add_argument("--chunk-seconds", type=int, default=EGOVLP_CHUNK_SECONDS,
                        help=f"seconds per chunk of the chunked layout (EgoVLP: {EGOVLP_CHUNK_SECONDS})")
    add_common_arguments(parser)
    return parser.parse_args(argv)


def print_table(metrics: dict) -> None:
    print("\nEgoMCQ accuracy (percent)")
    print(f"{'':<24}{'inter-video':>14}{'intra-video':>14}")
    inter, intra = 100 * metrics["inter_video_accuracy"], 100 * metrics["intra_video_accuracy"]
    print(f"{'this model':<24}{inter:>14.2f}{intra:>14.2f}")
    for name, results in PAPER_RESULTS.items():
        paper = results["egomcq"]
        print(f"{f'paper {name}':<24}{paper['inter_video_accuracy']:>14.1f}{paper['intra_video_accuracy']:>14.1f}")
    print(f"({metrics['num_inter_video']} inter-video and {metrics['num_intra_video']} intra-video questions)")


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.chunk_seconds < 1:
        raise ValueError(f"--chunk-seconds must be at least 1, got {args.chunk_seconds}")
    settings = settings_from_args(args)
    if settings.device.type == "cpu":
        tune_cpu_allocator()
    questions = EgoMcqQuestions.from_json(args.egomcq_json)
    model, processor = load_model_and_processor(args.model, processor_path=args.processor,
                                                num_frames=args.num_frames, device=settings.device)  # fmt: skip
    result = evaluate_egomcq(model, processor, questions, args.video_root, settings, layout=args.video_layout,
                             video_ext=args.video_ext, chunk_seconds=args.chunk_seconds, cache_dir=args.cache_dir,
                             model_id=model_fingerprint(args.model, args.processor))  # fmt: skip
    print_table(result.metrics)
    report = result.to_json_dict(**run_settings(args, processor), egomcq_json=args.egomcq_json,
                                 video_layout=args.video_layout)  # fmt: skip
    if args.output_json:
        write_json(args.output_json, report)
        print(f"\nWrote {args.output_json}")
    return report


if __name__ == "__main__":
    main()
