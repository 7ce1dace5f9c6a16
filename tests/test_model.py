"""The EVA02-AT dual encoder: ST-RoPE against docs/architecture.md, attention backends, saving, remote-code loading."""

import ast
import json
import math
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from modeling_eva02at import (
    REMOTE_CODE_FILES,
    Eva02AtConfig,
    Eva02AtModel,
    Eva02AtProcessor,
    Eva02AtVisionConfig,
    Eva02AtVisionModel,
)
from modeling_eva02at.modeling_eva02at import RopeTables, apply_rotary, st_rope_angles, st_rope_tables

from .conftest import REPO_ROOT


def tiny_config(**vision_overrides) -> Eva02AtConfig:
    vision = dict(
        hidden_size=64,
        intermediate_size=170,
        num_hidden_layers=2,
        num_attention_heads=4,  # head_dim 16: 4 row pairs, 4 column pairs
        image_size=32,
        patch_size=8,
        num_frames=4,
        max_num_frames=8,
    )
    vision.update(vision_overrides)
    text = dict(
        vocab_size=120,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=16,
        bos_token_id=118,
        eos_token_id=119,
        pad_token_id=0,
    )
    return Eva02AtConfig(vision_config=vision, text_config=text, projection_dim=24)


def tiny_inputs(batch=2, frames=4, size=32, seq=16):
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, frames, 3, size, size, generator=generator)
    input_ids = torch.randint(1, 118, (batch, seq), generator=generator)
    input_ids[:, 0] = 118
    input_ids[0, 9] = 119  # first sequence ends early: padding after its end-of-text
    input_ids[0, 10:] = 0
    input_ids[1, -1] = 119
    attention_mask = (torch.arange(seq)[None] <= (input_ids == 119).int().argmax(-1)[:, None]).long()
    return pixels, input_ids, attention_mask


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Eva02AtModel(tiny_config()).eval()


# ---------------------------------------------------------------------------------------------------------------------
# Spatial-temporal RoPE (docs/architecture.md)
# ---------------------------------------------------------------------------------------------------------------------


def spec_angle(t, h, w, i, head_dim, grid, theta=10000.0, ref_grid=16):
    """phi_i of the patch at frame t, row h, column w, written out from docs/architecture.md one scalar at a time."""
    quarter = head_dim // 4
    if i < quarter:
        spatial = (h * ref_grid / grid) * theta ** (-i / quarter)
    else:
        spatial = (w * ref_grid / grid) * theta ** (-(i - quarter) / quarter)
    temporal = t * theta ** (-2 * i / head_dim)
    return spatial + temporal


def pair_tables(cos, sin, dtype=None):
    """apply_rotary's tables from (L, d/2) cosines and sines: (cos, cos) and (-sin, sin) on each pair, (L, 1, d), and
    for float32 the complex cos + i sin (L, 1, d/2) of its eager evaluation."""
    dtype = dtype or cos.dtype
    polar = torch.complex(cos.float(), sin.float())[:, None] if dtype == torch.float32 else None
    cos, sin = cos.repeat_interleave(2, -1)[:, None], torch.stack((-sin, sin), -1).flatten(-2)[:, None]
    return RopeTables(cos.to(dtype), sin.to(dtype), polar)


def rotation_tables(angles, dtype=None):
    return pair_tables(angles.cos(), angles.sin(), dtype)


def rotate(x, angles):
    return apply_rotary(x, *rotation_tables(angles.to(x.dtype)))


