"""What the app does, without its UI: zero-shot scores through the pipeline, and index search with previews."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile

from ..hub.handler import check_limit, check_video, read_limits


logger = logging.getLogger(__name__)

MAX_EXAMPLES = 12
"""Videos of --examples shown under the upload box."""


class AppBackend:
    """What the app does, without the UI: zero-shot scores through the pipeline, and index search with previews.

    One model serves both tabs. Uploads are bounded as the Endpoints handler bounds them (`limits`: labels, upload
    bytes, pixels per frame, duration; constructor arguments or the EVA02AT_MAX_* variables of
    `modeling_eva02at.hub.handler.LIMITS`). Errors are ValueErrors with a message for the user (the UI shows them),
    naming files by their base names. Previews are written atomically into one temporary folder, removed with the
    backend (or when the process exits).
    """

    def __init__(self, model, processor, model_id, index=None, **limits):
        from transformers import pipeline

        from ..pipeline_eva02at import TASK

        self.model, self.processor, self.model_id, self.index = model, processor, model_id, index
        self.limits = read_limits(**limits)
        # load_model_for_inference registered the task with transformers' pipeline registry.
        self.classifier = pipeline(TASK, model=model, processor=processor, device=model.device)
        # One folder for every preview, removed with the backend or when the process exits.
        self._previews = tempfile.TemporaryDirectory(prefix="eva02at-previews-")
        self.preview_dir = self._previews.name

    @classmethod
    def load(
        cls,
        model_path: str,
        processor_path: str | None = None,
        index_path: str | None = None,
        device=None,
        dtype: str = "auto",
    ):
        """The model in the dtype `dtype` resolves to (`resolve_dtype`: auto is bfloat16 on hardware that computes it
        natively), its processor, and the index checked against it."""
        from ..evaluation.encoding import load_model_for_inference
        from ..evaluation.fingerprint import model_fingerprint
        from ..search.store import VideoIndex
        from ..utils.runtime import resolve_device, resolve_dtype

        index = VideoIndex.load(index_path) if index_path else None
        device = resolve_device(device)
        torch_dtype, reason = resolve_dtype(dtype, device)
        print(f"The app computes in {reason}")
        model, processor = load_model_for_inference(
            model_path, processor_path=processor_path, device=device, dtype=torch_dtype
        )
        model_id = model_fingerprint(model_path, processor_path)
        if index is not None:
            # Fail at start-up, not at the first query, when the index is another model's.
            index.check_model(model_id, what="the app's --model")
        return cls(model, processor, model_id, index)

    def classify(self, video, labels: str, template: str) -> list[dict]:
        """`[{"label", "score"}]` sorted by score, for the comma-separated `labels`."""
        if not video:
            raise ValueError("upload a video or pick an example first")
        candidate_labels = [label.strip() for label in (labels or "").split(",") if label.strip()]
        if not candidate_labels:
            raise ValueError("type at least one label; separate labels with commas, e.g. 'cut onion, wash pan'")
        check_limit(self.limits, "max_labels", len(candidate_labels))
        name = repr(os.path.basename(video))
        check_video(self.processor.image_processor, video, self.limits, name=name)
        return self.classifier(video, candidate_labels=candidate_labels, hypothesis_template=template or "{}")

    def example_videos(self, folder: str | None) -> list[str]:
        """The first `MAX_EXAMPLES` videos of `folder` that the app would accept as uploads; each file it would
        refuse (unreadable, over a limit) is skipped with a message naming it."""
        if not folder:
            return []
        from ..search.sources import VideoFolder

        examples = []
        for path in VideoFolder(folder).video_paths():
            try:
                check_video(self.processor.image_processor, path, self.limits, name=repr(os.path.basename(path)))
            except (OSError, ValueError) as error:
                logger.warning(f"--examples: skipping {os.path.basename(path)}: {error}")
                continue
            examples.append(path)
            if len(examples) == MAX_EXAMPLES:
                break
        return examples

    def search(self, query: str, top_k: int) -> list[tuple]:
        """`(hit, preview mp4 path)` of the `top_k` best clips of the index for `query`."""
        from ..search.build import search_index
        from ..search.preview import write_preview
        from ..utils.files import atomic_path

        if self.index is None:
            raise ValueError("no index loaded: start the app with --index (made by examples/index_videos.py)")
        if not (query or "").strip():
            raise ValueError("type what you are looking for, e.g. 'cut an onion'")
        hits = search_index(self.index, self.model, self.processor, [query], model_id=self.model_id, top_k=int(top_k))[
            0
        ]
        results = []
        for hit in hits:
            key = hashlib.sha1(f"{hit.path}|{hit.start}|{hit.end}".encode()).hexdigest()[:16]
            preview = os.path.join(self.preview_dir, f"clip-{key}.mp4")
            if not os.path.isfile(preview):
                with atomic_path(preview, prefix=".clip-") as partial:
                    write_preview(self.processor.image_processor, hit.path, hit.start, hit.end, partial)
            results.append((hit, preview))
        return results


__all__ = ["AppBackend", "MAX_EXAMPLES"]
