"""EVA02-AT for the Hugging Face stack.

The six files at this package's top level are the model itself (configuration, modeling, processing, video
processing and reading) and its zero-shot video classification pipeline: the exact files a Hub repo carries and
`trust_remote_code=True` runs (:data:`REMOTE_CODE_FILES`). The subpackages build on them and never ship to the Hub:
`data` (annotation readers, layouts, datasets), `training` (losses, Trainer), `evaluation` (benchmarks, metrics,
feature cache), `conversion` (checkpoints), `hub` (assembling and pushing a Hub repo), `search` (video indexes),
`app` (the Gradio app and its Space), `demo` (synthetic data) and `utils` (command lines, files, runtime).

Importing the package is cheap (command lines answer `--help` without loading torch). The first access to any of
the classes below imports them and registers them with transformers' Auto* factories, so that folders of model type
"eva02at" load with the package's own classes (no remote code); :func:`register_auto_classes` does the same
explicitly.
"""

import importlib


REMOTE_CODE_FILES = (
    "configuration_eva02at.py",
    "modeling_eva02at.py",
    "processing_eva02at.py",
    "video_processing_eva02at.py",
    "video_reading_eva02at.py",
    "pipeline_eva02at.py",
)
"""The files a Hub repo carries: the only modules at this package's top level. They import only each other (relative
imports), so transformers copies them flat into saved folders, each with the files it imports: a model's
`save_pretrained` copies every one but processing_eva02at.py (the config's save brings the pipeline, see
`Eva02AtConfig.save_pretrained`), the processor's `save_pretrained` that one and the video files."""

_EXPORTS = {
    "Eva02AtConfig": "configuration_eva02at",
    "Eva02AtVisionConfig": "configuration_eva02at",
    "Eva02AtModel": "modeling_eva02at",
    "Eva02AtOutput": "modeling_eva02at",
    "Eva02AtPreTrainedModel": "modeling_eva02at",
    "Eva02AtVisionModel": "modeling_eva02at",
    "Eva02AtProcessor": "processing_eva02at",
    "Eva02AtVideoProcessor": "video_processing_eva02at",
    "VideoDecodeError": "video_reading_eva02at",
    "ZeroShotVideoClassificationPipeline": "pipeline_eva02at",
}
_registered = False


def register_auto_classes() -> None:
    """Register the classes for remote code (`save_pretrained` writes `auto_map` and copies the defining files, and
    a model's config adds `custom_pipelines` and pipeline_eva02at.py), with transformers' Auto* factories (folders of
    model type "eva02at" load without remote code) and the pipeline with transformers' pipeline registry
    (`pipeline("zero-shot-video-classification", model=model, processor=processor)` works in this process with
    objects; a folder's `custom_pipelines` asks for `trust_remote_code=True`). Idempotent."""
    global _registered
    if _registered:
        return
    _registered = True
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor
    from transformers.pipelines import PIPELINE_REGISTRY

    from .configuration_eva02at import Eva02AtConfig, Eva02AtVisionConfig
    from .modeling_eva02at import Eva02AtModel, Eva02AtVisionModel
    from .pipeline_eva02at import TASK, ZeroShotVideoClassificationPipeline
    from .processing_eva02at import Eva02AtProcessor
    from .video_processing_eva02at import Eva02AtVideoProcessor

    Eva02AtConfig.register_for_auto_class()
    Eva02AtModel.register_for_auto_class("AutoModel")
    Eva02AtVideoProcessor.register_for_auto_class("AutoImageProcessor")
    Eva02AtProcessor.register_for_auto_class("AutoProcessor")

    AutoConfig.register("eva02at", Eva02AtConfig, exist_ok=True)
    AutoConfig.register("eva02at_vision_model", Eva02AtVisionConfig, exist_ok=True)
    AutoModel.register(Eva02AtConfig, Eva02AtModel, exist_ok=True)
    AutoModel.register(Eva02AtVisionConfig, Eva02AtVisionModel, exist_ok=True)
    AutoImageProcessor.register(Eva02AtConfig, slow_image_processor_class=Eva02AtVideoProcessor, exist_ok=True)
    AutoProcessor.register(Eva02AtConfig, Eva02AtProcessor, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=ZeroShotVideoClassificationPipeline, pt_model=AutoModel, type="multimodal"
    )


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    register_auto_classes()
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = ["REMOTE_CODE_FILES", "register_auto_classes", *_EXPORTS]
