"""The arguments of `examples/convert_checkpoint.py` and the conversion they ask for.

Importing this module is cheap (no torch), so the script answers --help at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from . import SOURCES


SAVED_DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class ConversionArguments:
    """A checkpoint to convert into an `Eva02AtModel` folder."""

    source: str = field(metadata={"help": "layout of the checkpoint", "choices": SOURCES})
    checkpoint: str = field(metadata={"help": ".safetensors / .pt / .bin file"})
    config: str = field(metadata={"help": "folder with config.json (e.g. hub_configs/eva02at-b16)"})
    output: str = field(metadata={"help": "folder to create"})
    projection_dim: int | None = field(
        default=None,
        metadata={"help": "embedding size; heads of another size are re-initialised (default: the config's)"},
    )
    num_frames: int | None = field(
        default=None,
        metadata={"help": "frames of the temporal embedding (default: the config's); interpolated if it differs"},
    )
    saved_dtype: str = field(
        default="float32", metadata={"help": "dtype of the saved weights", "choices": SAVED_DTYPES}
    )
    seed: int = field(default=0, metadata={"help": "seed for the weights the checkpoint does not provide"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output folder"})
    no_processor: bool = field(default=False, metadata={"help": "do not copy the processor / tokenizer files"})
    quiet: bool = field(default=False, metadata={"help": "only warnings and the summary", "aliases": ["-q"]})

    def __post_init__(self):
        for name in ("projection_dim", "num_frames"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def convert_from_arguments(args: ConversionArguments):
    """Convert as `args` ask and print the summary; returns the `ConversionResult`."""
    import torch

    from .convert import convert_checkpoint

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    result = convert_checkpoint(
        args.source,
        args.checkpoint,
        args.config,
        args.output,
        projection_dim=args.projection_dim,
        num_frames=args.num_frames,
        overwrite=args.overwrite,
        saved_dtype=getattr(torch, args.saved_dtype),
        seed=args.seed,
        save_processor=not args.no_processor,
    )
    print(result.summary())
    return result


__all__ = ["SAVED_DTYPES", "ConversionArguments", "convert_from_arguments"]