def rotate_by_formula(x, angles):
    """(a, b) = (x[2i], x[2i+1]) -> (a cos phi_i - b sin phi_i, a sin phi_i + b cos phi_i), one pair at a time in Python
    floats (double precision) for x (1, L, H, d) and angles (L, d/2)."""
    out = torch.empty(x.shape, dtype=torch.float64)
    _, tokens, heads, head_dim = x.shape
    for token in range(tokens):
        for head in range(heads):
            for i in range(head_dim // 2):
                a, b = x[0, token, head, 2 * i].item(), x[0, token, head, 2 * i + 1].item()
                phi = angles[token, i].item()
                out[0, token, head, 2 * i] = a * math.cos(phi) - b * math.sin(phi)
                out[0, token, head, 2 * i + 1] = a * math.sin(phi) + b * math.cos(phi)
    return out


def complex_apply_rotary(x, freqs):
    """The implementation before the real one (a private copy): each pair as a complex number times e^(i phi), in
    float32 whatever x's dtype."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * freqs).flatten(-2).to(x.dtype)


@pytest.mark.parametrize("head_dim,grid,frames", [(16, 4, 3), (64, 14, 2), (64, 16, 1)])
def test_angle_table_equals_closed_form(head_dim, grid, frames):
    angles = st_rope_angles(frames, (grid, grid), head_dim)
    assert angles.shape == (frames * grid * grid, head_dim // 2) and angles.dtype == torch.float32
    token = 0
    for t in range(frames):  # frame-major (t, h, w) token order
        for h in range(grid):
            for w in range(grid):
                expected = [spec_angle(t, h, w, i, head_dim, grid) for i in range(head_dim // 2)]
                torch.testing.assert_close(angles[token], torch.tensor(expected, dtype=torch.float32))
                token += 1


@pytest.mark.parametrize(
    "dtype,evaluation,tolerance",
    [(torch.float64, "real", 1e-12), (torch.float32, "real", 1e-6), (torch.float32, "complex", 1e-6)],
)
def test_rotation_equals_the_formula_pair_by_pair(dtype, evaluation, tolerance):
    """Both evaluations: the complex multiply (eager float32, given the polar table) and real arithmetic (16 bits,
    float64, and float32 under torch.compile)."""
    angles = st_rope_angles(3, (2, 2), 16).double()  # 12 tokens, 8 pairs
    x = torch.randn(1, 12, 2, 16, dtype=dtype)
    expected = rotate_by_formula(x, angles)
    tables = rotation_tables(angles, dtype)
    got = apply_rotary(x, *tables) if evaluation == "complex" else apply_rotary(x, tables.cos, tables.sin)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), expected, atol=tolerance, rtol=0)


@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, 0.03), (torch.float16, 0.004)])
def test_rotation_equals_the_formula_in_16_bits(dtype, tolerance):
    """16-bit in, 16-bit out (evaluated through the swapped pairs), within that dtype's rounding of the
    double-precision formula: tables and products are in 16 bits."""
    angles = st_rope_angles(3, (2, 2), 16)
    x = torch.randn(1, 12, 2, 16).to(dtype)
    got = apply_rotary(x, *rotation_tables(angles, dtype))
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), rotate_by_formula(x, angles.double()), atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rotation_computes_in_the_activations_dtype(dtype):
    """No float32 upcast: every tensor apply_rotary makes from 16-bit activations and tables has their dtype, and no
    op involves complex numbers (inductor falls back on complex ops)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class RecordDtypes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            outputs = out if isinstance(out, (tuple, list)) else (out,)
            self.calls.extend((str(func), o.dtype) for o in outputs if isinstance(o, torch.Tensor))
            return out

    tables = rotation_tables(st_rope_angles(2, (3, 3), 16), dtype)
    x = torch.randn(1, 18, 4, 16).to(dtype)
    with RecordDtypes() as recorder:
        apply_rotary(x, *tables)
    assert recorder.calls and {made for _, made in recorder.calls} == {dtype}, recorder.calls


def test_the_real_and_complex_evaluations_agree_on_the_models_tables():
    """The model's float32 tables: the eager complex multiply equals the real arithmetic (what torch.compile and 16
    bits run) and the implementation before both, to <= 1e-6."""
    rotary = Eva02AtVisionModel(Eva02AtVisionConfig(num_frames=4)).rotary_emb  # B/16 at 4 frames: 785 tokens
    tables = rotary(4, 14, 14, torch.device("cpu"), torch.float32)
    assert tables.polar is not None and rotary(4, 14, 14, torch.device("cpu"), torch.bfloat16).polar is None
    freqs = torch.view_as_complex(rotary.cos_sin)[:, None]
    x = torch.randn(2, 785, 12, 64)
    real, eager = apply_rotary(x, tables.cos, tables.sin), apply_rotary(x, *tables)
    assert (real - eager).abs().max() <= 1e-6
    assert (eager - complex_apply_rotary(x, freqs)).abs().max() <= 1e-6


def eva02_2d_rope_tables(head_dim, grid, theta=10000.0, ref_grid=16):
    """EVA02's VisionRotaryEmbeddingFast, rewritten: per-axis frequencies over dim = head_dim / 2, each repeated on an
    adjacent channel pair, row table then column table concatenated along channels."""
    dim = head_dim // 2
    freqs = 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].double() / dim)
    positions = torch.arange(grid).double() / grid * ref_grid
    per_axis = torch.repeat_interleave(positions[:, None] * freqs, 2, dim=-1)  # (grid, dim)
    rows = per_axis[:, None, :].expand(grid, grid, dim)
    cols = per_axis[None, :, :].expand(grid, grid, dim)
    table = torch.cat((rows, cols), dim=-1).reshape(grid * grid, head_dim)
    return table.cos(), table.sin()


def rotate_half_interleaved(x):
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


