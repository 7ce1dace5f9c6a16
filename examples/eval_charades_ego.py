#!/usr/bin/env python
"""Evaluate an EVA02-AT model on Charades-Ego action recognition (mAP over the 157 classes).

    python examples/eval_charades_ego.py --model eva02at-b16-egoclip \\
        --csv CharadesEgo_v1_test_only1st.csv --classes Charades_v1_classes.txt \\
        --video-root /data/CharadesEgo_v1_480 --num-frames 16 --dtype bfloat16 \\
        --cache-dir features/ --output-json results/charades_ego.json

Each labelled video (`<root>/<id>.mp4`, frames over the whole video) is scored against one text per class. Class
texts are the bare class names by default (LaViLa's zero-shot setting); --templates "#C C {}" "{}" fills templates
instead and averages them per class. Videos without any action are left out, as the metric does.
The logic is in `modeling_eva02at.evaluation`.
"""

from modeling_eva02at.evaluation.cli import CharadesEgoArguments, EncodingArguments, evaluate_charades_ego_files
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    data, encoding = parse_arguments((CharadesEgoArguments, EncodingArguments), description=__doc__)
    evaluate_charades_ego_files(data, encoding)


if __name__ == "__main__":
    run_script(main)
