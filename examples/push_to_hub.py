#!/usr/bin/env python
"""Assemble the Hub repo of an EVA02-AT model folder and upload it in one commit.

    python examples/push_to_hub.py --model eva02at-b16-from-eva02clip --repo-id your-name/eva02at-b16 \\
        [--eval-json ek100_mir.json egomcq.json] [--private] [--revision main]
    python examples/push_to_hub.py --model DIR --repo-id your-name/eva02at-b16 --dry-run --output repo/

The repo folder holds the weights (safetensors), config.json with auto_map and custom_pipelines, the processor and
tokenizer files, every remote-code file, the Inference Endpoints handler.py and README.md rendered from
model_card.md (with the paper's numbers and this checkpoint's own from --eval-json). --dry-run only writes the folder
(to --output). Without --dry-run the folder is built in a temporary place unless --output is given. Nothing is
uploaded when a file is missing, the repo id is invalid or no token is available. The logic is in
`modeling_eva02at.hub` (docs/hub.md).
"""

from modeling_eva02at.hub.cli import PushArguments, push_from_arguments
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    (args,) = parse_arguments((PushArguments,), description=__doc__)
    push_from_arguments(args)


if __name__ == "__main__":
    run_script(main)
