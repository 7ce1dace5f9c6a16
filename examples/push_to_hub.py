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

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation.cli import ArgumentParser  # noqa: E402


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="model folder with processor files (converted or trained)")
    parser.add_argument("--repo-id", required=True, help="Hub repo, 'owner/name'")
    parser.add_argument("--output", default=None, help="write the repo folder here (required with --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="only assemble the folder; upload nothing")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--private", action="store_true", help="create the repo private (a new repo only)")
    parser.add_argument("--revision", default=None, help="branch to commit to (created if missing; default main)")
    parser.add_argument("--commit-message", default=None, help="the commit's message")
    parser.add_argument("--eval-json", nargs="+", default=None,
                        help="eval reports from examples/eval_*.py --output-json, one per benchmark")  # fmt: skip
    parser.add_argument("--base-model", default=None,
                        help="Hub id of the checkpoint this one comes from (default: the EVA02-CLIP checkpoint of the "
                             "paper's size)")  # fmt: skip
    parser.add_argument("--license", default=None, help="license id for the card (default: the template's, mit)")
    parser.add_argument("--token", default=None, help="Hugging Face token (default: `hf auth login`'s or HF_TOKEN)")
    args = parser.parse_args(argv)
    if args.dry_run and not args.output:
        parser.error("--dry-run writes the repo folder to --output: give --output DIR")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from modeling_eva02at.hub import assemble_repo_folder, check_repo_id, push_to_hub
    from modeling_eva02at.hub.push import resolve_token

    try:
        check_repo_id(args.repo_id)
        token = None if args.dry_run else resolve_token(args.token)  # fail before the assembly, not after
        with tempfile.TemporaryDirectory(prefix="eva02at-hub-") as staging:
            folder = args.output or os.path.join(staging, "repo")
            files = assemble_repo_folder(args.model, folder, args.repo_id, args.eval_json, base_model=args.base_model,
                                         license=args.license, overwrite=args.overwrite)  # fmt: skip
            print(f"Assembled {folder} ({len(files)} files): {', '.join(files)}")
            if args.dry_run:
                return 0
            commit = push_to_hub(folder, args.repo_id, token=token, private=args.private or None,
                                 revision=args.revision, commit_message=args.commit_message)  # fmt: skip
    except (ValueError, OSError) as error:  # FileNotFoundError and PermissionError are OSErrors
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Pushed to {args.repo_id}: {commit.commit_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
