"""The arguments of `examples/push_to_hub.py` and the assembly and push they ask for.

Importing this module is cheap (no torch), so the script answers --help at once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field


@dataclass
class PushArguments:
    """A model folder to assemble into a Hub repo, and where to push it."""

    model: str = field(metadata={"help": "model folder with processor files (converted or trained)"})
    repo_id: str = field(metadata={"help": "Hub repo, 'owner/name'"})
    output: str | None = field(default=None, metadata={"help": "write the repo folder here (required with --dry-run)"})
    dry_run: bool = field(default=False, metadata={"help": "only assemble the folder; upload nothing"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output folder"})
    private: bool = field(default=False, metadata={"help": "create the repo private (a new repo only)"})
    revision: str | None = field(
        default=None, metadata={"help": "branch to commit to (created if missing; default main)"}
    )
    commit_message: str | None = field(default=None, metadata={"help": "the commit's message"})
    eval_json: list[str] | None = field(
        default=None,
        metadata={
            "help": "eval reports of --model from examples/eval_*.py --output-json, one per benchmark (a report of "
            "another model is refused; numbers on the demo's synthetic data stay out of the model-index)"
        },
    )
    base_model: str | None = field(
        default=None,
        metadata={
            "help": "Hub id of the checkpoint this one comes from (default: the EVA02-CLIP checkpoint of the "
            "paper's size)"
        },
    )
    license: str | None = field(
        default=None, metadata={"help": "license id for the card (default: the template's, mit)"}
    )
    token: str | None = field(
        default=None, metadata={"help": "Hugging Face token (default: `hf auth login`'s or HF_TOKEN)"}
    )

    def __post_init__(self):
        if self.dry_run and not self.output:
            raise ValueError("--dry-run writes the repo folder to --output: give --output DIR")


def push_from_arguments(args: PushArguments):
    """Assemble the repo folder (in --output or a temporary folder) and, unless --dry-run, push it in one commit.
    Everything that can be checked without the network is checked first, the --eval-json reports too: each must
    have measured --model (its fingerprint), and those on the demo's synthetic data stay out of the model-index.
    Returns the `CommitInfo`, or None."""
    from .assemble import assemble_repo_folder, check_repo_id
    from .push import push_to_hub, resolve_token

    check_repo_id(args.repo_id)
    token = None if args.dry_run else resolve_token(args.token)  # fail before the assembly, not after
    with tempfile.TemporaryDirectory(prefix="eva02at-hub-") as staging:
        folder = args.output or os.path.join(staging, "repo")
        files = assemble_repo_folder(
            args.model,
            folder,
            args.repo_id,
            args.eval_json,
            base_model=args.base_model,
            license=args.license,
            overwrite=args.overwrite,
        )
        print(f"Assembled {folder} ({len(files)} files): {', '.join(files)}")
        if args.dry_run:
            return None
        commit = push_to_hub(
            folder,
            args.repo_id,
            token=token,
            private=args.private or None,
            revision=args.revision,
            commit_message=args.commit_message,
        )
    print(f"Pushed to {args.repo_id}: {commit.commit_url}")
    return commit


__all__ = ["PushArguments", "push_from_arguments"]
