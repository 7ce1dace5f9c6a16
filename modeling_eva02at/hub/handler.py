"""
Inference Endpoints handler for an EVA02-AT repo (copied as `handler.py` to the root of every assembled repo).

Inference Endpoints imports `EndpointHandler` from the repo's `handler.py`, builds it once with the repository
folder and calls it with each request's JSON (binary bodies arrive as bytes in "inputs"):

- zero-shot classification of a video:
  `{"inputs": <video bytes, or base64 text>, "parameters": {"candidate_labels": [...], "hypothesis_template": ...,
  "start": ..., "end": ...}}` -> `[{"label": ..., "score": ...}, ...]`, sorted by decreasing score;
- caption embeddings (L2-normalised, for retrieval against video embeddings):
  `{"inputs": {"texts": [...]}}` -> `{"embeddings": [[...], ...]}`.

Bad requests raise `ValueError` with a message that says what to send; the endpoint returns it to the client as
JSON. The model and pipeline load through `trust_remote_code` from the repo's own files, so this runs with
transformers, torch and a video decoder (decord or av) installed, nothing else.
"""

import base64
import binascii

import torch
import torch.nn.functional as F
from transformers import pipeline


TASK = "zero-shot-video-classification"
CLASSIFICATION_PARAMETERS = ("candidate_labels", "hypothesis_template", "start", "end")
USAGE = (
    'send {"inputs": <video bytes or base64>, "parameters": {"candidate_labels": ["label", ...]}} to classify a '
    'video, or {"inputs": {"texts": ["caption", ...]}} for caption embeddings'
)


class EndpointHandler:
    def __init__(self, path: str = ""):
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
        return self.classify(self._video_bytes(inputs), parameters)

    def embed_texts(self, texts) -> list[list[float]]:
        """L2-normalised caption embeddings, one list of floats per text."""
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ValueError('"texts" must be a non-empty list of non-empty strings')
        tokens = self.processor(text=texts, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            embeds = self.model.get_text_features(tokens["input_ids"], tokens["attention_mask"]).pooler_output
        return F.normalize(embeds.float(), dim=-1).tolist()

    def classify(self, video: bytes, parameters: dict) -> list[dict]:
        unknown = sorted(set(parameters) - set(CLASSIFICATION_PARAMETERS))
        if unknown:
            raise ValueError(f'unknown "parameters" {unknown}; this endpoint takes {list(CLASSIFICATION_PARAMETERS)}')
        if not parameters.get("candidate_labels"):
            raise ValueError(f'"parameters" needs a non-empty "candidate_labels" list: {USAGE}')
        try:
            return self.pipeline(video, **parameters)
        except (TypeError, ValueError) as error:  # VideoDecodeError is a ValueError
            raise ValueError(f"cannot classify the video: {error}") from None

    @staticmethod
    def _video_bytes(inputs) -> bytes:
        """The request's video: raw bytes, or base64 text (optionally a data: URL)."""
        if isinstance(inputs, (bytes, bytearray)):
            data = bytes(inputs)
        elif isinstance(inputs, str):
            text = inputs.split(",", 1)[1] if inputs.startswith("data:") else inputs
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError(
                    '"inputs" is text but not base64: send the video\'s bytes base64-encoded, or the '
                    "raw bytes as the request body"
                ) from None
        else:
            raise ValueError(
                f'"inputs" must be a video (bytes or base64 text) or {{"texts": [...]}}, got {type(inputs).__name__}'
            )
        if not data:
            raise ValueError('"inputs" is empty: send a video')
        return data
