"""EVA02-AT: an EVA02 ViT video tower with spatial-temporal RoPE and a CLIP text tower (arXiv 2506.14356).

The video tower embeds every frame with a shared patch convolution, adds learnable spatial and temporal
position embeddings, and runs EVA02 blocks with joint space-time attention over all 1 + T * P tokens. Query
and key channels are rotated in adjacent pairs by one angle per pair, the sum of EVA02's 2D (row, column)
angle and a 1D temporal angle over the whole head dimension (the paper's R(xy+t) = R(xy) R(t)).
"""

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs, can_return_tuple
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_eva02at import Eva02AtConfig, Eva02AtVisionConfig


PROCESSOR_HINT = (
    "prepare the inputs with the model's processor: Eva02AtProcessor, or "
    "AutoProcessor.from_pretrained(<model folder>, trust_remote_code=True)"
)


# ---------------------------------------------------------------------------------------------------------------------
# Spatial-temporal rotary position embedding (docs/architecture.md)
# ---------------------------------------------------------------------------------------------------------------------


def st_rope_angles(
    num_frames: int,
    grid_size: tuple[int, int],
    head_dim: int,
    theta: float = 10000.0,
    ref_grid: int = 16,
    temporal: bool = True,
) -> torch.Tensor:
    """Rotation angle of every channel pair of every patch token, float32 of shape (T * gh * gw, head_dim // 2).

    Tokens are frame-major (t, h, w). Pairs [0, d/4) carry the row and [d/4, d/2) the column, with EVA02's bands
    theta^(-j / (d/4)) on positions rescaled to a `ref_grid` reference grid; every pair also carries the frame index
    times theta^(-2i / d), the 1D RoPE frequency of pair i over the whole head dimension.
    """
    grid_h, grid_w = grid_size
    quarter = head_dim // 4
    bands = theta ** (-torch.arange(quarter, dtype=torch.float64) / quarter)
    rows = torch.arange(grid_h, dtype=torch.float64) * (ref_grid / grid_h)
    cols = torch.arange(grid_w, dtype=torch.float64) * (ref_grid / grid_w)
    row_angles = (rows[:, None] * bands)[:, None, :].expand(grid_h, grid_w, quarter)
    col_angles = (cols[:, None] * bands)[None, :, :].expand(grid_h, grid_w, quarter)
    spatial = torch.cat((row_angles, col_angles), dim=-1).reshape(1, grid_h * grid_w, 2 * quarter)

    frames = torch.arange(num_frames, dtype=torch.float64)
    if not temporal:
        frames = torch.zeros_like(frames)
    time_freqs = theta ** (-2 * torch.arange(head_dim // 2, dtype=torch.float64) / head_dim)
    temporal_angles = (frames[:, None] * time_freqs)[:, None, :]

    return (spatial + temporal_angles).reshape(num_frames * grid_h * grid_w, head_dim // 2).float()


def st_rope_tables(angles: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """(cos phi, sin phi) of every angle, float32 of shape (num_prefix_tokens + L, head_dim // 2, 2).

    Prefix (cls) rows get angle 0, i.e. exactly (1, 0): the rotation is then the identity, so q and k of all tokens
    are rotated in one pass without slicing off the cls token.
    """
    angles = F.pad(angles, (0, 0, num_prefix_tokens, 0))
    return torch.stack((angles.cos(), angles.sin()), dim=-1)


class RopeTables(NamedTuple):
    """`apply_rotary`'s tables for L tokens, broadcasting over the heads of q / k laid out (B, L, H, d)."""

    cos: torch.Tensor
    """(L, 1, d): (cos phi_i, cos phi_i) on the channels (2i, 2i + 1) of pair i, in the activations' dtype."""
    sin: torch.Tensor
    """(L, 1, d): the signed sines (-sin phi_i, sin phi_i), in the activations' dtype."""
    polar: torch.Tensor | None = None
    """(L, 1, d / 2) complex64 cos phi_i + i sin phi_i, for float32 activations (None otherwise)."""


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, polar: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate adjacent channel pairs (a, b) = (x[2i], x[2i+1]) of x (..., L, H, d) by the angles phi of the tables:
    (a, b) -> (a cos - b sin, a sin + b cos), the rotation of docs/architecture.md (EVA02's interleaved pair layout,
    not the split-halves one of many language models). The tables (:class:`RopeTables`) must have x's dtype, in which
    the whole rotation is computed (bf16 stays bf16).

    Two evaluations of the same rotation: eager float32 with `polar` reads each pair as one complex number and
    multiplies (one pass over memory, forward and backward; 4-7x faster on CPU than any real evaluation); otherwise,
    in 16 bits and under torch.compile (inductor leaves complex multiplies to eager kernels and fuses this one),
    x * cos + (b, a) * sin in real arithmetic.
    """
    if polar is not None and x.dtype == torch.float32 and not torch.compiler.is_compiling():
        return torch.view_as_real(torch.view_as_complex(x.unflatten(-1, (-1, 2))) * polar).flatten(-2)
    return (x * cos).addcmul_(x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2), sin)


class Eva02AtRotaryEmbedding(nn.Module):
    """Rotation tables of the spatial-temporal RoPE for a (frames, grid), in the dtype of the activations they rotate.

    The exact float32 (cos, sin) table for the configured frame count and image size is the non-persistent buffer
    `cos_sin` of shape (1 + T * P, head_dim / 2, 2), rebuilt by `_init_weights` and moved by `.to(device)`. Every other
    shape, and the default one once the model was cast to half precision (which casts the buffer too), is computed
    exactly in float32 on first use. Either way the tables are cast to the activations' dtype only at the end, and the
    results are kept in a least-recently-used cache of at most `max_cached_tables` entries keyed by (frames, grid_h,
    grid_w, device, dtype), so that a stream of varying input sizes cannot grow memory without bound.
    """

    max_cached_tables = 8

    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        grid = config.image_size // config.patch_size
        self.default_key = (config.num_frames, grid, grid)
        self.register_buffer("cos_sin", self.compute_tables(*self.default_key), persistent=False)
        self._cache: OrderedDict[tuple, RopeTables] = OrderedDict()

    def compute_tables(self, num_frames: int, grid_h: int, grid_w: int) -> torch.Tensor:
        """The exact float32 (cos, sin) table of `st_rope_tables` for this (frames, grid), cls row first."""
        angles = st_rope_angles(
            num_frames,
            (grid_h, grid_w),
            self.head_dim,
            theta=self.config.rope_theta,
            ref_grid=self.config.rope_ref_grid,
            temporal=self.config.use_temporal_rope,
        )
        return st_rope_tables(angles, num_prefix_tokens=1)

    def clear_cache(self) -> None:
        """Forget every cached table: they derive from the buffer, which `_init_weights` rewrites."""
        self._cache.clear()

    def forward(
        self, num_frames: int, grid_h: int, grid_w: int, device: torch.device, dtype: torch.dtype
    ) -> RopeTables:
        """`apply_rotary`'s tables for 1 + T * gh * gw tokens, in `dtype` on `device`."""
        key = (num_frames, grid_h, grid_w, device, dtype)
        tables = self._cache.pop(key, None)
        if tables is None:
            # Made outside inference mode even under it: an inference tensor cached by a zero-shot evaluation could
            # not be saved for backward by the training forward that reuses it.
            with torch.inference_mode(False):
                if (num_frames, grid_h, grid_w) == self.default_key and self.cos_sin.dtype == torch.float32:
                    exact = self.cos_sin
                else:
                    exact = self.compute_tables(num_frames, grid_h, grid_w)
                cos, sin = exact.to(device).unbind(-1)
                signed_sin = torch.stack((-sin, sin), dim=-1).flatten(-2)
                tables = RopeTables(
                    cos.repeat_interleave(2, dim=-1)[:, None].to(dtype),
                    signed_sin[:, None].to(dtype),
                    # (not traced into a compiled graph, whose rotation is the real one)
                    torch.complex(cos, sin)[:, None]
                    if dtype == torch.float32 and not torch.compiler.is_compiling()
                    else None,
                )
        self._cache[key] = tables  # (re)inserted last: the most recently used
        if len(self._cache) > self.max_cached_tables:
            self._cache.popitem(last=False)
        return tables


# ---------------------------------------------------------------------------------------------------------------------
# Video tower
# ---------------------------------------------------------------------------------------------------------------------


def interpolate_temporal_embed(temporal_embed: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(T, D) temporal embeddings linearly interpolated along time to (num_frames, D) (align_corners=False).

    Used at inference for frame counts other than the configured one, and by checkpoint conversion, so that both
    see the same embedding.
    """
    if num_frames == temporal_embed.shape[0]:
        return temporal_embed
    return F.interpolate(temporal_embed.T[None], size=num_frames, mode="linear", align_corners=False)[0].T


class Eva02AtVideoEmbeddings(nn.Module):
    """Per-frame patch embedding, cls token, and learnable spatial (pos_embed) + temporal position embeddings."""

    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__()
        self.config = config
        self.grid_size = config.image_size // config.patch_size
        self.num_patches = self.grid_size**2
        self.patch_embedding = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        self.cls_token = nn.Parameter(torch.empty(1, 1, config.hidden_size))
        self.pos_embed = nn.Parameter(torch.empty(1 + self.num_patches, config.hidden_size))
        if config.use_temporal_embedding:
            self.temporal_embed = nn.Parameter(torch.empty(config.num_frames, config.hidden_size))
        else:
            self.register_parameter("temporal_embed", None)

    def temporal_embedding(self, num_frames: int) -> torch.Tensor | None:
        """(num_frames, D), or None when the config leaves the temporal embedding out."""
        if self.temporal_embed is None:
            return None
        return interpolate_temporal_embed(self.temporal_embed, num_frames)

    def resize_num_frames(self, num_frames: int) -> None:
        """Make `num_frames` the trained frame count: the temporal embedding is interpolated to it (as at inference)."""
        if self.temporal_embed is not None:
            with torch.no_grad():
                resized = interpolate_temporal_embed(self.temporal_embed, num_frames).contiguous()
            self.temporal_embed = nn.Parameter(resized, requires_grad=self.temporal_embed.requires_grad)

    def spatial_embedding(self, grid_h: int, grid_w: int, interpolate_pos_encoding: bool) -> torch.Tensor:
        patch_pos = self.pos_embed[1:]
        if (grid_h, grid_w) == (self.grid_size, self.grid_size):
            return patch_pos
        if not interpolate_pos_encoding:
            size = self.config.image_size
            raise ValueError(
                f"pixel_values_videos has frames of {grid_h * self.config.patch_size}x{grid_w * self.config.patch_size}"
                f" pixels but the model was configured for {size}x{size}; pass interpolate_pos_encoding=True to "
                "resample the spatial position embedding"
            )
        grid = patch_pos.reshape(1, self.grid_size, self.grid_size, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(grid_h * grid_w, -1)

    def forward(self, pixel_values_videos: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        batch_size, num_frames = pixel_values_videos.shape[:2]
        frames = pixel_values_videos.flatten(0, 1).to(self.patch_embedding.weight.dtype)
        patches = self.patch_embedding(frames)  # (B*T, D, gh, gw)
        grid_h, grid_w = patches.shape[-2:]
        patches = patches.flatten(2).transpose(1, 2)  # (B*T, gh*gw, D), row-major within a frame

        position = self.spatial_embedding(grid_h, grid_w, interpolate_pos_encoding)[None, :, :]
        if (temporal := self.temporal_embedding(num_frames)) is not None:
            position = position + temporal[:, None, :]  # (T, P, D)
        patches = patches.unflatten(0, (batch_size, num_frames)) + position
        patches = patches.flatten(1, 2)  # frame-major (t, h, w) tokens

        cls = (self.cls_token + self.pos_embed[:1]).expand(batch_size, -1, -1)
        return torch.cat((cls, patches), dim=1)


def attention_probabilities(
    query: torch.Tensor, key: torch.Tensor, attention_mask: torch.Tensor | None, scaling: float
) -> torch.Tensor:
    """softmax(q k^T * scaling + mask) over the keys, in float32 and returned in q's dtype: the weights eager attention
    (ours and transformers' CLIP one) records, before dropout. q, k (B, H, L, d); an additive mask broadcasts."""
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    return F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    weights = attention_probabilities(query, key, attention_mask, scaling)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class Eva02AtAttention(nn.Module):
    """Joint space-time attention: q / v with bias, k without, ST-RoPE on q and k, inner LayerNorm before out_proj."""

    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__()
        self.config = config
        self.embed_dim = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.embed_dim // self.num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.q_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=True)
        self.k_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=False)
        self.v_proj = nn.Linear(self.embed_dim, self.embed_dim, bias=True)
        self.inner_norm = nn.LayerNorm(self.embed_dim, eps=config.layer_norm_eps)
        self.out_proj = nn.Linear(self.embed_dim, self.embed_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        rope: RopeTables,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        heads_shape = (*hidden_states.shape[:-1], self.num_heads, self.head_dim)  # (B, L, H, d)
        query = apply_rotary(self.q_proj(hidden_states).view(heads_shape), *rope).transpose(1, 2)
        key = apply_rotary(self.k_proj(hidden_states).view(heads_shape), *rope).transpose(1, 2)
        value = self.v_proj(hidden_states).view(heads_shape).transpose(1, 2)

        if kwargs.get("output_attentions", self.config.output_attentions):
            # Only the eager computation materialises the weights (sdpa and flash attention return None): fall back to
            # it for this call rather than record empty attentions.
            attention_interface: Callable = eager_attention_forward
        else:
            attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
                self.config._attn_implementation, eager_attention_forward
            )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            scaling=self.scaling,
            dropout=self.config.attention_dropout if self.training else 0.0,
            **kwargs,
        )
        output = output.reshape(*hidden_states.shape[:-1], self.embed_dim)
        return self.out_proj(self.inner_norm(output)), weights


class Eva02AtSwiGLU(nn.Module):
    """fc2(LN(SiLU(fc1_g(x)) * fc1_x(x))): EVA02's SwiGLU with a sub-LayerNorm on the hidden units."""

    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__()
        self.fc1_g = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc1_x = nn.Linear(config.hidden_size, config.intermediate_size)
        self.norm = nn.LayerNorm(config.intermediate_size, eps=config.layer_norm_eps)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate = F.silu(self.fc1_g(hidden_states))
        return self.fc2(self.norm(gate.mul_(self.fc1_x(hidden_states))))


class Eva02AtEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm EVA02 block without layer scale: x + Attn(LN1(x)), then x + MLP(LN2(x))."""

    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = Eva02AtAttention(config)
        self.layer_norm2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = Eva02AtSwiGLU(config)

    def forward(
        self, hidden_states: torch.Tensor, rope: RopeTables, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(self.layer_norm1(hidden_states), rope, **kwargs)
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.layer_norm2(hidden_states))


class Eva02AtEncoder(nn.Module):
    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList([Eva02AtEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(
        self, inputs_embeds: torch.Tensor, rope: RopeTables, **kwargs: Unpack[TransformersKwargs]
    ) -> BaseModelOutput:
        hidden_states = inputs_embeds
        for layer in self.layers:
            hidden_states = layer(hidden_states, rope, **kwargs)
        return BaseModelOutput(last_hidden_state=hidden_states)


class Eva02AtPreTrainedModel(PreTrainedModel):
    config: Eva02AtConfig
    base_model_prefix = "eva02at"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["Eva02AtEncoderLayer", "Eva02AtVideoEmbeddings", "CLIPEncoderLayer", "CLIPTextEmbeddings"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": Eva02AtEncoderLayer, "attentions": Eva02AtAttention}

    def __init__(self, config: Eva02AtConfig | Eva02AtVisionConfig, *inputs, **kwargs):
        # A config is validated when it is built, not when its fields are edited afterwards: check it again before it
        # builds a model that would fail deep in forward (and save a folder that does not load).
        config.validate_architecture()
        super().__init__(config, *inputs, **kwargs)

    def _init_weights(self, module: nn.Module):
        """EVA02's init: truncated normal (std initializer_range) for weights and embeddings, zero biases."""
        config = self.config
        std = getattr(config, "initializer_range", None) or config.vision_config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, Eva02AtVideoEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.pos_embed, std=std)
            if module.temporal_embed is not None:
                init.trunc_normal_(module.temporal_embed, std=std)
        elif isinstance(module, Eva02AtRotaryEmbedding):
            init.copy_(module.cos_sin, module.compute_tables(*module.default_key))
            module.clear_cache()
        elif isinstance(module, Eva02AtModel):
            init.constant_(module.logit_scale, config.logit_scale_init_value)


def _check_pixel_values_videos(pixel_values_videos: torch.Tensor, config: Eva02AtVisionConfig) -> None:
    """Clear errors for the videos users get wrong, before they become reshape errors or silently wrong embeddings
    deep inside the model. Reads only the tensor's metadata."""
    expected = (
        f"(batch, frames, {config.num_channels}, height, width) with height and width multiples of {config.patch_size}"
    )
    if not isinstance(pixel_values_videos, torch.Tensor):
        raise TypeError(
            f"pixel_values_videos must be a float torch.Tensor of shape {expected}, got "
            f"{type(pixel_values_videos).__name__}; {PROCESSOR_HINT}"
        )
    if not pixel_values_videos.is_floating_point():
        raise TypeError(
            f"pixel_values_videos has dtype {pixel_values_videos.dtype}, but the model takes normalised float frames, "
            f"not raw pixel values; {PROCESSOR_HINT} (it resizes, crops and normalises the frames)"
        )
    if pixel_values_videos.dim() != 5:
        hint = " (for images, add a frame axis: pixel_values.unsqueeze(1))" if pixel_values_videos.dim() == 4 else ""
        raise ValueError(
            f"pixel_values_videos must have shape {expected}, got {tuple(pixel_values_videos.shape)}{hint}"
        )
    _, frames, channels, height, width = pixel_values_videos.shape
    if channels != config.num_channels:
        raise ValueError(
            f"pixel_values_videos has {channels} channels at dim 2, expected shape {expected}, "
            f"got {tuple(pixel_values_videos.shape)}"
        )
    if height % config.patch_size or width % config.patch_size or height == 0 or width == 0:
        raise ValueError(f"pixel_values_videos must have shape {expected}, got {tuple(pixel_values_videos.shape)}")
    if not 1 <= frames <= config.max_num_frames:
        raise ValueError(
            f"pixel_values_videos has {frames} frames; this model accepts 1 to max_num_frames={config.max_num_frames}"
        )


def _check_input_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    """Clear errors for token ids of the wrong type or shape, which the CLIP text tower would fail on with an
    AttributeError or a reshape error. Reads only metadata: ids outside the vocabulary are caught where the embedding
    lookup fails (`_out_of_vocabulary_error`)."""
    if not isinstance(input_ids, torch.Tensor):
        got = type(input_ids).__name__
        if isinstance(input_ids, (list, tuple)) and input_ids and isinstance(input_ids[0], str):
            got += " of strings (text must be tokenised first)"
        elif isinstance(input_ids, (list, tuple)):
            got += " (torch.tensor(input_ids) converts lists of token ids)"
        raise TypeError(
            f"input_ids must be a torch.Tensor of token ids of shape (batch, sequence), got {got}; {PROCESSOR_HINT}"
        )
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(
            f"input_ids must hold integer token ids (torch.long), got dtype {input_ids.dtype}; {PROCESSOR_HINT}"
        )
    if input_ids.dim() != 2 or input_ids.shape[1] == 0:
        hint = " (for one text, add a batch axis: input_ids[None])" if input_ids.dim() == 1 else ""
        raise ValueError(f"input_ids must have shape (batch, sequence), got {tuple(input_ids.shape)}{hint}")
    if attention_mask is not None and (
        not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape
    ):
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must be a tensor of input_ids' shape {tuple(input_ids.shape)}, got {got}")


def _out_of_vocabulary_error(input_ids: torch.Tensor, config: CLIPTextConfig) -> ValueError | None:
    """The clear error for token ids outside the text tower's vocabulary, or None if every id is inside it. Reads the
    ids on the host: called only after the embedding lookup failed, never on the normal path."""
    low, high = torch.stack(torch.aminmax(input_ids)).tolist()
    if low >= 0 and high < config.vocab_size:
        return None
    return ValueError(
        f"input_ids holds token id {low if low < 0 else high}, outside the text tower's vocabulary "
        f"(text_config.vocab_size={config.vocab_size}: ids 0 to {config.vocab_size - 1}); {PROCESSOR_HINT}"
    )


def _select_hidden_states(hidden_states: tuple, requested: bool | int | list[int] | None) -> tuple | None:
    """All of a call's `hidden_states` reduced to what `output_hidden_states=requested` returns: none, all, or for
    indices (negative ones counting from the end) the selected states with None in the other places."""
    if not requested:
        return None
    if requested is True:
        return hidden_states
    count = len(hidden_states)
    indices = [requested] if isinstance(requested, int) else requested
    selected = {index % count for index in indices if -count <= index < count}
    return tuple(state if index in selected else None for index, state in enumerate(hidden_states))


def _causal_text_mask(attention_mask: torch.Tensor | None, seq_length: int, like: torch.Tensor) -> torch.Tensor:
    """The CLIP text tower's additive attention mask, (batch or 1, 1, seq, seq) in `like`'s dtype and device: 0 where
    a token may attend (itself and earlier tokens that are not padding), the dtype's minimum elsewhere. The values of
    transformers' eager mask, built without reading any tensor value on the host."""
    allowed = torch.ones(seq_length, seq_length, dtype=torch.bool, device=like.device).tril()[None, None]
    if attention_mask is not None:
        allowed = allowed & attention_mask.to(device=like.device, dtype=torch.bool)[:, None, None, :]
    return torch.where(allowed, torch.zeros((), dtype=like.dtype, device=like.device), torch.finfo(like.dtype).min)


class Eva02AtVisionModel(Eva02AtPreTrainedModel):
    """The EVA02 video tower: returns all final-normed tokens and the pooled cls token (before projection)."""

    config: Eva02AtVisionConfig
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)

    def __init__(self, config: Eva02AtVisionConfig):
        super().__init__(config)
        self.embeddings = Eva02AtVideoEmbeddings(config)
        self.rotary_emb = Eva02AtRotaryEmbedding(config)
        self.encoder = Eva02AtEncoder(config)
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def resize_num_frames(self, num_frames: int) -> None:
        """Make `num_frames` the frame count the model trains and saves at (e.g. a 4-frame pretrained model fine-tuned
        at 16): the temporal embedding is linearly interpolated to it, exactly as a forward at that count would, and
        the default RoPE table is rebuilt. `config.num_frames` (and `max_num_frames` if needed) follow."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        self.config.num_frames = num_frames
        self.config.max_num_frames = max(self.config.max_num_frames, num_frames)
        self.embeddings.resize_num_frames(num_frames)
        device = self.embeddings.patch_embedding.weight.device
        self.rotary_emb = Eva02AtRotaryEmbedding(self.config).to(device)

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values_videos: torch.Tensor,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(batch, frames, channels, height, width)`):
            Normalised frames. Any frame count up to `config.max_num_frames`; one frame is an image.

        `output_attentions=True` computes this call's attention in eager mode whatever the attention implementation.
        """
        _check_pixel_values_videos(pixel_values_videos, self.config)
        num_frames, height, width = pixel_values_videos.shape[1], *pixel_values_videos.shape[-2:]
        hidden_states = self.embeddings(pixel_values_videos, interpolate_pos_encoding=interpolate_pos_encoding)
        patch = self.config.patch_size
        # q and k come out of Linear layers: in the autocast dtype under autocast, else in the hidden states' dtype.
        device_type = hidden_states.device.type
        if torch.is_autocast_enabled(device_type):
            dtype = torch.get_autocast_dtype(device_type)
        else:
            dtype = hidden_states.dtype
        rope = self.rotary_emb(num_frames, height // patch, width // patch, hidden_states.device, dtype)
        encoder_outputs = self.encoder(hidden_states, rope, **kwargs)
        last_hidden_state = self.post_layernorm(encoder_outputs.last_hidden_state)
        return BaseModelOutputWithPooling(last_hidden_state=last_hidden_state, pooler_output=last_hidden_state[:, 0])


# ---------------------------------------------------------------------------------------------------------------------
# Dual encoder
# ---------------------------------------------------------------------------------------------------------------------


def contrastive_loss(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of paired square logits (as CLIP): the mean of the cross-entropies of the rows and of the
    columns, the target of row / column `a` being `a`. The orientation of `logits` does not matter."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


@dataclass
class Eva02AtOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `return_loss=True`):
        Bidirectional InfoNCE over the batch's video-text pairs.
    logits_per_video (`torch.FloatTensor` of shape `(video_batch_size, text_batch_size)`):
        Video rows: entry (i, j) is video i's scaled cosine similarity to text j,
        `model.scale() * video_embeds @ text_embeds.T`.
    logits_per_text (`torch.FloatTensor` of shape `(text_batch_size, video_batch_size)`):
        Text rows: entry (j, i) is text j's scaled cosine similarity to video i, the transpose of `logits_per_video`.
    video_embeds / text_embeds (`torch.FloatTensor` of shape `(batch_size, projection_dim)`):
        L2-normalised projected embeddings.
    """

    loss: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    vision_model_output: BaseModelOutputWithPooling | None = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in self.values())


class Eva02AtModel(Eva02AtPreTrainedModel):
    """EVA02-AT dual encoder: video tower + CLIP text tower, each projected into a shared `projection_dim` space.

    `logit_scale` is the log of the similarity multiplier (as in CLIP); `scale()` is the multiplier itself.
    """

    config: Eva02AtConfig
    main_input_name = "input_ids"

    def __init__(self, config: Eva02AtConfig):
        super().__init__(config)
        self.vision_model = Eva02AtVisionModel._from_config(config.vision_config)
        self.text_model = CLIPTextModel._from_config(config.text_config)
        self.visual_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim, bias=True)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim, bias=False)
        self.logit_scale = nn.Parameter(
            torch.tensor(float(config.logit_scale_init_value)), requires_grad=not config.freeze_logit_scale
        )
        self.post_init()

    def resize_num_frames(self, num_frames: int) -> None:
        """See `Eva02AtVisionModel.resize_num_frames`; `config.vision_config` follows too."""
        self.vision_model.resize_num_frames(num_frames)
        self.config.vision_config = self.vision_model.config

    def _with_output_flags(self, kwargs: dict) -> dict:
        """`kwargs` plus the output flags set on this model's config (e.g. by `from_pretrained(...,
        output_hidden_states=True)`), which the towers, reading only their own sub-configs, would not see. A flag
        passed to the call wins."""
        flags = {
            flag: getattr(self.config, flag)
            for flag in ("output_hidden_states", "output_attentions")
            if getattr(self.config, flag) and flag not in kwargs
        }
        return {**kwargs, **flags}

    @can_return_tuple
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        """Video tower output whose `pooler_output` is the projected (not normalised) video embedding."""
        kwargs = self._with_output_flags(kwargs)
        outputs = self.vision_model(pixel_values_videos, interpolate_pos_encoding=interpolate_pos_encoding, **kwargs)
        outputs.pooler_output = self.visual_projection(outputs.pooler_output)
        return outputs

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        """Text tower output whose `pooler_output` is the projected (not normalised) text embedding.

        `output_attentions=True` returns the eager attention weights of every layer whatever the attention
        implementation, computed for this call only: the tower keeps its implementation, and its outputs are the ones
        a call without the flag returns. Token ids outside the vocabulary raise a ValueError naming one (on CUDA the
        embedding lookup fails with a device-side assert first, as in any transformers model).
        """
        _check_input_ids(input_ids, attention_mask)
        kwargs = self._with_output_flags(kwargs)
        attn_implementation = self.text_model.config._attn_implementation
        embedding = self.text_model.embeddings.token_embedding.weight
        text_mask = attention_mask
        if attention_mask is not None and attn_implementation in ("eager", "sdpa"):
            # Given a 2D mask, transformers checks on the host whether sdpa may skip it (a device sync per call); the
            # same mask built here in 4D is used as is.
            text_mask = _causal_text_mask(attention_mask, input_ids.shape[1], embedding)
        weights_wanted = kwargs.get("output_attentions") and attn_implementation != "eager"
        hidden_states_wanted = kwargs.get("output_hidden_states")
        if weights_wanted:
            # Only eager attention materialises the weights: they are computed below from each layer's input, which
            # the hidden states hold, so the tower runs once with its own implementation and its config is untouched.
            kwargs = {**kwargs, "output_attentions": False, "output_hidden_states": True}
        try:
            outputs = self.text_model(input_ids=input_ids, attention_mask=text_mask, return_dict=True, **kwargs)
        except IndexError as error:
            # An id outside the vocabulary makes the embedding lookup fail: only then are the ids read, to name it.
            if (clear_error := _out_of_vocabulary_error(input_ids, self.config.text_config)) is not None:
                raise clear_error from error
            raise
        if weights_wanted:
            mask = _causal_text_mask(attention_mask, input_ids.shape[1], embedding)
            outputs.attentions = self._text_attention_weights(outputs.hidden_states, mask)
            outputs.hidden_states = _select_hidden_states(outputs.hidden_states, hidden_states_wanted)
        outputs.pooler_output = self.text_projection(outputs.pooler_output)
        return outputs

    def _text_attention_weights(self, hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor) -> tuple:
        """Every text layer's eager attention weights (batch, heads, seq, seq), computed from its input
        `hidden_states[i]` exactly as transformers' CLIP attention computes them in eager mode."""
        weights = []
        for layer, layer_input in zip(self.text_model.encoder.layers, hidden_states):
            attention = layer.self_attn
            normed = layer.layer_norm1(layer_input)
            heads_shape = (*normed.shape[:-1], -1, attention.head_dim)
            query = attention.q_proj(normed).view(heads_shape).transpose(1, 2)
            key = attention.k_proj(normed).view(heads_shape).transpose(1, 2)
            weights.append(attention_probabilities(query, key, mask, attention.scale))  # CLIPAttention's name
        return tuple(weights)

    def scale(self) -> torch.Tensor:
        """The multiplier of the cosine similarities, exp(logit_scale) with the log clamped to [0, logit_scale_max]
        (ln 100) as in CLIP."""
        return self.logit_scale.clamp(0, self.config.logit_scale_max).exp()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool | None = None,
        interpolate_pos_encoding: bool = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Eva02AtOutput:
        r"""
        Any number of videos against any number of texts gives the similarity logits, `logits_per_video` with one row
        per video and `logits_per_text` with one row per text; the InfoNCE loss (`return_loss=True`) needs paired
        batches of equal size.
        """
        if input_ids is None or pixel_values_videos is None:
            raise ValueError(
                "Eva02AtModel.forward needs both input_ids and pixel_values_videos; "
                "use get_text_features / get_video_features to encode one modality"
            )
        # The cheap text tower first: its input check fails fast, before the video tower runs.
        text_outputs = self.get_text_features(input_ids, attention_mask, **kwargs)
        vision_outputs = self.get_video_features(pixel_values_videos, interpolate_pos_encoding, **kwargs)
        if return_loss and input_ids.shape[0] != pixel_values_videos.shape[0]:
            raise ValueError(
                f"return_loss=True needs paired batches: input_ids has batch size {input_ids.shape[0]} but "
                f"pixel_values_videos has {pixel_values_videos.shape[0]}"
            )
        video_embeds = F.normalize(vision_outputs.pooler_output, dim=-1)
        text_embeds = F.normalize(text_outputs.pooler_output, dim=-1)

        logits_per_video = self.scale() * video_embeds @ text_embeds.T
        loss = contrastive_loss(logits_per_video) if return_loss else None
        return Eva02AtOutput(
            loss=loss,
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.T,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            text_model_output=text_outputs,
            vision_model_output=vision_outputs,
        )


__all__ = [
    "Eva02AtModel",
    "Eva02AtOutput",
    "Eva02AtPreTrainedModel",
    "Eva02AtVisionModel",
    "apply_rotary",
    "contrastive_loss",
    "interpolate_temporal_embed",
    "st_rope_angles",
]
