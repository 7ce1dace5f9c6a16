#!/usr/bin/env python
"""Text-to-video search: the best clips of an index (made by examples/index_videos.py) for each text query.

    python examples/search_videos.py --index my_index/ --query "cut an onion" "wash the pan" --top-k 5
    python examples/search_videos.py --index my_index/ --query "cut an onion" --json

The queries are encoded with the model the index was built with (or --model, the same model moved: another model
is refused). See docs/search_and_app.md.
"""

from modeling_eva02at.search.cli import QueryArguments, query_index
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    (args,) = parse_arguments((QueryArguments,), description=__doc__)
    query_index(args)


if __name__ == "__main__":
    run_script(main)
