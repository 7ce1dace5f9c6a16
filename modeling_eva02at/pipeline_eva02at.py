"""
Zero-shot video classification with EVA02-AT: score a video against free-text labels.

transformers has no zero-shot video task, so this is a custom pipeline that every saved model folder carries next to
the model files (its config.json names it under `custom_pipelines`): a Hub repo, a training output and its
checkpoints, a converted checkpoint. It loads from the folder alone:

    from transformers import pipeline

    classifier = pipeline(model="your-name/eva02at-b16", trust_remote_code=True)
    classifier("clip.mp4", candidate_labels=["cut onion", "wash pan"], hypothesis_template="a video of {}.")
    # [{"label": "cut onion", "score": 0.93}, {"label": "wash pan", "score": 0.07}]

Each label becomes a caption through the template; the scores are the softmax over the labels of the model's scaled
cosine similarities (`model.scale() * cos(video, caption)`), as CLIP's zero-shot classifier. The captions are encoded
once per call, whatever the number of videos.
"""

import torch
import torch.nn.functional as F
from transformers import Pipeline

from .video_processing_eva02at import make_batched_videos, per_video
from .video_reading_eva02at import time_to_seconds


TASK = "zero-shot-video-classification"
DEFAULT_TEMPLATE = "a video of {}."
CAPTION_BATCH_SIZE = 64
"""Captions tokenized and encoded together: the text tower's activations for 64 captions of 77 tokens."""


def _check_labels(candidate_labels) -> list[str]:
    if candidate_labels is None:
        raise ValueError(
            'candidate_labels is required: pass the labels to score, e.g. candidate_labels=["cut onion", "wash pan"]'
        )
    if isinstance(candidate_labels, str):
        # A string would be iterated letter by letter; "cut onion, wash pan" is most likely several labels.
        suggested = [label.strip() for label in candidate_labels.split(",") if label.strip()] or [candidate_labels]
        raise TypeError(
            f"candidate_labels must be a list of strings, got the string {candidate_labels!r}: write "
            f"candidate_labels={suggested!r}" + (", one string per label" if len(suggested) > 1 else "")
        )
    labels = list(candidate_labels)
    if not labels:
        raise ValueError(
            "candidate_labels is empty: give at least one label (two or more for the scores to mean "
            "anything, as they are a softmax over the labels)"
        )
    not_text = [label for label in labels if not isinstance(label, str) or not label.strip()]
    if not_text:
        raise ValueError(f"candidate_labels must be non-empty strings, got {not_text[0]!r}")
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        # Two equal labels would split one score between them.
        raise ValueError(f"candidate_labels repeats {', '.join(repr(label) for label in duplicates)}; give each once")
    return labels


def _captions(labels: list[str], hypothesis_template: str) -> list[str]:
    if not isinstance(hypothesis_template, str) or "{}" not in hypothesis_template:
        raise ValueError(
            f'hypothesis_template={hypothesis_template!r} has no "{{}}" for the label: write e.g. '
            f'"a video of {{}}." (or "{{}}" for the bare label)'
        )
    try:
        return [hypothesis_template.format(label) for label in labels]
    except (IndexError, KeyError, ValueError) as error:
        raise ValueError(
            f"hypothesis_template={hypothesis_template!r} is not a format string with one {{}} "
            f"({error}); double other braces: {{{{ and }}}}"
        ) from None


