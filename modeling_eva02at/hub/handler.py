"""
Inference Endpoints handler for an EVA02-AT repo (copied as `handler.py` to the root of every assembled repo).

Inference Endpoints imports `EndpointHandler` from the repo's `handler.py`, builds it once with the repository
folder and calls it with each request's JSON (binary bodies arrive as bytes in "inputs"):

- zero-shot classification of a video:
  `{"inputs": <video bytes, or base64 text>, "parameters": {"candidate_labels": [...], "hypothesis_template": ...,
  "start": ..., "end": ...}}` -> `[{"label": ..., "score": ...}, ...]`, sorted by decreasing score;
- caption embeddings (L2-normalised, for retrieval against video embeddings):
  `{"inputs": {"texts": [...]}}` -> `{"embeddings": [[...], ...]}`.

Every request is bounded (`LIMITS`: labels, texts, upload bytes, pixels per frame, duration; each settable as a
constructor argument or an environment variable, see the model card): what is over a limit is refused, naming it,
before anything is decoded. An upload is written to a temporary file, never copied in memory, and its header is
checked before a frame is decoded. Bad requests raise `ValueError` with a message that says what to send (naming the
video, never a server path); the endpoint returns it to the client as JSON. The model and pipeline load through
`trust_remote_code` from the repo's own files, so this runs with transformers, torch, Pillow and a video decoder
(decord and PyAV) installed, nothing else.
"""

import base64
import binascii
import os
import tempfile

import torch
from transformers import pipeline


TASK = "zero-shot-video-classification"
CLASSIFICATION_PARAMETERS = ("candidate_labels", "hypothesis_template", "start", "end")
USAGE = (
    'send {"inputs": <video bytes or base64>, "parameters": {"candidate_labels": ["label", ...]}} to classify a '
    'video, or {"inputs": {"texts": ["caption", ...]}} for caption embeddings'
)
LIMITS = {
    "max_labels": ("EVA02AT_MAX_LABELS", 100, "candidate labels per request"),
    "max_texts": ("EVA02AT_MAX_TEXTS", 256, "texts per embedding request"),
    "max_upload_bytes": ("EVA02AT_MAX_UPLOAD_BYTES", 200 * 2**20, "bytes of an uploaded video"),
    "max_frame_pixels": ("EVA02AT_MAX_FRAME_PIXELS", 3840 * 2160, "pixels per video frame (width x height)"),
    "max_seconds": ("EVA02AT_MAX_SECONDS", 600, "seconds of video"),
}
"""name: (environment variable, default, what it bounds). A constructor argument beats the variable. The Gradio app
(`modeling_eva02at.app`) serves under the same limits."""
_BASE64_CHUNK = 4 * 2**20  # characters decoded at a time (a multiple of 4)


def read_limits(**overrides) -> dict[str, int]:
    """The limits: `overrides` (None: unset), else the environment variable, else the default."""
    unknown = sorted(set(overrides) - set(LIMITS))
    if unknown:
        raise TypeError(f"unknown limits {unknown}; the limits are {list(LIMITS)}")
    limits = {}
    for name, (variable, default, _) in LIMITS.items():
        value = overrides.get(name) if overrides.get(name) is not None else os.environ.get(variable, default)
        try:
            limits[name] = int(value)
        except ValueError:
            raise ValueError(f"{variable}={value!r} is not a whole number") from None
    return limits


def check_limit(limits: dict[str, int], name: str, value: float, shown: str | None = None) -> None:
    """ValueError naming the limit and its variable when `value` is over it."""
    if value > limits[name]:
        variable, _, what = LIMITS[name]
        raise ValueError(f"{shown or value} {what}: the limit is {limits[name]} (set by {variable})")