@pytest.mark.parametrize("grid", [14, 16])
def test_spatial_part_equals_eva02_2d_rope(grid):
    head_dim = 64
    cos, sin = eva02_2d_rope_tables(head_dim, grid)
    tables = st_rope_tables(st_rope_angles(1, (grid, grid), head_dim))[1:]  # frame 0: no temporal rotation
    torch.testing.assert_close(tables[..., 0].repeat_interleave(2, -1), cos.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(tables[..., 1].repeat_interleave(2, -1), sin.float(), atol=1e-6, rtol=0)
    # and the rotation itself equals EVA02's x * cos + rotate_half(x) * sin on interleaved pairs
    x = torch.randn(2, grid * grid, 3, head_dim)
    expected = x * cos.float()[:, None] + rotate_half_interleaved(x) * sin.float()[:, None]
    got = apply_rotary(x, *pair_tables(tables[..., 0], tables[..., 1]))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_one_summed_rotation_equals_spatial_then_temporal():
    """R(xy + t) = R(xy) R(t): rotating once by the summed angle equals the two rotations in sequence."""
    head_dim, grid, frames = 16, 3, 5
    x = torch.randn(1, frames * grid * grid, 2, head_dim, dtype=torch.float64)
    full = st_rope_angles(frames, (grid, grid), head_dim, temporal=True).double()
    spatial = st_rope_angles(frames, (grid, grid), head_dim, temporal=False).double()
    torch.testing.assert_close(rotate(x, full), rotate(rotate(x, spatial), full - spatial))


def test_rotation_acts_on_adjacent_pairs():
    angles = torch.zeros(1, 8)
    angles[0, 2] = math.pi / 2  # rotate only pair 2 = channels (4, 5) by 90 degrees
    x = torch.arange(16.0).reshape(1, 1, 16)
    out = rotate(x, angles)
    expected = x.clone()
    expected[..., 4], expected[..., 5] = -x[..., 5], x[..., 4]  # (a, b) -> (-b, a)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_frame_shift_leaves_patch_logits_unchanged():
    """Relative time: q.k between patches depends only on frame differences, so shifting all frames is invisible."""
    head_dim, grid, frames, shift = 32, 3, 3, 5
    q, k = torch.randn(2, frames * grid * grid, 1, head_dim, dtype=torch.float64).unbind(0)

    def logits(first_frame):
        angles = st_rope_angles(first_frame + frames, (grid, grid), head_dim).double()[first_frame * grid * grid :]
        return rotate(q, angles)[:, 0] @ rotate(k, angles)[:, 0].T

    torch.testing.assert_close(logits(shift), logits(0), atol=1e-5, rtol=1e-5)  # float32 angles
    # ... while the temporal rotation does change them (it is not the identity)
    angles = st_rope_angles(frames, (grid, grid), head_dim, temporal=False).double()
    no_time = rotate(q, angles)[:, 0] @ rotate(k, angles)[:, 0].T
    assert (no_time - logits(0)).abs().max() > 1e-3


def test_cls_token_is_never_rotated(model):
    table = model.vision_model.rotary_emb.cos_sin
    assert table.dtype == torch.float32 and table.shape == (1 + 4 * 16, 8, 2)
    assert torch.equal(table[0, :, 0], torch.ones(8)) and torch.equal(table[0, :, 1], torch.zeros(8))
    for dtype in (torch.float32, torch.bfloat16):
        tables = model.vision_model.rotary_emb(4, 4, 4, torch.device("cpu"), dtype)
        cls = torch.randn(1, 1, 4, 16).to(dtype)
        assert torch.equal(apply_rotary(cls, *(t if t is None else t[:1] for t in tables)), cls)


def test_single_frame_has_no_temporal_rotation():
    """At T = 1 (t = 0) the temporal rotation is the identity: the tower is EVA02's image tower."""
    torch.manual_seed(0)
    with_time = Eva02AtVisionModel(tiny_config().vision_config).eval()
    without = Eva02AtVisionModel(tiny_config(use_temporal_rope=False).vision_config).eval()
    without.load_state_dict(with_time.state_dict())
    image = torch.randn(2, 1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(with_time(image).pooler_output, without(image).pooler_output)
        video = torch.randn(2, 4, 3, 32, 32)
        assert not torch.allclose(with_time(video).pooler_output, without(video).pooler_output)


def exact_tables(frames, grid, dtype):
    """apply_rotary's (cos, sin) of the tiny tower (head_dim 16) from the exact float32 table, cast to `dtype` last."""
    table = st_rope_tables(st_rope_angles(frames, (grid, grid), 16))
    return pair_tables(table[..., 0], table[..., 1], dtype)


def assert_tables_equal(got: RopeTables, expected: RopeTables) -> None:
    for name, a, b in zip(RopeTables._fields, got, expected):
        assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b)), name


def test_rope_tables_cached_per_shape_and_dtype_and_exact_in_bf16():
    tower = Eva02AtVisionModel(tiny_config().vision_config)
    rotary = tower.rotary_emb
    cpu = torch.device("cpu")
    default = rotary(4, 4, 4, cpu, torch.float32)
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(default, rotary(4, 4, 4, cpu, torch.float32)))  # memoised
    assert_tables_equal(default, exact_tables(4, 4, torch.float32))
    assert_tables_equal(rotary(6, 4, 4, cpu, torch.float32), exact_tables(6, 4, torch.float32))
    half = rotary(4, 4, 4, cpu, torch.bfloat16)
    assert_tables_equal(half, exact_tables(4, 4, torch.bfloat16))  # exact float32, cast last
    tower.to(torch.bfloat16)  # casts the buffer: the tables in use must still come from exact float32
    rotary.clear_cache()
    assert rotary.cos_sin.dtype == torch.bfloat16
    assert_tables_equal(rotary(4, 4, 4, cpu, torch.float32), default)
    assert_tables_equal(rotary(4, 4, 4, cpu, torch.bfloat16), half)


def test_rope_table_cache_is_bounded_least_recently_used():
    rotary = Eva02AtVisionModel(tiny_config().vision_config).rotary_emb
    cpu, bound = torch.device("cpu"), rotary.max_cached_tables
    assert bound == 8
    hot = rotary(1, 4, 4, cpu, torch.float32)
    for frames in range(2, 20):
        for dtype in (torch.float32, torch.bfloat16):
            assert_tables_equal(rotary(frames, 4, 4, cpu, dtype), exact_tables(frames, 4, dtype))
            assert rotary(1, 4, 4, cpu, torch.float32) is hot  # used over and over: never evicted, never recomputed
            assert len(rotary._cache) <= bound
    assert len(rotary._cache) == bound
    assert (1, 4, 4, cpu, torch.float32) in rotary._cache and (2, 4, 4, cpu, torch.float32) not in rotary._cache
    assert_tables_equal(rotary(2, 4, 4, cpu, torch.float32), exact_tables(2, 4, torch.float32))  # recomputed


def test_init_weights_rebuilds_the_default_table():
    """The buffer is non-persistent: a model built without real init (meta device, as from_pretrained does) gets it
    from _init_weights, and tables cached from the old buffer are dropped."""
    reference = Eva02AtVisionModel(tiny_config().vision_config).rotary_emb
    with torch.device("meta"):
        tower = Eva02AtVisionModel(tiny_config().vision_config)
    tower.to_empty(device="cpu")
    rotary = tower.rotary_emb
    rotary.cos_sin.fill_(3.0)
    rotary(4, 4, 4, torch.device("cpu"), torch.float32)  # a table cached from the garbage buffer
    tower.init_weights()
    assert torch.equal(rotary.cos_sin, reference.cos_sin)
    assert_tables_equal(rotary(4, 4, 4, torch.device("cpu"), torch.float32), exact_tables(4, 4, torch.float32))


