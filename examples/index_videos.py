#!/usr/bin/env python
"""Build or extend a text-to-video search index: embed videos with an EVA02-AT model into a folder of safetensors
shards that records the model and settings it was built with (query it with examples/search_videos.py).

    # a folder of videos, each video one clip; or cut into 10 s windows every 5 s
    python examples/index_videos.py --model eva02at-b16 --videos my_videos/ --index my_index/
    python examples/index_videos.py --model eva02at-b16 --videos long_videos/ --window 10 --stride 5 \\
        --index my_index/ --num-workers 4
    # the clips of an EPIC-Kitchens-100 retrieval CSV
    python examples/index_videos.py --model eva02at-b16 --ek100-csv EPIC_100_retrieval_test.csv \\
        --video-root /data/EK100_320p_15sec_30fps_libx264 --index ek100_index/

Running it again encodes only new or changed videos (by size and modification time), and a run that was killed
resumes where it stopped. Unreadable videos are skipped and listed at the end. See docs/search_and_app.md.
"""

from modeling_eva02at.search.cli import IndexArguments, index_videos
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    (args,) = parse_arguments((IndexArguments,), description=__doc__)
    index_videos(args)


if __name__ == "__main__":
    run_script(main)
