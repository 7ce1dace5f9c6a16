#!/usr/bin/env python
"""Single-stage video-text pretraining of EVA02-AT on EgoClip (docs/pretraining.md, docs/recipes.md).

    accelerate launch examples/pretrain_egoclip.py                # the demo: synthetic EgoClip-format data
    accelerate launch --multi_gpu --num_processes 8 examples/pretrain_egoclip.py \\
        --metadata egoclip.csv --video-root /data/ego4d_chunked --video-layout egovlp \\
        --model ./eva02at-b16-from-eva02-clip --num-frames 4 --temperature 0.05 \\
        --ek100-csv EPIC_100_retrieval_test.csv --ek100-sentence-csv EPIC_100_retrieval_test_sentence.csv \\
        --ek100-video-root /data/EK100_320p_15sec_30fps_libx264 --egomcq-json egomcq.json \\
        --egomcq-video-root /data/ego4d_chunked --zero-shot-eval-steps 2000 \\
        --per-device-train-batch-size 128 --learning-rate 3e-5 --lr-scheduler-type constant --weight-decay 0.01 \\
        --num-train-epochs 5 --bf16 --gradient-checkpointing --dataloader-num-workers 10 --output-dir runs/egoclip

Metadata is EgoVLP's egoclip.csv (tab-separated) or a LaViLa / AVION pickled clip list (.pkl; a narration list is
sampled per step); videos are full files or EgoVLP / LaViLa / AVION chunks (--video-layout). The loss is InfoNCE
over the batch gathered from every rank (--loss egonce uses tag_verb / tag_noun). Zero-shot EK-100 MIR and EgoMCQ run
before and after training and every --zero-shot-eval-steps; checkpoints are folders that
`AutoModel.from_pretrained(folder, trust_remote_code=True)` loads.

With no --metadata it generates (once, into --demo-dir) a small set in the real formats and pretrains a small model
from random initialisation (or --model). Arguments: ModelArguments and EgoClipDataArguments
(modeling_eva02at.training.setup / .pretrain_egoclip) and every field of Eva02AtTrainingArguments.
"""

from modeling_eva02at.training.pretrain_egoclip import parse_pretraining_arguments, pretrain_egoclip
from modeling_eva02at.utils.cli import run_script


def main():
    pretrain_egoclip(*parse_pretraining_arguments(description=__doc__))


if __name__ == "__main__":
    run_script(main)