# ---------------------------------------------------------------------------------------------------------------------
# The towers
# ---------------------------------------------------------------------------------------------------------------------


def test_token_layout_and_position_embeddings(model):
    """Frame-major tokens; patch (t, h, w) gets pos_embed[1 + h*grid + w] + temporal_embed[t]; cls gets pos_embed[0]."""
    embeddings = model.vision_model.embeddings
    pixels = torch.zeros(1, 4, 3, 32, 32)  # zero frames: the patch conv contributes only its bias
    with torch.no_grad():
        tokens = embeddings(pixels)
        bias = embeddings.patch_embedding.bias
        assert tokens.shape == (1, 1 + 4 * 16, 64)
        torch.testing.assert_close(tokens[0, 0], embeddings.cls_token[0, 0] + embeddings.pos_embed[0])
        for t, h, w in [(0, 0, 0), (1, 2, 3), (3, 3, 1)]:
            index = 1 + t * 16 + h * 4 + w
            expected = bias + embeddings.pos_embed[1 + h * 4 + w] + embeddings.temporal_embed[t]
            torch.testing.assert_close(tokens[0, index], expected)


def test_patch_embedding_is_per_frame(model):
    pixels = torch.randn(1, 4, 3, 32, 32)
    with torch.no_grad():
        tokens = model.vision_model.embeddings(pixels)
        alone = model.vision_model.embeddings(pixels[:, 2:3].repeat(1, 4, 1, 1, 1))
    embeddings = model.vision_model.embeddings
    strip = lambda x, t: x[0, 1 + t * 16 : 1 + (t + 1) * 16] - embeddings.temporal_embed[t]  # noqa: E731
    torch.testing.assert_close(strip(tokens, 2), strip(alone, 2))


def test_temporal_embed_interpolates_linearly(model):
    embeddings = model.vision_model.embeddings
    with torch.no_grad():
        assert torch.equal(embeddings.temporal_embedding(4), embeddings.temporal_embed)
        eight = embeddings.temporal_embedding(8)
        # align_corners=False: output frame j samples input position (j + 0.5) * 4 / 8 - 0.5, clamped to [0, 3]
        table = embeddings.temporal_embed
        for j in range(8):
            pos = min(max((j + 0.5) * 0.5 - 0.5, 0.0), 3.0)
            lo, frac = int(math.floor(pos)), pos - math.floor(pos)
            hi = min(lo + 1, 3)
            torch.testing.assert_close(eight[j], (1 - frac) * table[lo] + frac * table[hi])
        out = model.get_video_features(torch.randn(1, 8, 3, 32, 32)).pooler_output
    assert out.shape == (1, 24) and torch.isfinite(out).all()


def test_swiglu_and_block_follow_spec(model):
    layer = model.vision_model.encoder.layers[0]
    x = torch.randn(1, 5, 64)
    mlp = layer.mlp
    with torch.no_grad():
        expected = mlp.fc2(mlp.norm(torch.nn.functional.silu(mlp.fc1_g(x)) * mlp.fc1_x(x)))
        torch.testing.assert_close(mlp(x), expected)
    attn = layer.self_attn
    assert attn.k_proj.bias is None and attn.q_proj.bias is not None and attn.v_proj.bias is not None
    assert model.visual_projection.bias is not None and model.text_projection.bias is None
    assert all(m.eps == 1e-6 for m in model.vision_model.modules() if isinstance(m, torch.nn.LayerNorm))


def test_attention_equals_direct_computation(model):
    """One block's attention written out: rotate q and k (not cls), softmax(q k^T / sqrt(d)) v, inner LN, out_proj."""
    attn = model.vision_model.encoder.layers[0].self_attn
    assert attn.scaling == 16**-0.5 and not hasattr(attn, "scale")  # `scale` names the logit multiplier only
    rope = model.vision_model.rotary_emb(4, 4, 4, torch.device("cpu"), torch.float32)
    x = torch.randn(2, 65, 64)
    with torch.no_grad():
        got, _ = attn(x, rope)
        heads = lambda t: t.view(2, 65, 4, 16)  # noqa: E731
        angles = st_rope_angles(4, (4, 4), 16)
        cos = torch.cat((torch.ones(1, 8), angles.cos())).repeat_interleave(2, -1)[:, None]
        sin = torch.cat((torch.zeros(1, 8), angles.sin())).repeat_interleave(2, -1)[:, None]
        q = heads(attn.q_proj(x)) * cos + rotate_half_interleaved(heads(attn.q_proj(x))) * sin
        k = heads(attn.k_proj(x)) * cos + rotate_half_interleaved(heads(attn.k_proj(x))) * sin
        v = heads(attn.v_proj(x))
        weights = torch.einsum("blhd,bmhd->bhlm", q, k).div(4.0).softmax(-1)
        out = torch.einsum("bhlm,bmhd->blhd", weights, v).reshape(2, 65, 64)
        expected = attn.out_proj(attn.inner_norm(out))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_text_tower_is_transformers_clip(model):
    from transformers import CLIPTextModel

    assert type(model.text_model) is CLIPTextModel
    assert model.config.text_config.hidden_act == "gelu"
    _, input_ids, attention_mask = tiny_inputs()
    with torch.no_grad():
        features = model.get_text_features(input_ids, attention_mask).pooler_output
        eos = (input_ids == 119).int().argmax(-1)
        hidden = model.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        torch.testing.assert_close(features, model.text_projection(hidden[torch.arange(2), eos]))


