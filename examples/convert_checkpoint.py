#!/usr/bin/env python
"""Convert an EVA02-CLIP (open_clip / EVA-CLIP / timm) or EVA02-AT checkpoint into an Eva02AtModel folder.

    python examples/convert_checkpoint.py --source open_clip --checkpoint open_clip_pytorch_model.bin \\
        --config hub_configs/eva02at-b16 --output eva02at-b16-from-clip [--projection-dim 512] [--num-frames 16]

The output folder loads offline with `AutoModel.from_pretrained(DIR, trust_remote_code=True)` (and
`AutoProcessor.from_pretrained(DIR, trust_remote_code=True)` when --config has processor files). With
--projection-dim equal to the checkpoint's head size (512 for EVA02-CLIP-B, 768 for -L) the heads are kept and the
model is EVA02-CLIP at one frame; otherwise new heads are initialised. The logic is in `modeling_eva02at.conversion`.
"""

from modeling_eva02at.conversion.cli import ConversionArguments, convert_from_arguments
from modeling_eva02at.utils.cli import parse_arguments, run_script


def main():
    (args,) = parse_arguments((ConversionArguments,), description=__doc__)
    convert_from_arguments(args)


if __name__ == "__main__":
    run_script(main)
