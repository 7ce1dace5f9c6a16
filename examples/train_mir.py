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

Arguments: ModelArguments and MirDataArguments (modeling_eva02at.training.setup / .train_mir) and every field of
Eva02AtTrainingArguments (transformers' TrainingArguments plus the losses' settings), with dashes or underscores.
"""

from modeling_eva02at.training.train_mir import parse_mir_arguments, train_mir
from modeling_eva02at.utils.cli import run_script


def main():
    train_mir(*parse_mir_arguments(description=__doc__))


if __name__ == "__main__":
    run_script(main)