def test_forward_outputs(model):
    pixels, input_ids, attention_mask = tiny_inputs()
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask, return_loss=True)
        video = torch.nn.functional.normalize(model.get_video_features(pixels).pooler_output, dim=-1)
        text = torch.nn.functional.normalize(model.get_text_features(input_ids, attention_mask).pooler_output, dim=-1)
    torch.testing.assert_close(out.video_embeds, video)
    torch.testing.assert_close(out.text_embeds, text)
    scale = model.logit_scale.exp()
    torch.testing.assert_close(out.logits_per_video, scale * video @ text.T)
    torch.testing.assert_close(out.logits_per_text, out.logits_per_video.T)
    targets = torch.arange(2)
    expected_loss = 0.5 * (
        torch.nn.functional.cross_entropy(out.logits_per_video, targets)
        + torch.nn.functional.cross_entropy(out.logits_per_text, targets)
    )
    torch.testing.assert_close(out.loss, expected_loss)
    # any number of videos against any number of texts, e.g. one clip against three class prompts: video rows in
    # logits_per_video, text rows in logits_per_text
    with torch.no_grad():
        out = model(input_ids=input_ids[[0, 1, 0]], pixel_values_videos=pixels[:1])
    assert out.logits_per_video.shape == (1, 3) and out.logits_per_text.shape == (3, 1)
    torch.testing.assert_close(out.logits_per_video[0, 1], model.scale() * out.video_embeds[0] @ out.text_embeds[1])
    assert isinstance(out.to_tuple()[0], torch.Tensor)


def test_logit_scale_clamped_and_freezable():
    config = tiny_config()
    config.logit_scale_init_value = 6.0
    model = Eva02AtModel(config)
    assert model.logit_scale.item() == 6.0  # the parameter is the log of the multiplier
    assert model.scale().item() == pytest.approx(100.0)  # the multiplier, its log clamped to ln 100
    frozen = tiny_config()
    frozen.freeze_logit_scale = True
    assert not Eva02AtModel(frozen).logit_scale.requires_grad


def test_hidden_states_and_attentions_recorded():
    config = tiny_config()
    config._attn_implementation = "eager"
    tower = Eva02AtVisionModel(config.vision_config).eval()
    pixels = torch.randn(1, 2, 3, 32, 32)
    out = tower(pixels, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (1, 4, 33, 33)


def test_from_pretrained_output_flags_reach_both_towers(model, tmp_path):
    model.save_pretrained(tmp_path)
    pixels, input_ids, attention_mask = tiny_inputs()
    inputs = dict(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)

    loaded = Eva02AtModel.from_pretrained(tmp_path, output_hidden_states=True).eval()
    with torch.no_grad():
        out = loaded(**inputs)
        video_only = loaded.get_video_features(pixels)
    assert len(out.vision_model_output.hidden_states) == 3 and len(video_only.hidden_states) == 3  # embeddings + 2
    assert out.vision_model_output.hidden_states[0].shape == (2, 65, 64)
    assert len(out.text_model_output.hidden_states) == 3
    assert out.text_model_output.hidden_states[-1].shape == (2, 16, 32)
    with torch.no_grad():  # a flag passed to the call wins
        assert loaded(**inputs, output_hidden_states=False).vision_model_output.hidden_states is None

    loaded = Eva02AtModel.from_pretrained(tmp_path, output_attentions=True).eval()
    with torch.no_grad():
        out = loaded(**inputs)
    assert [a.shape for a in out.vision_model_output.attentions] == [(2, 4, 65, 65)] * 2
    assert [a.shape for a in out.text_model_output.attentions] == [(2, 4, 16, 16)] * 2


def sdpa_calls(call):
    """How many times `call` ran torch's scaled_dot_product_attention (the sdpa implementation's kernel)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        call()
    return sum(event.name == "aten::scaled_dot_product_attention" for event in profile.events())


def assert_weights_equal(got, expected, shape):
    assert isinstance(got, tuple) and len(got) == len(expected) == 2  # one per layer: never empty
    for weights, reference in zip(got, expected):
        assert weights.shape == shape
        torch.testing.assert_close(weights, reference, atol=1e-5, rtol=0)
        torch.testing.assert_close(weights.sum(-1), torch.ones(shape[:-1]), atol=1e-6, rtol=0)


def test_attention_weights_under_sdpa_equal_the_eager_ones(model, tmp_path):
    """transformers' common tests call output_attentions=True on the default (sdpa) model and expect real weights:
    both towers compute that call's weights eagerly; other calls keep running sdpa."""
    model.save_pretrained(tmp_path)
    pixels, input_ids, attention_mask = tiny_inputs()
    sdpa = Eva02AtModel.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    eager = Eva02AtModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    inputs = dict(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
    text_shape, video_shape = (2, 4, 16, 16), (2, 4, 65, 65)
    with torch.no_grad():
        got, expected = sdpa(**inputs, output_attentions=True), eager(**inputs, output_attentions=True)
        assert_weights_equal(got.text_model_output.attentions, expected.text_model_output.attentions, text_shape)
        assert_weights_equal(got.vision_model_output.attentions, expected.vision_model_output.attentions, video_shape)
        # each tower alone, and the text tower without a padding mask
        text, text_expected = (m.get_text_features(input_ids, output_attentions=True) for m in (sdpa, eager))
        assert_weights_equal(text.attentions, text_expected.attentions, text_shape)
        assert text.hidden_states is None
        video, video_expected = (m.get_video_features(pixels, output_attentions=True) for m in (sdpa, eager))
        assert_weights_equal(video.attentions, video_expected.attentions, video_shape)
        # the flag adds the weights and changes nothing else: the text tower's outputs are a plain call's
        plain = sdpa(**inputs)
        assert plain.text_model_output.attentions is None and plain.vision_model_output.attentions is None
        assert torch.equal(got.text_embeds, plain.text_embeds)
        torch.testing.assert_close(got.video_embeds, plain.video_embeds, atol=1e-5, rtol=0)
        flags = dict(output_attentions=True, output_hidden_states=True)
        with_states = sdpa.get_text_features(input_ids, attention_mask, **flags).hidden_states
        states = eager.get_text_features(input_ids, attention_mask, output_hidden_states=True).hidden_states
        assert len(with_states) == 3
        for a, b in zip(with_states, states):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        selected = sdpa.get_text_features(input_ids, output_attentions=True, output_hidden_states=[0, -1])
        assert selected.hidden_states[1] is None and len(selected.attentions) == 2
        all_states = sdpa.get_text_features(input_ids, output_hidden_states=True).hidden_states
        assert torch.equal(selected.hidden_states[0], all_states[0])
        assert torch.equal(selected.hidden_states[2], all_states[2])
    # and the model still runs sdpa: in its configs and in a normal call (2 text + 2 video layers)
    assert sdpa.config._attn_implementation == "sdpa"
    assert sdpa.text_model.config._attn_implementation == sdpa.vision_model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        assert sdpa_calls(lambda: sdpa(**inputs)) == 4
        assert sdpa_calls(lambda: eager(**inputs)) == 0


# ---------------------------------------------------------------------------------------------------------------------
# Attention backends, checkpointing, precision
# ---------------------------------------------------------------------------------------------------------------------


def test_eager_and_sdpa_agree(model):
    pixels, input_ids, attention_mask = tiny_inputs()
    assert model.config._attn_implementation == "sdpa"
    with torch.no_grad():
        sdpa = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
        model.set_attn_implementation("eager")
        try:
            eager = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
        finally:
            model.set_attn_implementation("sdpa")
    assert (sdpa.video_embeds - eager.video_embeds).abs().max() <= 1e-5
    assert (sdpa.text_embeds - eager.text_embeds).abs().max() <= 1e-5


def test_flash_attention_2_needs_the_package():
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        with pytest.raises((ImportError, ValueError), match="(?i)flash"):
            Eva02AtModel._from_config(tiny_config(), attn_implementation="flash_attention_2")
    else:  # pragma: no cover - GPU machines only
        Eva02AtModel._from_config(tiny_config(), attn_implementation="flash_attention_2")


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    model = Eva02AtModel(tiny_config()).train()
    pixels, input_ids, attention_mask = tiny_inputs()

    def grads():
        model.zero_grad()
        out = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask, return_loss=True)
        out.loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # transformers 5.24's current API: no deprecation warning
        model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.vision_model.encoder.layers)
    assert all(layer.gradient_checkpointing for layer in model.text_model.encoder.layers)
    checkpointed = grads()
    assert plain.keys() == checkpointed.keys()
    assert any(n.startswith("vision_model.encoder") for n in plain) and any(n.startswith("text_model") for n in plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-6, rtol=1e-5, msg=name)


