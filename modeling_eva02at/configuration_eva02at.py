"""EVA02-AT configuration: an EVA02 video tower with spatial-temporal RoPE and a CLIP text tower."""

import copy
import math

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, PreTrainedConfig


@strict
class Eva02AtVisionConfig(PreTrainedConfig):
    r"""
    The EVA02 ViT video tower (docs/architecture.md). Defaults are EVA02-AT-B/16.

    num_frames: frames the temporal embedding is trained for; other counts interpolate it.
    max_num_frames: hard limit on frames at inference (the token count grows as 1 + T * P).
    rope_theta / rope_ref_grid: EVA02's 2D RoPE base and the reference grid positions are rescaled to.
    use_temporal_rope / use_temporal_embedding: the two sources of temporal order, each removable for an ablation
        (the paper's model keeps both). With neither, the tokens are a set over frames: a clip and its time reversal
        get the same embedding.
    """

    model_type = "eva02at_vision_model"
    base_config_key = "vision_config"

    hidden_size: int = 768
    intermediate_size: int = 2048
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    num_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 16
    max_num_frames: int = 64
    layer_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_ref_grid: int = 16
    use_temporal_rope: bool = True
    use_temporal_embedding: bool = True
    attention_dropout: float = 0.0
    initializer_range: float = 0.02

    def validate_architecture(self):
        """Run when the config is built or saved, and by the models' __init__ (a config edited after loading)."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        head_dim = self.hidden_size // self.num_attention_heads
        if head_dim % 4:
            raise ValueError(
                f"the head dimension hidden_size / num_attention_heads = {self.hidden_size} / "
                f"{self.num_attention_heads} = {head_dim} must be a multiple of 4: ST-RoPE rotates channel pairs, "
                "a quarter of the channels by the row angle and a quarter by the column angle (docs/architecture.md)"
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if not 1 <= self.num_frames <= self.max_num_frames:
            raise ValueError(f"num_frames ({self.num_frames}) must be in [1, max_num_frames={self.max_num_frames}]")


@strict
class Eva02AtConfig(PreTrainedConfig):
    r"""
    EVA02-AT dual encoder. `text_config` is transformers' `CLIPTextConfig` (EVA02-CLIP's text tower uses exact GELU).

    projection_dim: size of the shared embedding space (256 for EVA02-AT, 512/768 for EVA02-CLIP). `text_config` is
        kept at the same `projection_dim`: CLIPTextConfig has one of its own (512 by default), which nothing reads
        (the text projection is this model's), so config.json would otherwise show two sizes.
    logit_scale_init_value: ln(1/0.07) as in CLIP; the paper's pretraining uses temperature 0.05 (ln 20).
    logit_scale_max: the upper clamp of `logit_scale` (a log): ln 100 as in CLIP, a multiplier of at most 100.
    freeze_logit_scale: keep the logit scale fixed (fine-tuning with margin losses).
    """

    model_type = "eva02at"
    sub_configs_defaults = {"vision_config": Eva02AtVisionConfig, "text_config": CLIPTextConfig}

    vision_config: dict | Eva02AtVisionConfig | None = None
    text_config: dict | CLIPTextConfig | None = None
    projection_dim: int = 256
    logit_scale_init_value: float = math.log(1 / 0.07)
    logit_scale_max: float = math.log(100.0)
    freeze_logit_scale: bool = False

    def __post_init__(self, **kwargs):
        if self.vision_config is None:
            self.vision_config = Eva02AtVisionConfig()
        elif isinstance(self.vision_config, dict):
            self.vision_config = Eva02AtVisionConfig(**self.vision_config)
        if self.text_config is None:
            self.text_config = CLIPTextConfig(hidden_act="gelu")
        elif isinstance(self.text_config, dict):
            self.text_config = CLIPTextConfig(**{"hidden_act": "gelu", **self.text_config})
        self.text_config.projection_dim = self.projection_dim
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Run when the config is built or saved, and by the models' __init__; names the sub-config at fault."""
        super().validate_architecture()
        for name in ("vision_config", "text_config"):
            try:
                getattr(self, name).validate_architecture()
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None

    def to_dict(self) -> dict:
        output = super().to_dict()
        # Also after `config.projection_dim = n` on a built config: the text tower's copy is written equal to it.
        output["text_config"]["projection_dim"] = self.projection_dim
        return output

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        """Save config.json. When the class is registered for remote code (the package's `register_auto_classes()`,
        or loaded with `trust_remote_code=True`), the folder is also pipeline-ready: config.json names the pipeline
        in `custom_pipelines`, and transformers copies pipeline_eva02at.py with this file (below), so that
        `pipeline(model=folder, trust_remote_code=True)` works with no task named. A model's `save_pretrained` (and
        with it the Trainer's saves and checkpoints, the converter and the Hub assembly) saves its config here."""
        if self._auto_class is not None:
            # A relative import of this file: transformers copies the files a remote-code file imports relatively
            # wherever it copies the file (`custom_object_save`), and fetches them with it from a Hub repo, so
            # pipeline_eva02at.py and the files it imports travel with the config, in a repo of the package's and
            # in one saved from remote code alike.
            from .pipeline_eva02at import CUSTOM_PIPELINES

            self.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)


__all__ = ["Eva02AtConfig", "Eva02AtVisionConfig"]
