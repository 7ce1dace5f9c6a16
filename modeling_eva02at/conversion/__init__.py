"""Checkpoint conversion from open_clip / EVA-CLIP / timm EVA02 and original EVA02-AT / AVION layouts.

`checkpoints` reads checkpoint files safely, `mapping` renames their tensors to `Eva02AtModel`'s names and infers the
architecture, `convert` builds the model and writes the output folder. Importing this package is cheap (no torch), so
`examples/convert_checkpoint.py` can list `SOURCES` in its ``--help`` at once.
"""

SOURCES = ("open_clip", "eva_clip", "timm", "eva02at")
"""The checkpoint layouts the conversion understands (described in `modeling_eva02at.conversion.mapping`)."""
