#!/usr/bin/env python
"""Assemble a Hugging Face Space that runs the app (examples/app.py) for a model, and upload it in one commit.

    python examples/push_space.py --model your-name/eva02at-b16 --space-id your-name/eva02at-demo \\
        [--index my_index/] [--examples my_videos/] [--title "EVA02-AT demo"] [--private]
    python examples/push_space.py --model your-name/eva02at-b16 --space-id your-name/eva02at-demo --index my_index/ \\
        --dry-run --output space/

The Space folder holds the launcher app.py, a copy of this package, requirements.txt, the Space card README.md and,
when given, a copy of the search index with its videos and the example videos. --model is what the Space loads: a
Hub model id (push it with examples/push_to_hub.py). The index must be made with that model; it is checked here when
the model is a folder or in the local Hub cache. The logic is in `modeling_eva02at.app.space` (docs/hub.md).
"""

from modeling_eva02at.app.cli import SpaceArguments, push_space_from_arguments
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    (args,) = parse_arguments((SpaceArguments,), description=__doc__)
    push_space_from_arguments(args)


if __name__ == "__main__":
    run_script(main)