def test_bf16_autocast_runs(model):
    pixels, input_ids, attention_mask = tiny_inputs()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
    with torch.no_grad():
        ref = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
    assert torch.isfinite(out.logits_per_video).all()
    assert (out.video_embeds.float() - ref.video_embeds).abs().max() < 0.1


def test_model_cast_to_bf16_runs():
    model = Eva02AtModel(tiny_config()).eval().to(torch.bfloat16)
    pixels, input_ids, attention_mask = tiny_inputs()
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values_videos=pixels.bfloat16(), attention_mask=attention_mask)
    assert out.video_embeds.dtype == torch.bfloat16 and torch.isfinite(out.video_embeds.float()).all()


# ---------------------------------------------------------------------------------------------------------------------
# Paper sizes (meta device: no memory, no time)
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset,video_millions,text_millions",
    [("eva02at-b16", 86, 63), ("eva02at-l14", 304, 124)],
)
def test_paper_parameter_counts(preset, video_millions, text_millions):
    config = Eva02AtConfig.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", preset))
    with torch.device("meta"):
        model = Eva02AtModel(config)
    count = lambda *modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    video = count(model.vision_model, model.visual_projection)
    text = count(model.text_model, model.text_projection)
    assert abs(video / 1e6 - video_millions) / video_millions < 0.01, video
    assert abs(text / 1e6 - text_millions) / text_millions < 0.01, text


def test_b16_shapes_follow_the_spec():
    config = Eva02AtConfig.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (768, 12, 12)
    assert vision.intermediate_size == 2048 and vision.image_size // vision.patch_size == 14
    with torch.device("meta"):
        tower = Eva02AtVisionModel(vision)
    assert tower.rotary_emb.cos_sin.shape == (1 + 16 * 196, 32, 2)


# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape,match",
    [
        ((2, 3, 32, 32), r"unsqueeze\(1\)"),
        ((2, 4, 1, 32, 32), r"1 channels .*\(batch, frames, 3, height, width\)"),
        ((2, 4, 3, 30, 32), r"multiples of 8"),
        ((1, 9, 3, 32, 32), r"max_num_frames=8"),
    ],
)
def test_bad_video_shapes_raise_clear_errors(model, shape, match):
    with pytest.raises(ValueError, match=match):
        model.get_video_features(torch.randn(*shape))


def test_other_image_size_needs_interpolation_flag(model):
    pixels = torch.randn(1, 2, 3, 48, 48)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model.get_video_features(pixels)
    with torch.no_grad():
        out = model.get_video_features(pixels, interpolate_pos_encoding=True).pooler_output
    assert out.shape == (1, 24)


