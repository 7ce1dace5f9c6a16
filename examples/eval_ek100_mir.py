#!/usr/bin/env python
"""Evaluate an EVA02-AT model on EPIC-Kitchens-100 multi-instance retrieval (mAP / nDCG).

    python examples/eval_ek100_mir.py --model eva02at-b16-ek100 \\
        --test-csv EPIC_100_retrieval_test.csv --sentence-csv EPIC_100_retrieval_test_sentence.csv \\
        --relevancy caption_relevancy_EPIC_100_retrieval_test.pkl \\
        --video-root /data/EK100_320p_15sec_30fps_libx264 --num-frames 16 --batch-size 32 --num-workers 8 \\
        --dtype bfloat16 --cache-dir features/ --output-json results/ek100_mir.json

Each clip and its own narration are encoded; the sentence CSV picks the caption columns; the relevancy is the official
pickle or, by default, built from the CSVs (docs/relevancy.md). With --cache-dir a second run (e.g. with another
--relevancy) loads the embeddings instead of decoding the videos again. The logic is in `modeling_eva02at.evaluation`.
"""

from modeling_eva02at.evaluation.cli import Ek100MirArguments, EncodingArguments, evaluate_ek100_mir_files
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    data, encoding = parse_arguments((Ek100MirArguments, EncodingArguments), description=__doc__)
    evaluate_ek100_mir_files(data, encoding)


if __name__ == "__main__":
    run_script(main)
