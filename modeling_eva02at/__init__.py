"""EVA02-AT for the Hugging Face stack; importing the package registers the classes with the Auto* factories."""

from .configuration_eva02at import Eva02AtConfig, Eva02AtVisionConfig

__all__ = ["Eva02AtConfig", "Eva02AtVisionConfig"]