def test_mismatched_batches_raise(model):
    pixels, input_ids, attention_mask = tiny_inputs()
    with pytest.raises(ValueError, match="paired batches: input_ids has batch size 2 but pixel_values_videos has 1"):
        model(input_ids=input_ids, pixel_values_videos=pixels[:1], return_loss=True)
    with pytest.raises(ValueError, match=r"attention_mask must be a tensor of input_ids' shape \(2, 16\), got \(1, 16"):
        model.get_text_features(input_ids, attention_mask[:1])


PROCESSOR = r"Eva02AtProcessor, or AutoProcessor"


@pytest.mark.parametrize(
    "input_ids,error,match",
    [
        (["cut the onion"], TypeError, r"input_ids must be a torch.Tensor .* got list of strings .*" + PROCESSOR),
        ([[118, 5, 119]], TypeError, r"input_ids must be a torch.Tensor .* got list \(torch.tensor"),
        (torch.ones(1, 3), TypeError, r"input_ids must hold integer token ids .* dtype torch.float32.*" + PROCESSOR),
        (torch.tensor([[118, 500, 119]]), ValueError, r"input_ids holds token id 500, .*vocab_size=120.*" + PROCESSOR),
        (torch.tensor([[118, -1, 119]]), ValueError, r"input_ids holds token id -1, "),
        (torch.tensor([118, 5, 119]), ValueError, r"input_ids must have shape \(batch, sequence\), got \(3,\).*\[None"),
    ],
)
def test_bad_input_ids_raise_clear_errors(model, input_ids, error, match):
    pixels = torch.randn(1, 4, 3, 32, 32)
    with pytest.raises(error, match=match):
        model.get_text_features(input_ids)
    with pytest.raises(error, match=match):
        model(input_ids=input_ids, pixel_values_videos=pixels)


def test_raw_pixel_values_raise_clear_errors(model):
    frames = torch.randint(0, 256, (1, 4, 3, 32, 32), dtype=torch.uint8)
    input_ids = tiny_inputs()[1][:1]
    match = r"pixel_values_videos has dtype torch.uint8, .*normalised float frames.*" + PROCESSOR
    for call in (
        lambda: model.get_video_features(frames),
        lambda: model.vision_model(frames),
        lambda: model(input_ids=input_ids, pixel_values_videos=frames),
    ):
        with pytest.raises(TypeError, match=match):
            call()
    with pytest.raises(TypeError, match=r"pixel_values_videos must be a float torch.Tensor.* got list; .*" + PROCESSOR):
        model.get_video_features(frames.float().tolist())


def test_config_validation():
    # huggingface_hub's strict dataclasses wrap the validator's ValueError, message included
    from huggingface_hub.errors import StrictDataclassClassValidationError as Invalid

    with pytest.raises(Invalid, match="multiple of patch_size"):
        Eva02AtVisionConfig(image_size=30, patch_size=8)
    with pytest.raises(Invalid, match="multiple of num_attention_heads"):
        Eva02AtVisionConfig(hidden_size=64, num_attention_heads=5)
    with pytest.raises(Invalid, match="num_frames"):
        Eva02AtVisionConfig(num_frames=80, max_num_frames=64)
    with pytest.raises(Invalid, match=r"hidden_size / num_attention_heads = 60 / 6 = 10 must be a multiple of 4"):
        Eva02AtVisionConfig(hidden_size=60, num_attention_heads=6)


@pytest.mark.parametrize(
    "edit,match",
    [
        (("vision_config", "num_attention_heads", 5), r"vision_config: hidden_size \(64\) .*num_attention_heads \(5\)"),
        (("vision_config", "num_attention_heads", 32), r"vision_config: the head dimension .* 64 / 32 = 2 must"),
        (("vision_config", "hidden_size", 72), r"vision_config: the head dimension .* 72 / 4 = 18 must"),
        (("text_config", "num_attention_heads", 3), r"text_config: .*hidden size \(32\) .*attention heads \(3\)"),
    ],
)
def test_config_edited_after_loading_is_checked_when_the_model_is_built(edit, match):
    config = Eva02AtConfig.from_pretrained(os.path.join(REPO_ROOT, "tests", "fixtures", "tiny_mir_config"))
    config.vision_config.hidden_size, config.vision_config.num_attention_heads = 64, 4
    config.text_config.num_attention_heads = 4
    Eva02AtModel(config)  # valid
    sub_config, field, value = edit
    setattr(getattr(config, sub_config), field, value)
    with pytest.raises(ValueError, match=match):
        Eva02AtModel(config)
    if match.startswith("vision_config"):
        with pytest.raises(ValueError, match=match.removeprefix("vision_config: ")):
            Eva02AtVisionModel(config.vision_config)


def test_dual_config_has_no_unused_initializer_factor(tmp_path):
    """The dual config's initializer_factor was read by nothing; the CLIP text sub-config keeps its own."""
    config = tiny_config()
    assert not hasattr(config, "initializer_factor") and hasattr(config.text_config, "initializer_factor")
    config.save_pretrained(tmp_path)
    hub_folders = [os.path.join(REPO_ROOT, "hub_configs", name) for name in ("eva02at-b16", "eva02at-l14")]
    for folder in (tmp_path, *hub_folders):
        saved = json.loads(open(os.path.join(folder, "config.json")).read())
        assert "initializer_factor" not in saved and "initializer_factor" in saved["text_config"], folder


# ---------------------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------------------


def test_save_and_from_pretrained_in_process(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = Eva02AtModel.from_pretrained(tmp_path, dtype=torch.float32).eval()
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.vision_model.rotary_emb.cos_sin, model.vision_model.rotary_emb.cos_sin)
    # the per-frame-count caches and half-precision casting do not leak into the checkpoint
    assert not any("cos_sin" in key for key in load_file(tmp_path / "model.safetensors"))


