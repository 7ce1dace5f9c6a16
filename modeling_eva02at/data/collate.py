"""The collator that turns dataset items into model batches: clips decoded in the DataLoader workers, captions
tokenized, and the labels a loss needs batched as tensors."""

from __future__ import annotations

import logging

import numpy as np
import torch

from .layouts import load_clip
from .rows import check_bad_row_setting


logger = logging.getLogger(__name__)


class VideoTextCollator:
    """Decodes a batch's clips and tokenizes its captions with an `Eva02AtProcessor`.

    Items name their clip (`video`, `start`, `end`: anything :func:`~.layouts.load_clip` reads) and say how to sample
    it (`jitter`, seeded by `sample_seed`), so one collator serves the Trainer's training and evaluation loaders. A
    clip that cannot be read raises (naming it) with `on_bad_row="raise"`, or is dropped from the batch with a
    warning and counted in `skipped` (per process / DataLoader worker) with `on_bad_row="skip"`.
    """

    LABELS = {
        "video_index": torch.long,
        "sentence_index": torch.long,
        "positive_relevancy": torch.float32,
        "verb_multi_hot": torch.uint8,
        "noun_multi_hot": torch.uint8,
    }
    """Per-item labels batched as tensors when the items carry them (the trainer's losses take them)."""

    def __init__(
        self, processor, *, num_frames: int | None = None, on_bad_row: str = "raise", chunk_ext: str | None = None
    ):
        self.processor = processor
        self.num_frames = num_frames
        self.on_bad_row = check_bad_row_setting(on_bad_row)
        self.chunk_ext = chunk_ext
        self.skipped = 0

    def load(self, item: dict) -> torch.Tensor:
        """The item's clip as (T, 3, crop, crop) pixel values."""
        video_processor = self.processor.image_processor
        frames = load_clip(
            video_processor,
            item["video"],
            item.get("start"),
            item.get("end"),
            num_frames=self.num_frames,
            jitter=bool(item.get("jitter", False)),
            seed=item.get("sample_seed"),
            chunk_ext=self.chunk_ext,
        )
        return video_processor.transform_frames(frames)

    def __call__(self, items: list[dict]) -> dict:
        kept, videos = [], []
        for item in items:
            try:
                videos.append(self.load(item))
            except (OSError, ValueError) as error:  # FileNotFoundError and VideoDecodeError included
                if self.on_bad_row == "raise":
                    raise
                self.skipped += 1
                logger.warning(f"skipping video {item['video']} ({error}); skipped so far here: {self.skipped}")
                continue
            kept.append(item)
        if not kept:
            raise ValueError(f"every video of the batch failed to decode: {[item['video'] for item in items]}")
        # Padded to the batch's longest caption, not to the 77-token context: the causal text tower pools at the
        # end-of-text token, so the features are the same and the text tower does a fraction of the work.
        batch = dict(self.processor(text=[item["caption"] for item in kept], padding="longest", return_tensors="pt"))
        batch["pixel_values_videos"] = torch.stack(videos)
        for key, dtype in self.LABELS.items():
            if key in kept[0]:
                batch[key] = torch.as_tensor(np.array([item[key] for item in kept]), dtype=dtype)
        return batch


__all__ = ["VideoTextCollator"]
