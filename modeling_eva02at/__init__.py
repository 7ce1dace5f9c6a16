"""EVA02-AT for the Hugging Face stack.

Importing the package registers the classes with transformers' Auto* factories, so that an installed user gets
`AutoModel.from_pretrained("hub_configs/eva02at-b16")` without remote code; Hub users get the same classes through
`auto_map` and the copied `*_eva02at.py` files (`trust_remote_code=True`).
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoProcessor

from .configuration_eva02at import Eva02AtConfig, Eva02AtVisionConfig
from .modeling_eva02at import Eva02AtModel, Eva02AtOutput, Eva02AtPreTrainedModel, Eva02AtVisionModel
from .processing_eva02at import Eva02AtProcessor
from .video_processing_eva02at import Eva02AtVideoProcessor, VideoDecodeError

# Remote-code registration: save_pretrained then writes auto_map entries and copies the defining .py files.
Eva02AtConfig.register_for_auto_class()
Eva02AtModel.register_for_auto_class("AutoModel")
Eva02AtVideoProcessor.register_for_auto_class("AutoImageProcessor")
Eva02AtProcessor.register_for_auto_class("AutoProcessor")

# Local registration: installed users load folders of model_type "eva02at" with the package's own classes.
AutoConfig.register("eva02at", Eva02AtConfig, exist_ok=True)
AutoConfig.register("eva02at_vision_model", Eva02AtVisionConfig, exist_ok=True)
AutoModel.register(Eva02AtConfig, Eva02AtModel, exist_ok=True)
AutoModel.register(Eva02AtVisionConfig, Eva02AtVisionModel, exist_ok=True)
AutoImageProcessor.register(Eva02AtConfig, slow_image_processor_class=Eva02AtVideoProcessor, exist_ok=True)
AutoProcessor.register(Eva02AtConfig, Eva02AtProcessor, exist_ok=True)

__all__ = [
    "Eva02AtConfig",
    "Eva02AtModel",
    "Eva02AtOutput",
    "Eva02AtPreTrainedModel",
    "Eva02AtProcessor",
    "Eva02AtVideoProcessor",
    "Eva02AtVisionConfig",
    "Eva02AtVisionModel",
    "VideoDecodeError",
]