class ZeroShotVideoClassificationPipeline(Pipeline):
    r"""
    Scores videos against `candidate_labels` (task `"zero-shot-video-classification"`).

    Call with one video, or a list of videos (a batch), and keyword arguments:

    - `candidate_labels` (`list[str]`, required): the labels to score.
    - `hypothesis_template` (`str`, defaults to `"a video of {}."`): turns a label into a caption; `"{}"` uses the
      bare label.
    - `start` / `end` (optional): the clip inside each video, in seconds (a number or a string), `"MM:SS.ff"` or
      EPIC-Kitchens' `"HH:MM:SS.ff"`; one value for every video or a list with one per video.
    - `video_fps` (optional): frame rate of frames given in memory, needed with `start` / `end` for them.
    - `num_frames` (optional): frames sampled per clip (default: the processor's).

    A video is anything the processor reads (see `Eva02AtVideoProcessor`): a path, bytes, a file-like object,
    frames in memory as a (T, H, W, 3) uint8 array or tensor, or a list of PIL images (one video). A list of videos
    is a batch: a list of paths, a list of arrays, or a list of frame lists.

    Returns, per video, a list of `{"label": str, "score": float}` sorted by decreasing score (the scores sum to 1);
    for a batch, one such list per video.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __call__(
        self, videos, candidate_labels=None, hypothesis_template: str = DEFAULT_TEMPLATE, start=None, end=None, **kwargs
    ):
        if self.processor is None:
            raise ValueError(
                f"{type(self).__name__} needs the model's processor: pass processor= (an "
                f"Eva02AtProcessor), or load the pipeline from a folder with "
                f"processor_config.json"
            )
        labels = _check_labels(candidate_labels)
        text_embeds = self.encode_captions(_captions(labels, hypothesis_template))

        batch = make_batched_videos(videos)
        # A single video comes back as the only element of `batch`, itself; a batch is a new list of its elements.
        is_batch = not (len(batch) == 1 and batch[0] is videos)
        # Bad times fail here, before any video is decoded.
        starts = per_video(start, len(batch), "start", parse=time_to_seconds)
        ends = per_video(end, len(batch), "end", parse=time_to_seconds)
        items = [{"video": video, "start": s, "end": e} for video, s, e in zip(batch, starts, ends)]
        results = super().__call__(items, candidate_labels=labels, text_embeds=text_embeds, **kwargs)
        return results if is_batch else results[0]

    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        """L2-normalised caption embeddings (len(captions), projection_dim), on the pipeline's device. Encoded
        `CAPTION_BATCH_SIZE` at a time, so that memory does not grow with the number of labels beyond the embeddings
        themselves."""
        embeds = []
        with torch.inference_mode():
            for first in range(0, len(captions), CAPTION_BATCH_SIZE):
                tokens = self.processor(text=captions[first : first + CAPTION_BATCH_SIZE], return_tensors="pt")
                tokens = tokens.to(self.device)
                features = self.model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
                embeds.append(F.normalize(features.float(), dim=-1))
        return torch.cat(embeds)

    def _sanitize_parameters(self, candidate_labels=None, text_embeds=None, video_fps=None, num_frames=None, **kwargs):
        if kwargs:
            # The base class would ignore them silently.
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword arguments {sorted(kwargs)}; it takes "
                f"candidate_labels, hypothesis_template, start, end, video_fps, num_frames, batch_size "
                f"and num_workers"
            )
        preprocess = {
            key: value for key, value in (("video_fps", video_fps), ("num_frames", num_frames)) if value is not None
        }
        forward = {} if text_embeds is None else {"text_embeds": text_embeds}
        postprocess = {} if candidate_labels is None else {"candidate_labels": candidate_labels}
        return preprocess, forward, postprocess

    def preprocess(self, item, video_fps=None, num_frames=None):
        return self.processor(
            videos=item["video"],
            start=item["start"],
            end=item["end"],
            video_fps=video_fps,
            num_frames=num_frames,
            return_tensors="pt",
        )

    def _forward(self, model_inputs, text_embeds):
        pixel_values = model_inputs["pixel_values_videos"].to(self.model.dtype)
        video_embeds = self.model.get_video_features(pixel_values).pooler_output
        video_embeds = F.normalize(video_embeds.float(), dim=-1)
        logits = self.model.scale().float() * video_embeds @ text_embeds.to(video_embeds.device).T
        return {"logits": logits}

    def postprocess(self, model_outputs, candidate_labels):
        scores = model_outputs["logits"][0].softmax(dim=-1).tolist()
        ranked = sorted(zip(candidate_labels, scores), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked]


CUSTOM_PIPELINES = {
    TASK: {
        "impl": f"{__name__.rsplit('.', 1)[-1]}.{ZeroShotVideoClassificationPipeline.__name__}",
        "pt": ["AutoModel"],
        "tf": [],
        "type": "multimodal",
    }
}
"""What config.json's `custom_pipelines` holds, so that `pipeline(model=folder, trust_remote_code=True)` finds this
pipeline (and infers the task, the only custom one). `Eva02AtConfig.save_pretrained` writes it into every saved
folder of a registered model, and this file comes along."""


__all__ = ["CUSTOM_PIPELINES", "DEFAULT_TEMPLATE", "TASK", "ZeroShotVideoClassificationPipeline"]