REMOTE_LOADER = textwrap.dedent(
    """
    import json, sys, torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, AutoModel

    folder, inputs_path, out_path = sys.argv[1:4]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
    inputs = load_file(inputs_path)
    with torch.no_grad():
        out = model(**inputs)
    tensors = {"param." + k: v.contiguous() for k, v in model.named_parameters()}
    tensors.update({"buffer." + k: v.contiguous() for k, v in model.named_buffers()})
    tensors.update(video_embeds=out.video_embeds, text_embeds=out.text_embeds, logits=out.logits_per_video)
    save_file({k: (torch.view_as_real(v) if v.is_complex() else v) for k, v in tensors.items()}, out_path)
    print(json.dumps({
        "module": type(model).__module__,
        "config_module": type(AutoConfig.from_pretrained(folder, trust_remote_code=True)).__module__,
        "package_imported": any(m == "modeling_eva02at" or m.startswith("modeling_eva02at.") for m in sys.modules),
    }))
    """
)


def test_saved_folder_loads_offline_with_remote_code_in_fresh_process(model, tmp_path):
    folder = tmp_path / "eva02at-tiny"
    model.save_pretrained(folder)
    files = set(os.listdir(folder))
    assert {"config.json", "model.safetensors"} <= files
    # the model's files, and the pipeline's that the config names (every saved folder is pipeline-ready)
    assert {name for name in files if name.endswith(".py")} == set(REMOTE_CODE_FILES) - {"processing_eva02at.py"}
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_eva02at.Eva02AtConfig",
        "AutoModel": "modeling_eva02at.Eva02AtModel",
    }

    pixels, input_ids, attention_mask = tiny_inputs()
    save_file(
        {"pixel_values_videos": pixels, "input_ids": input_ids, "attention_mask": attention_mask},
        tmp_path / "inputs.safetensors",
    )
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_LOADER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, str(script), str(folder), str(tmp_path / "inputs.safetensors"), str(tmp_path / "out.st")],
        cwd=tmp_path,  # not the repo root: the package must not be importable by accident through the cwd
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules"), report
    assert report["config_module"].startswith("transformers_modules"), report
    assert not report["package_imported"], report

    loaded = load_file(tmp_path / "out.st")
    for name, value in model.named_parameters():
        assert torch.equal(loaded["param." + name], value), name
    for name, value in model.named_buffers():
        value = torch.view_as_real(value) if value.is_complex() else value
        assert torch.equal(loaded["buffer." + name], value), name
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
    assert torch.equal(loaded["video_embeds"], out.video_embeds)
    assert torch.equal(loaded["text_embeds"], out.text_embeds)
    assert torch.equal(loaded["logits"], out.logits_per_video)


def test_auto_classes_registered_for_installed_users():
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    assert type(config) is Eva02AtConfig
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    assert type(model) is Eva02AtModel


def test_torchvision_and_torchcodec_absent():
    """Broken CUDA builds of these break transformers' own imports here: they must never be installed."""
    import importlib.util

    from transformers import CLIPTextModel  # noqa: F401

    assert importlib.util.find_spec("torchvision") is None
    assert importlib.util.find_spec("torchcodec") is None


def test_pooled_text_embedding_does_not_depend_on_the_pad_id():
    """The processor pads with <|endoftext|> (49407) where open_clip pads with 0: the causal tower pooled at the first
    end-of-text token never sees what follows it, so the text embedding is the same either way."""
    from modeling_eva02at import Eva02AtProcessor

    processor = Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    config = tiny_config()
    config.text_config.vocab_size, config.text_config.max_position_embeddings = 49408, 77
    config.text_config.bos_token_id, config.text_config.eos_token_id = 49406, 49407
    model = Eva02AtModel(config).eval()
    tokens = processor(text=["cut the onion", "wash the pan with a sponge and dry it"])
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    assert ids.shape == (2, 77) and (ids[:, -1] == 49407).all()
    open_clip_ids = ids.masked_fill(mask == 0, 0)  # open_clip's padding
    with torch.no_grad():
        ours = model.get_text_features(ids).pooler_output
        theirs = model.get_text_features(open_clip_ids).pooler_output
        with_mask = model.get_text_features(ids, mask).pooler_output
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, with_mask, atol=1e-6, rtol=0)


def _imports(path):
    """(relative module names, absolute top-level package names) imported anywhere in a Python file."""
    relative, absolute = set(), set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            (relative if node.level else absolute).add(node.module)
        elif isinstance(node, ast.Import):
            absolute.update(alias.name for alias in node.names)
    return relative, {name.split(".")[0] for name in absolute if name}


def test_remote_code_files_import_only_each_other():
    package = os.path.join(REPO_ROOT, "modeling_eva02at")
    top_level = {name for name in os.listdir(package) if name.endswith(".py")}
    assert top_level == {"__init__.py", *REMOTE_CODE_FILES}, "only the Hub files live at the package's top level"
    stems = {name[:-3] for name in REMOTE_CODE_FILES}
    for name in REMOTE_CODE_FILES:
        relative, absolute = _imports(os.path.join(package, name))
        assert relative <= stems, f"{name} imports {relative - stems}, which a Hub repo does not carry"
        assert "modeling_eva02at" not in absolute, f"{name} imports the installed package"


def test_saved_model_and_processor_folder_carries_exactly_the_remote_code_files(model, tmp_path):
    model.save_pretrained(tmp_path)
    Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16")).save_pretrained(tmp_path)
    # The pipeline file comes with the model's config, which names the pipeline (custom_pipelines).
    model_files = sorted(REMOTE_CODE_FILES)
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith(".py")) == model_files
