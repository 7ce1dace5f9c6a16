"""The arguments of `examples/app.py` (also the Space's launcher) and `examples/push_space.py`, and what they run.

Importing this module is cheap (no torch, no gradio), so the scripts answer --help at once.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from ..utils.runtime import DTYPE_CHOICES


GRADIO_MISSING = "the app needs gradio, an optional extra of this package: pip install 'modeling-eva02at[app]'"


@dataclass
class AppArguments:
    """The model and index the app serves, and where it listens. The defaults of the first three and the dtype are
    read from the environment when the arguments are parsed (a Space's launcher sets them)."""

    model: str | None = field(
        default_factory=lambda: os.environ.get("EVA02AT_MODEL"),
        metadata={"help": "model folder or Hub id (default: $EVA02AT_MODEL)"},
    )
    processor: str | None = field(default=None, metadata={"help": "processor folder if not in --model"})
    index: str | None = field(
        default_factory=lambda: os.environ.get("EVA02AT_INDEX"),
        metadata={"help": "index folder made by index_videos.py, for the Search tab (default: $EVA02AT_INDEX)"},
    )
    examples: str | None = field(
        default_factory=lambda: os.environ.get("EVA02AT_EXAMPLES"),
        metadata={"help": "folder of example videos for the first tab (default: $EVA02AT_EXAMPLES)"},
    )
    host: str | None = field(default=None, metadata={"help": "default: gradio's (127.0.0.1, or 0.0.0.0 on a Space)"})
    port: int | None = field(default=None, metadata={"help": "default: gradio's (7860, or the next free one)"})
    device: str | None = field(default=None, metadata={"help": "default: cuda if available, else cpu"})
    dtype: str = field(
        default_factory=lambda: os.environ.get("EVA02AT_DTYPE", "auto"),
        metadata={
            "help": "dtype the model is loaded and computes in: auto is bfloat16 on hardware with native bf16 "
            "(default: $EVA02AT_DTYPE, else auto)",
            "choices": DTYPE_CHOICES,
        },
    )

    def __post_init__(self):
        if not self.model:
            raise ValueError("--model is required (or set EVA02AT_MODEL)")
        if self.dtype not in DTYPE_CHOICES:  # from the environment: the parser's choices did not see it
            raise ValueError(f"EVA02AT_DTYPE must be one of {', '.join(DTYPE_CHOICES)}, got {self.dtype!r}")


def launch_app(args: AppArguments) -> None:
    """Load the model and index (checked against each other) and serve the app until interrupted."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise ImportError(GRADIO_MISSING) from None
    from .backend import AppBackend
    from .ui import launch

    backend = AppBackend.load(args.model, args.processor, args.index, device=args.device, dtype=args.dtype)
    launch(backend, args.examples, host=args.host, port=args.port)


@dataclass
class SpaceArguments:
    """The Space to assemble and where to push it."""

    model: str = field(
        metadata={"help": "the Hub model id the Space loads ('owner/name'; push a local model with push_to_hub.py)"}
    )
    space_id: str = field(metadata={"help": "the Space, 'owner/name'"})
    index: str | None = field(
        default=None, metadata={"help": "a search index made with --model, copied with its videos"}
    )
    examples: str | None = field(
        default=None, metadata={"help": "a folder of example videos (the first 12 are copied)"}
    )
    title: str | None = field(default=None, metadata={"help": "the Space's title (default: its name)"})
    sdk_version: str | None = field(
        default=None, metadata={"help": "gradio version of the Space (default: the installed one)"}
    )
    output: str | None = field(default=None, metadata={"help": "write the Space folder here (required with --dry-run)"})
    dry_run: bool = field(default=False, metadata={"help": "only assemble the folder; upload nothing"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty --output folder"})
    private: bool = field(default=False, metadata={"help": "create the Space private (a new Space only)"})
    token: str | None = field(
        default=None, metadata={"help": "Hugging Face token (default: `hf auth login`'s or HF_TOKEN)"}
    )

    def __post_init__(self):
        if self.dry_run and not self.output:
            raise ValueError("--dry-run writes the Space folder to --output: give --output DIR")


def push_space_from_arguments(args: SpaceArguments):
    """Assemble the Space folder (in --output or a temporary folder) and, unless --dry-run, push it in one commit.
    Everything that can be checked without the network is checked first. Returns the `CommitInfo`, or None."""
    from ..hub.assemble import check_repo_id
    from ..hub.push import resolve_token
    from .space import assemble_space_folder, check_space_model, push_space

    check_repo_id(args.space_id)
    check_space_model(args.model)
    token = None if args.dry_run else resolve_token(args.token)  # fail before the assembly, not after
    with tempfile.TemporaryDirectory(prefix="eva02at-space-") as staging:
        folder = args.output or os.path.join(staging, "space")
        files = assemble_space_folder(
            folder,
            args.space_id,
            args.model,
            index=args.index,
            examples=args.examples,
            title=args.title,
            sdk_version=args.sdk_version,
            overwrite=args.overwrite,
        )
        print(f"Assembled {folder} ({len(files)} files)")
        if args.dry_run:
            return None
        commit = push_space(folder, args.space_id, token=token, private=args.private or None)
    print(f"Pushed to the Space {args.space_id}: {commit.commit_url}")
    return commit


__all__ = ["GRADIO_MISSING", "AppArguments", "SpaceArguments", "launch_app", "push_space_from_arguments"]
