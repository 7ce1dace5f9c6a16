#!/usr/bin/env python
"""A Gradio app for an EVA02-AT model: zero-shot video classification and text-to-video search
(`modeling_eva02at.app`; examples/push_space.py makes a Hugging Face Space of it).

    pip install -e '.[app]'
    python examples/app.py --model eva02at-b16 --index my_index/ --examples my_videos/ --port 7860

Two tabs:

* **Zero-shot classification**: upload a video (or pick an example), type comma-separated labels, and see the scores
  of the model's `zero-shot-video-classification` pipeline as a bar chart;
* **Search**: type what happens and see the best clips of an index made by `examples/index_videos.py`, each cut out
  of its video as a playable preview.

The defaults of --model, --index and --examples come from EVA02AT_MODEL, EVA02AT_INDEX and EVA02AT_EXAMPLES; see
docs/search_and_app.md.
"""

from modeling_eva02at.app.cli import AppArguments, launch_app
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    (args,) = parse_arguments((AppArguments,), description=__doc__)
    launch_app(args)


if __name__ == "__main__":
    run_script(main)