def check_video(video_processor, video: str, limits: dict[str, int], name: str = "the uploaded video") -> None:
    """Refuse a video file over the byte, frame-size or duration limits, from its header, before a frame is decoded
    (the video processor's `probe` also refuses a header that cannot be right)."""
    check_limit(limits, "max_upload_bytes", os.path.getsize(video))
    info = video_processor.probe(video, name=name)
    check_limit(limits, "max_frame_pixels", info.frame_pixels, f"{info.width}x{info.height} = {info.frame_pixels}")
    seconds = info.seconds if info.seconds is not None else info.num_frames / max(info.fps, 1e-9)
    check_limit(limits, "max_seconds", seconds, f"{seconds:.1f}")


class EndpointHandler:
    def __init__(self, path: str = "", **limits):
        self.limits = read_limits(**limits)
        device = 0 if torch.cuda.is_available() else -1
        self.pipeline = pipeline(TASK, model=path or ".", trust_remote_code=True, device=device)
        self.model = self.pipeline.model.eval()
        self.processor = self.pipeline.processor

    def __call__(self, data: dict):
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError(f'the request has no "inputs": {USAGE}')
        inputs, parameters = data["inputs"], data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f'"parameters" must be an object, got {type(parameters).__name__}: {USAGE}')
        if isinstance(inputs, dict):
            if set(inputs) != {"texts"}:
                raise ValueError(f'"inputs" as an object takes exactly one key, "texts", got {sorted(inputs)}')
            return {"embeddings": self.embed_texts(inputs["texts"])}
        return self.classify(inputs, parameters)

    def embed_texts(self, texts) -> list[list[float]]:
        """L2-normalised caption embeddings, one list of floats per text."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError('"texts" must be a non-empty list of non-empty strings')
        check_limit(self.limits, "max_texts", len(texts))
        return self.pipeline.encode_captions(texts).tolist()

    def classify(self, inputs, parameters: dict) -> list[dict]:
        unknown = sorted(set(parameters) - set(CLASSIFICATION_PARAMETERS))
        if unknown:
            raise ValueError(f'unknown "parameters" {unknown}; this endpoint takes {list(CLASSIFICATION_PARAMETERS)}')
        labels = parameters.get("candidate_labels")
        if not labels:
            raise ValueError(f'"parameters" needs a non-empty "candidate_labels" list: {USAGE}')
        if isinstance(labels, list):
            check_limit(self.limits, "max_labels", len(labels))
        with tempfile.TemporaryDirectory(prefix="eva02at-upload-") as folder:
            video = os.path.join(folder, "upload")
            self._write_upload(inputs, video)
            check_video(self.processor.image_processor, video, self.limits)
            try:
                return self.pipeline(video, **parameters)
            except (TypeError, ValueError) as error:  # VideoDecodeError is a ValueError
                raise ValueError(f"cannot classify the video: {error}") from None

    def _write_upload(self, inputs, path: str) -> None:
        """The request's video into the file `path`: raw bytes, or base64 text (optionally a data: URL) decoded a
        chunk at a time, after its size is checked against the limit."""
        if isinstance(inputs, (bytes, bytearray)):
            check_limit(self.limits, "max_upload_bytes", len(inputs))
            if not inputs:
                raise ValueError('"inputs" is empty: send a video')
            with open(path, "wb") as file:
                file.write(inputs)
            return
        if not isinstance(inputs, str):
            raise ValueError(
                f'"inputs" must be a video (bytes or base64 text) or {{"texts": [...]}}, got {type(inputs).__name__}'
            )
        start = inputs.index(",") + 1 if inputs.startswith("data:") and "," in inputs else 0
        check_limit(self.limits, "max_upload_bytes", (len(inputs) - start) * 3 // 4)
        if len(inputs) == start:
            raise ValueError('"inputs" is empty: send a video')
        try:
            with open(path, "wb") as file:
                for first in range(start, len(inputs), _BASE64_CHUNK):
                    file.write(base64.b64decode(inputs[first : first + _BASE64_CHUNK], validate=True))
        except (binascii.Error, ValueError):
            raise ValueError(
                '"inputs" is text but not base64: send the video\'s bytes base64-encoded, or the raw bytes as the '
                "request body"
            ) from None
