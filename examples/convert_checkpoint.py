#!/usr/bin/env python
"""Convert an EVA02-CLIP (open_clip / EVA-CLIP / timm) or EVA02-AT checkpoint into an Eva02AtModel folder.

    python examples/convert_checkpoint.py --source open_clip --checkpoint open_clip_pytorch_model.bin \\
        --config hub_configs/eva02at-b16 --output eva02at-b16-from-clip [--projection-dim 512] [--num-frames 16]

The output folder loads offline with `AutoModel.from_pretrained(DIR, trust_remote_code=True)` (and
`AutoProcessor.from_pretrained(DIR, trust_remote_code=True)` when --config has processor files). With
--projection-dim equal to the checkpoint's head size (512 for EVA02-CLIP-B, 768 for -L) the heads are kept and the
model is EVA02-CLIP at one frame; otherwise new heads are initialised. The logic is in `modeling_eva02at.conversion`.
"""

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Neither import loads torch, so --help answers at once; the conversion is imported once the arguments are parsed.
from modeling_eva02at.conversion import SOURCES  # noqa: E402
from modeling_eva02at.evaluation.cli import ArgumentParser  # noqa: E402

DTYPES = ("bfloat16", "float16", "float32")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", required=True, choices=SOURCES, help="layout of the checkpoint")
    parser.add_argument("--checkpoint", required=True, help=".safetensors / .pt / .bin file")
    parser.add_argument("--config", required=True, help="folder with config.json (e.g. hub_configs/eva02at-b16)")
    parser.add_argument("--output", required=True, help="folder to create")
    parser.add_argument("--projection-dim", type=int, default=None,
                        help="embedding size; heads of another size are re-initialised (default: the config's)")
    parser.add_argument("--num-frames", type=int, default=None,
                        help="frames of the temporal embedding (default: the config's); interpolated if it differs")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the saved weights")
    parser.add_argument("--seed", type=int, default=0, help="seed for the weights the checkpoint does not provide")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.add_argument("--no-processor", action="store_true", help="do not copy the processor / tokenizer files")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and the summary")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from modeling_eva02at.conversion.convert import CheckpointError, convert_checkpoint

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    try:
        result = convert_checkpoint(
            args.source,
            args.checkpoint,
            args.config,
            args.output,
            projection_dim=args.projection_dim,
            num_frames=args.num_frames,
            overwrite=args.overwrite,
            dtype=getattr(torch, args.dtype),
            seed=args.seed,
            save_processor=not args.no_processor,
        )
    except (CheckpointError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
