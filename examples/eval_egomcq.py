#!/usr/bin/env python
"""Evaluate an EVA02-AT model on EgoMCQ (inter-video / intra-video accuracy).

    python examples/eval_egomcq.py --model eva02at-b16-egoclip --egomcq-json egomcq.json \\
        --video-root /data/ego4d_256/data_chunked --video-layout egovlp --num-frames 4 --dtype bfloat16 \\
        --cache-dir features/ --output-json results/egomcq.json

Each question's query text is scored against its 5 candidate clips (prediction: the most similar clip). Videos are
full Ego4D files `<root>/<video_uid>.mp4` or EgoVLP's 600-second chunks `<root>/<video_uid>/<k>.mp4`
(--video-layout auto picks per video). The logic is in `modeling_eva02at.evaluation`.
"""

from modeling_eva02at.evaluation.cli import EgoMcqArguments, EncodingArguments, evaluate_egomcq_files
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    data, encoding = parse_arguments((EgoMcqArguments, EncodingArguments), description=__doc__)
    evaluate_egomcq_files(data, encoding)


if __name__ == "__main__":
    run_script(main)
