#!/usr/bin/env python
"""Fine-tune EVA02-AT on Charades-Ego trimmed actions with the SMS hard-label loss (docs/pretraining.md,
docs/recipes.md), and report Charades-Ego mAP over the classes before and after.

    accelerate launch examples/finetune_charades_ego.py          # the demo: synthetic Charades-Ego-format data
    accelerate launch --multi_gpu --num_processes 8 examples/finetune_charades_ego.py \\
        --train-csv CharadesEgo_v1_train_only1st.csv --test-csv CharadesEgo_v1_test_only1st.csv \\
        --classes Charades_v1_classes.txt --video-root /data/CharadesEgo_v1_480 \\
        --model ./eva02at-b16-egoclip --num-frames 16 --loss sms_hard --optimizer-name lamb \\
        --learning-rate 3e-5 --warmup-start-lr 1e-6 --warmup-steps 0.1 --num-train-epochs 10 \\
        --per-device-train-batch-size 32 --bf16 --dataloader-num-workers 8 --output-dir runs/charades_ego

Every action segment of the training CSV is a sample, captioned with its class name; `sms_hard` (margin 0.3) treats
two samples of one class as equally relevant and the rest as irrelevant. Evaluation scores each labelled test video
(frames over the whole video) against every class name and reports the mean over classes of the average precision.
A model whose frame count differs from --num-frames is resized to it (temporal embedding interpolated).

With no --train-csv it generates (once, into --demo-dir) a small set in the real formats and fine-tunes a small
model from random initialisation (or --model). Arguments: ModelArguments and CharadesEgoDataArguments
(modeling_eva02at.training.setup / .finetune_charades_ego) and every field of Eva02AtTrainingArguments.
"""

from modeling_eva02at.training.finetune_charades_ego import finetune_charades_ego, parse_fine_tuning_arguments
from modeling_eva02at.utils.cli import run_script


def main():
    finetune_charades_ego(*parse_fine_tuning_arguments(description=__doc__))


if __name__ == "__main__":
    run_script(main)
