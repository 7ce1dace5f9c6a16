"""
Processor for EVA02-AT: the CLIP BPE tokenizer for captions and the video processor for clips, in one object.

As in X-CLIP, the video processor sits in the `image_processor` slot (transformers' video-processor slot needs
torchvision). `__call__` is overridden because the generic one would try to open video paths as images.
"""

import inspect

from transformers.image_processing_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .video_processing_eva02at import Eva02AtVideoProcessor, check_keywords


CONTEXT_LENGTH = 77  # the CLIP text tower's positions


def _named_parameters(function) -> set[str]:
    """The parameters `function` takes by name. The tokenizer's `__call__` swallows any other keyword silently."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in inspect.signature(function).parameters.values() if p.kind in named}


class Eva02AtProcessor(ProcessorMixin):
    r"""
    Wraps an [`Eva02AtVideoProcessor`] and a [`CLIPTokenizer`] (OpenAI CLIP BPE, 49408 tokens).

    Text is tokenized as OpenAI CLIP / open_clip do: `<|startoftext|> ... <|endoftext|>`, truncated to 77 tokens
    with `<|endoftext|>` kept as the last token, and padded to 77 by default. Padding uses the tokenizer's pad token
    (`<|endoftext|>`, id 49407, as in transformers' CLIP checkpoints) where open_clip writes 0; with the causal text
    tower pooled at the first `<|endoftext|>`, padded positions never reach the embedding, so both give the same
    text features. `attention_mask` marks the padding.

    Args:
        image_processor ([`Eva02AtVideoProcessor`]): the video processor.
        tokenizer ([`CLIPTokenizer`]): the text tokenizer.
    """

    def __init__(self, image_processor=None, tokenizer=None, **kwargs):
        if image_processor is None:
            image_processor = Eva02AtVideoProcessor()
        super().__init__(image_processor, tokenizer, **kwargs)
        self.video_processor = self.image_processor

    def __call__(
        self,
        text=None,
        videos=None,
        return_tensors: str | None = "pt",
        num_frames: int | None = None,
        start=None,
        end=None,
        padding: bool | str = "max_length",
        truncation: bool = True,
        max_length: int | None = None,
        **kwargs,
    ) -> BatchFeature:
        """
        Tokenize `text` (a string or a list of strings) and/or preprocess `videos` (see [`Eva02AtVideoProcessor`]).

        Returns one `BatchFeature` with `input_ids` and `attention_mask` (batch, 77) for text and
        `pixel_values_videos` (batch, num_frames, 3, 224, 224) for videos. `start` / `end` (seconds, or
        `"HH:MM:SS.ff"`) select clips inside long videos; `video_fps`, `jitter`, `seed`, `generator` and the video
        processor's settings (`size`, `video_backend`, ...) go to the video processor, the tokenizer's call arguments
        to the tokenizer. Any other keyword raises TypeError, also when its modality is not given.
        `padding="longest"` shortens text batches; the text features do not change (causal text tower pooled at the
        first end-of-text token).
        """
        video_keys = set(self.image_processor.call_keywords)
        valid = _named_parameters(self.__call__) | video_keys | (_named_parameters(self.tokenizer.__call__) - {"text"})
        check_keywords(kwargs, valid, type(self).__name__)
        if text is None and videos is None:
            raise ValueError("pass text=, videos= or both")
        video_kwargs = {key: kwargs.pop(key) for key in list(kwargs) if key in video_keys}

        data = {}
        if text is not None:
            if max_length is None:
                # A tokenizer saved without model_max_length reports a huge number: fall back to CLIP's context.
                max_length = min(self.tokenizer.model_max_length, CONTEXT_LENGTH)
            data.update(
                self.tokenizer(
                    text,
                    padding=padding,
                    truncation=truncation,
                    max_length=max_length,
                    return_tensors=return_tensors,
                    **kwargs,
                )
            )
        if videos is not None:
            data.update(
                self.image_processor(
                    videos, num_frames=num_frames, start=start, end=end, return_tensors=return_tensors, **video_kwargs
                )
            )
        return BatchFeature(data=data)

    @property
    def model_input_names(self) -> list[str]:
        return list(self.tokenizer.model_input_names) + list(self.image_processor.model_input_names)


__all__ = ["Eva02AtProcessor"]
