"""Checkpoint conversion from open_clip / EVA-CLIP / timm EVA02 and original EVA02-AT / AVION layouts (`convert`)."""
