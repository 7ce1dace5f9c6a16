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

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation.cli import ArgumentParser  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="what the Space loads: a Hub model id (or a folder path there)")
    parser.add_argument("--space-id", required=True, help="the Space, 'owner/name'")
    parser.add_argument("--index", default=None, help="a search index made with --model, copied with its videos")
    parser.add_argument("--examples", default=None, help="a folder of example videos (the first 12 are copied)")
    parser.add_argument("--title", default=None, help="the Space's title (default: its name)")
    parser.add_argument("--sdk-version", default=None, help="gradio version of the Space (default: the installed one)")
    parser.add_argument("--output", default=None, help="write the Space folder here (required with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="only assemble the folder; upload nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--private", action="store_true", help="create the Space private (a new Space only)")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: `hf auth login`'s or HF_TOKEN)")
    args = parser.parse_args(argv)
    if args.dry_run and not args.output:
        parser.error("--dry-run writes the Space folder to --output: give --output DIR")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from modeling_eva02at.hub.assemble import check_repo_id
    from modeling_eva02at.hub.push import resolve_token
    from modeling_eva02at.app.space import assemble_space_folder, push_space

    try:
        check_repo_id(args.space_id)
        token = None if args.dry_run else resolve_token(args.token)  # fail before the assembly, not after
        with tempfile.TemporaryDirectory(prefix="eva02at-space-") as staging:
            folder = args.output or os.path.join(staging, "space")
            files = assemble_space_folder(folder, args.space_id, args.model, index=args.index, examples=args.examples,
                                          title=args.title, sdk_version=args.sdk_version, overwrite=args.overwrite)
            print(f"Assembled {folder} ({len(files)} files)")
            if args.dry_run:
                return 0
            commit = push_space(folder, args.space_id, token=token, private=args.private or None)
    except (ValueError, OSError) as error:  # IndexMismatchError is a ValueError; FileNotFoundError an OSError
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Pushed to the Space {args.space_id}: {commit.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
