"""Make a processor feed a given model: one place for the frame count and crop size the two must agree on."""

from __future__ import annotations


def match_processor_to_model(processor, config, num_frames: int | None = None, *, resize: bool = False) -> list[str]:
    """Set the processor's frame count to `num_frames` (default: the model's `vision_config.num_frames`) and check
    its crop against the model's `image_size`.

    Args:
        processor: an `Eva02AtProcessor` (or its video processor).
        config: the model's `Eva02AtConfig`.
        resize: when the crop differs from the model's image size, resize and crop to the model's size (training a
            new model) instead of raising (evaluating a trained one, whose processor was saved with it).

    Returns:
        What was changed, one line each (for logs and conversion notes).

    Raises:
        ValueError: the crop size differs from the model's `image_size` and `resize` is False.
    """
    video = getattr(processor, "image_processor", processor)
    vision = config.vision_config
    notes = []
    num_frames = int(num_frames or vision.num_frames)
    if video.num_frames != num_frames:
        notes.append(f"processor num_frames set to {num_frames} (was {video.num_frames})")
        video.num_frames = num_frames
    if video.crop_size != vision.image_size:
        if not resize:
            raise ValueError(
                f"the processor crops {video.crop_size}x{video.crop_size} frames (crop_size) but the model takes "
                f"{vision.image_size}x{vision.image_size} (vision_config.image_size)"
            )
        notes.append(f"processor size and crop_size set to {vision.image_size} (was {video.size} / {video.crop_size})")
        video.size = video.crop_size = vision.image_size
    return notes
