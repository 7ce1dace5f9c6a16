"""Tests of modeling_eva02at.conversion (issue 3): checkpoint conversion from open_clip, EVA-CLIP, timm and EVA02-AT.

The round trips generate random tiny checkpoints directly in each SOURCE layout and compare the converted model with
a reference forward written here from the source tensors in plain torch (EVA-CLIP's rotate-half RoPE on adjacent
pairs, fused or separate q/k/v, AVION's patch Linear, nn.MultiheadAttention's stacked in_proj, x @ text_projection).
It shares no code with the converter or the model, so a wrong name, transpose, split or interpolation shows up as a
numerical difference. `tests/fixtures/open_clip_tiny` holds weights and embeddings made by the real open_clip / timm
code (scripts/make_open_clip_reference.py) for the same check against the original implementation.
"""

import argparse
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from modeling_eva02at import Eva02AtConfig, Eva02AtModel
from modeling_eva02at.conversion.checkpoints import CheckpointError, load_checkpoint
from modeling_eva02at.conversion.convert import convert_checkpoint
from modeling_eva02at.modeling_eva02at import interpolate_temporal_embed

from . import cli_runs


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO_ROOT, "tests", "fixtures", "open_clip_tiny")
HUB_B16 = os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16")

# Tiny sizes: 32 px frames of 8 px patches (4 x 4 grid, rescaled to EVA02's 16 reference grid), heads of 16 channels.
D, DEPTH, HEADS, MLP, PATCH, IMAGE = 32, 2, 2, 64, 8, 32
W, TEXT_DEPTH, TEXT_HEADS, TEXT_MLP, VOCAB, CTX = 32, 2, 2, 64, 64, 12
PROJ, FRAMES = 16, 4
GRID = IMAGE // PATCH
TOL = 1e-5


# ---------------------------------------------------------------------------------------------------------------------
# Source layouts, as the original code bases name their tensors
# ---------------------------------------------------------------------------------------------------------------------

# Where each source keeps the pieces of an EVA02 block: (vision prefix, text prefix, per-block names).
TIMM_BLOCK = {
    "q_w": "attn.q_proj.weight",
    "q_b": "attn.q_proj.bias",
    "k_w": "attn.k_proj.weight",
    "v_w": "attn.v_proj.weight",
    "v_b": "attn.v_proj.bias",
    "inner": "attn.norm",
    "fc1_g": "mlp.fc1_g",
    "fc1_x": "mlp.fc1_x",
    "ffn_ln": "mlp.norm",
    "fc2": "mlp.fc2",
}
EVA_CLIP_BLOCK = {
    "q_w": "attn.q_proj.weight",
    "q_b": "attn.q_bias",
    "k_w": "attn.k_proj.weight",
    "v_w": "attn.v_proj.weight",
    "v_b": "attn.v_bias",
    "inner": "attn.inner_attn_ln",
    "fc1_g": "mlp.w1",
    "fc1_x": "mlp.w2",
    "ffn_ln": "mlp.ffn_ln",
    "fc2": "mlp.w3",
}
LAYOUTS = {
    "open_clip": ("visual.trunk.", "text.", TIMM_BLOCK),
    "eva_clip": ("visual.", "", EVA_CLIP_BLOCK),
    "timm": ("", None, TIMM_BLOCK),
    "eva02at": ("visual.", "textual.", TIMM_BLOCK),
}


def _rand(generator, *shape, std=0.1, mean=0.0):
    return torch.randn(*shape, generator=generator) * std + mean


def make_source(
    source, *, seed=0, fused_qkv=False, frames=None, linear_patch=False, proj=PROJ, hidden=D, depth=DEPTH, mlp=MLP
):
    """A random checkpoint in `source`'s layout (fp32). `frames`: rows of an EVA02-AT temporal_embed."""
    g = torch.Generator().manual_seed(seed)
    vp, tp, names = LAYOUTS[source]
    sd = {}
    sd[vp + "cls_token"] = _rand(g, 1, 1, hidden)
    pos = _rand(g, 1, 1 + GRID * GRID, hidden)
    sd[vp + "pos_embed"] = pos[0] if source == "eva02at" else pos
    patch = "conv1" if source == "eva02at" else "patch_embed.proj"
    patch_shape = (hidden, 3 * PATCH * PATCH) if linear_patch else (hidden, 3, PATCH, PATCH)
    sd[vp + patch + ".weight"] = _rand(g, *patch_shape)
    sd[vp + patch + ".bias"] = _rand(g, hidden)
    if frames:
        sd[vp + "temporal_embed"] = _rand(g, frames, hidden)
    for i in range(depth):
        b = f"{vp}blocks.{i}."
        for ln in ("norm1", "norm2", names["inner"]):
            sd[b + ln + ".weight"], sd[b + ln + ".bias"] = _rand(g, hidden, mean=1.0), _rand(g, hidden)
        q_w, k_w, v_w = (_rand(g, hidden, hidden, std=0.2) for _ in range(3))
        q_b, v_b = _rand(g, hidden), _rand(g, hidden)
        if fused_qkv:  # timm's qkv_fused=True: one (3D, D) weight, q / v biases as parameters
            sd[b + "attn.qkv.weight"] = torch.cat([q_w, k_w, v_w])
            sd[b + "attn.q_bias"], sd[b + "attn.v_bias"] = q_b, v_b
        else:
            sd[b + names["q_w"]], sd[b + names["k_w"]], sd[b + names["v_w"]] = q_w, k_w, v_w
            sd[b + names["q_b"]], sd[b + names["v_b"]] = q_b, v_b
        sd[b + "attn.proj.weight"], sd[b + "attn.proj.bias"] = _rand(g, hidden, hidden), _rand(g, hidden)
        for fc in ("fc1_g", "fc1_x"):
            sd[b + names[fc] + ".weight"], sd[b + names[fc] + ".bias"] = _rand(g, mlp, hidden), _rand(g, mlp)
        sd[b + names["ffn_ln"] + ".weight"], sd[b + names["ffn_ln"] + ".bias"] = _rand(g, mlp, mean=1.0), _rand(g, mlp)
        sd[b + names["fc2"] + ".weight"], sd[b + names["fc2"] + ".bias"] = _rand(g, hidden, mlp), _rand(g, hidden)
    sd[vp + "norm.weight"], sd[vp + "norm.bias"] = _rand(g, hidden, mean=1.0), _rand(g, hidden)
    sd[vp + "head.weight"], sd[vp + "head.bias"] = _rand(g, proj, hidden), _rand(g, proj)
    if source == "eva_clip":  # EVA-CLIP's persistent RoPE buffers, shared module registered in every block
        cos, sin = eva_rope(GRID, hidden // HEADS, num_frames=1)
        for prefix in ["visual.rope."] + [f"visual.blocks.{i}.attn.rope." for i in range(depth)]:
            sd[prefix + "freqs_cos"], sd[prefix + "freqs_sin"] = cos.clone(), sin.clone()
    if tp is None:
        return sd
    sd[tp + "token_embedding.weight"] = _rand(g, VOCAB, W)
    sd[tp + "positional_embedding"] = _rand(g, CTX, W)
    for i in range(TEXT_DEPTH):
        b = f"{tp}transformer.resblocks.{i}."
        for ln in ("ln_1", "ln_2"):
            sd[b + ln + ".weight"], sd[b + ln + ".bias"] = _rand(g, W, mean=1.0), _rand(g, W)
        sd[b + "attn.in_proj_weight"], sd[b + "attn.in_proj_bias"] = _rand(g, 3 * W, W, std=0.2), _rand(g, 3 * W)
        sd[b + "attn.out_proj.weight"], sd[b + "attn.out_proj.bias"] = _rand(g, W, W), _rand(g, W)
        sd[b + "mlp.c_fc.weight"], sd[b + "mlp.c_fc.bias"] = _rand(g, TEXT_MLP, W), _rand(g, TEXT_MLP)
        sd[b + "mlp.c_proj.weight"], sd[b + "mlp.c_proj.bias"] = _rand(g, W, TEXT_MLP), _rand(g, W)
    sd[tp + "ln_final.weight"], sd[tp + "ln_final.bias"] = _rand(g, W, mean=1.0), _rand(g, W)
    sd[tp + "text_projection"] = _rand(g, W, proj)  # used as x @ P
    sd["logit_scale"] = torch.tensor(math.log(1 / 0.05))
    return sd


# ---------------------------------------------------------------------------------------------------------------------
# Reference forward passes, read straight from the source tensors
# ---------------------------------------------------------------------------------------------------------------------


def eva_rope(grid, head_dim, num_frames, ref_grid=16, theta=10000.0):
    """EVA-CLIP's VisionRotaryEmbeddingFast tables (freqs repeated per adjacent pair, rows then columns), plus the
    EVA02-AT temporal angle t * theta^(-2i/d) of pair i. Returns cos, sin of shape (T * grid * grid, head_dim)."""
    half = head_dim // 2
    freqs = 1.0 / theta ** (torch.arange(0, half, 2)[: half // 2].double() / half)
    t = torch.arange(grid).double() / grid * ref_grid
    f = (t[:, None] * freqs[None]).repeat_interleave(2, dim=-1)  # (grid, half)
    spatial = torch.cat([f[:, None, :].expand(grid, grid, half), f[None, :, :].expand(grid, grid, half)], dim=-1)
    time_freqs = (1.0 / theta ** (torch.arange(0, head_dim, 2).double() / head_dim)).repeat_interleave(2)
    angles = spatial[None] + torch.arange(num_frames).double()[:, None, None, None] * time_freqs
    angles = angles.reshape(-1, head_dim)
    return angles.cos().float(), angles.sin().float()


def rotate_pairs(x):
    """EVA-CLIP's rotate_half: (x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def lerp_frames(emb, num_frames):
    """Linear resampling along time, align_corners=False, written out (src = (i + 0.5) * T / T' - 0.5, clamped)."""
    length = emb.shape[0]
    rows = []
    for i in range(num_frames):
        x = min(max((i + 0.5) * length / num_frames - 0.5, 0.0), length - 1)
        lo = int(math.floor(x))
        hi, w = min(lo + 1, length - 1), x - lo
        rows.append(emb[lo] * (1 - w) + emb[hi] * w)
    return torch.stack(rows)


def reference_video(sd, source, pixels, temporal_embed=None, heads=HEADS):
    """EVA02(-AT) video tower + head from `source` tensors. pixels: (B, T, 3, H, W); temporal_embed: (T, D) or None."""
    vp, _, names = LAYOUTS[source]
    get = lambda name: sd[vp + name].float()  # noqa: E731
    batch, frames = pixels.shape[:2]
    if source == "eva02at" and sd[vp + "conv1.weight"].dim() == 2:
        # AVION: rearrange "b t c (hh sh) (ww sw) -> b (t hh ww) (c sh sw)", then the Linear.
        x = pixels.reshape(batch, frames, 3, GRID, PATCH, GRID, PATCH).permute(0, 1, 3, 5, 2, 4, 6)
        x = x.reshape(batch, frames * GRID * GRID, 3 * PATCH * PATCH) @ get("conv1.weight").T + get("conv1.bias")
    else:
        patch = "conv1" if source == "eva02at" else "patch_embed.proj"
        x = F.conv2d(pixels.flatten(0, 1), get(patch + ".weight"), get(patch + ".bias"), stride=PATCH)
        x = x.flatten(2).transpose(1, 2).reshape(batch, frames * GRID * GRID, -1)
    hidden = x.shape[-1]
    pos = get("pos_embed").reshape(-1, hidden)
    position = pos[1:].repeat(frames, 1)
    if temporal_embed is not None:
        position = position + temporal_embed.repeat_interleave(GRID * GRID, dim=0)
    x = torch.cat([(get("cls_token").reshape(1, 1, hidden) + pos[0]).expand(batch, 1, hidden), x + position], dim=1)

    head_dim = hidden // heads
    cos, sin = eva_rope(GRID, head_dim, frames)
    ln = lambda t, name, n=hidden: F.layer_norm(t, (n,), get(name + ".weight"), get(name + ".bias"), 1e-6)  # noqa: E731
    for i in range(sum(1 for k in sd if k.startswith(vp + "blocks.") and k.endswith(".norm1.weight"))):
        b = f"blocks.{i}."
        h = ln(x, b + "norm1")
        if vp + b + "attn.qkv.weight" in sd:  # timm fused: F.linear with cat(q_bias, 0, v_bias), then (3, heads, d)
            bias = torch.cat([get(b + "attn.q_bias"), torch.zeros(hidden), get(b + "attn.v_bias")])
            qkv = F.linear(h, get(b + "attn.qkv.weight"), bias).reshape(batch, -1, 3, heads, head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        else:
            split = lambda t: t.reshape(batch, -1, heads, head_dim).transpose(1, 2)  # noqa: E731
            q = split(F.linear(h, get(b + names["q_w"]), get(b + names["q_b"])))
            k = split(F.linear(h, get(b + names["k_w"])))
            v = split(F.linear(h, get(b + names["v_w"]), get(b + names["v_b"])))
        # RoPE on the patch tokens only (the cls token is not rotated), as EVA-CLIP slices q[:, :, 1:].
        q = torch.cat([q[:, :, :1], q[:, :, 1:] * cos + rotate_pairs(q[:, :, 1:]) * sin], dim=2)
        k = torch.cat([k[:, :, :1], k[:, :, 1:] * cos + rotate_pairs(k[:, :, 1:]) * sin], dim=2)
        attn = ((q * head_dim**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(batch, -1, hidden)
        x = x + F.linear(ln(out, b + names["inner"]), get(b + "attn.proj.weight"), get(b + "attn.proj.bias"))
        h = ln(x, b + "norm2")
        gate = F.silu(F.linear(h, get(b + names["fc1_g"] + ".weight"), get(b + names["fc1_g"] + ".bias")))
        hid = gate * F.linear(h, get(b + names["fc1_x"] + ".weight"), get(b + names["fc1_x"] + ".bias"))
        hid = ln(hid, b + names["ffn_ln"], hid.shape[-1])
        x = x + F.linear(hid, get(b + names["fc2"] + ".weight"), get(b + names["fc2"] + ".bias"))
    pooled = ln(x, "norm")[:, 0]
    return pooled, F.linear(pooled, get("head.weight"), get("head.bias"))


def reference_text(sd, source, input_ids):
    """OpenAI CLIP text transformer (causal nn.MultiheadAttention, exact GELU), pooled at the argmax token."""
    _, tp, _ = LAYOUTS[source]
    get = lambda name: sd[tp + name].float()  # noqa: E731
    batch, length = input_ids.shape
    head_dim = W // TEXT_HEADS
    x = get("token_embedding.weight")[input_ids] + get("positional_embedding")[:length]
    mask = torch.full((length, length), float("-inf")).triu(1)
    ln = lambda t, name: F.layer_norm(t, (W,), get(name + ".weight"), get(name + ".bias"), 1e-5)  # noqa: E731
    for i in range(TEXT_DEPTH):
        b = f"transformer.resblocks.{i}."
        qkv = F.linear(ln(x, b + "ln_1"), get(b + "attn.in_proj_weight"), get(b + "attn.in_proj_bias"))
        q, k, v = (t.reshape(batch, length, TEXT_HEADS, head_dim).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
        attn = ((q @ k.transpose(-2, -1)) * head_dim**-0.5 + mask).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(batch, length, W)
        x = x + F.linear(out, get(b + "attn.out_proj.weight"), get(b + "attn.out_proj.bias"))
        h = F.gelu(F.linear(ln(x, b + "ln_2"), get(b + "mlp.c_fc.weight"), get(b + "mlp.c_fc.bias")))
        x = x + F.linear(h, get(b + "mlp.c_proj.weight"), get(b + "mlp.c_proj.bias"))
    pooled = ln(x, "ln_final")[torch.arange(batch), input_ids.argmax(dim=-1)]
    return pooled, pooled @ get("text_projection")


# ---------------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------------


def tiny_config(hidden=D, depth=DEPTH, mlp=MLP) -> Eva02AtConfig:
    return Eva02AtConfig(
        projection_dim=PROJ,
        vision_config=dict(
            hidden_size=hidden,
            intermediate_size=mlp,
            num_hidden_layers=depth,
            num_attention_heads=HEADS,
            image_size=IMAGE,
            patch_size=PATCH,
            num_frames=FRAMES,
            max_num_frames=16,
        ),
        text_config=dict(
            hidden_size=W,
            intermediate_size=TEXT_MLP,
            num_hidden_layers=TEXT_DEPTH,
            num_attention_heads=TEXT_HEADS,
            vocab_size=VOCAB,
            max_position_embeddings=CTX,
            bos_token_id=VOCAB - 2,
            eos_token_id=VOCAB - 1,
            pad_token_id=0,
        ),
    )


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("config") / "eva02at-tiny"
    tiny_config().save_pretrained(folder)
    return str(folder)


def save(sd, path, dtype=None):
    sd = {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in sd.items()}
    if str(path).endswith(".safetensors"):
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, str(path))
    return {k: v.float() for k, v in sd.items()}  # what the reference must read: the stored (rounded) values


def inputs(frames, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, frames, 3, IMAGE, IMAGE, generator=g)
    ids = torch.zeros(3, CTX, dtype=torch.long)
    for row, length in enumerate((3, 6, CTX - 2)):
        ids[row, 0] = VOCAB - 2
        ids[row, 1 : 1 + length] = torch.randint(1, VOCAB - 2, (length,), generator=g)
        ids[row, 1 + length] = VOCAB - 1
    return pixels, ids


def load(folder) -> Eva02AtModel:
    return Eva02AtModel.from_pretrained(folder, dtype=torch.float32).eval()


def embed(model, pixels=None, ids=None):
    with torch.no_grad():
        video = model.get_video_features(pixels).pooler_output if pixels is not None else None
        text = model.get_text_features(ids).pooler_output if ids is not None else None
    return video, text


def assert_close(actual, expected, tol=TOL):
    diff = (actual - expected).abs().max().item()
    assert diff <= tol, f"max |diff| {diff:.3e} > {tol:g}"


def leftovers(parent):
    return sorted(name for name in os.listdir(parent) if name.startswith("."))


# ---------------------------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------------------------

ROUND_TRIPS = {
    # name: (source, file name, stored dtype, make_source kwargs)
    "open_clip": ("open_clip", "open_clip_model.safetensors", None, {}),
    "open_clip_fused_fp16": ("open_clip", "open_clip_pytorch_model.bin", torch.float16, {"fused_qkv": True}),
    "eva_clip": ("eva_clip", "EVA02_CLIP_tiny.pt", None, {}),
    "eva_clip_fp16": ("eva_clip", "EVA02_CLIP_tiny_fp16.safetensors", torch.float16, {}),
    "timm": ("timm", "timm_eva02.safetensors", None, {}),
    "eva02at": ("eva02at", "checkpoint_best.pt", None, {"frames": FRAMES, "linear_patch": True}),
}


TIMM_INITIALISED = ("vision_model.embeddings.temporal_embed", "text_projection.weight", "logit_scale")


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_round_trip_matches_reference_forward(case, config_dir, tmp_path):
    source, filename, dtype, kwargs = ROUND_TRIPS[case]
    sd = make_source(source, seed=list(ROUND_TRIPS).index(case), **kwargs)
    path = tmp_path / filename
    if source == "eva02at":
        # An AVION training checkpoint: DDP-prefixed weights under "state_dict", argparse args and counters beside.
        stored = save(sd, tmp_path / "plain.pt")
        # A tensor and a numpy scalar at the top level too, as training scripts leave them.
        torch.save(
            {
                "state_dict": {"module." + k: v for k, v in sd.items()},
                "epoch": 3,
                "args": argparse.Namespace(model="EVA02_VIT_BASE_16", lr=3e-5),
                "best_acc1": torch.tensor(41.2),
                "best_map": np.float64(0.5),
            },
            str(path),
        )
    else:
        stored = save(sd, path, dtype)

    result = convert_checkpoint(source, path, config_dir, tmp_path / "out", projection_dim=PROJ)
    model = load(result.output_dir)
    assert result.heads_kept == {"visual_projection": True, "text_projection": source != "timm"}
    temporal = stored.get("visual.temporal_embed")

    # Images (T = 1) and clips (T = 4 = the configured frames, T = 3 resampled at inference).
    for frames in (1, FRAMES, 3):
        pixels, ids = inputs(frames)
        video, text = embed(model, pixels, ids if source != "timm" else None)
        temporal_t = lerp_frames(temporal, frames) if temporal is not None else None
        _, expected_video = reference_video(stored, source, pixels, temporal_t)
        assert_close(video, expected_video)
    if source != "timm":
        assert_close(text, reference_text(stored, source, ids)[1])
        assert model.logit_scale.item() == pytest.approx(stored["logit_scale"].item())

    if source == "timm":
        assert not result.text_tower_converted
        assert any("text tower" in note for note in result.notes)
        assert "NOT in the checkpoint" in result.summary()
        assert all(k.startswith("text_model.") or k in TIMM_INITIALISED for k in result.initialised)
    else:
        assert result.text_tower_converted
        assert result.initialised == ([] if source == "eva02at" else ["vision_model.embeddings.temporal_embed"])
    if source == "eva02at":
        assert result.temporal.startswith("kept")
    else:
        assert torch.count_nonzero(model.vision_model.embeddings.temporal_embed) == 0
        assert model.vision_model.embeddings.temporal_embed.shape == (FRAMES, D)
    if source == "eva_clip":
        rope_keys = [k for k in sd if ".rope." in k]
        assert sorted(result.dropped["RoPE tables (the model recomputes them)"]) == sorted(rope_keys)
    if dtype is torch.float16:
        assert result.checkpoint_dtypes == ["float16"]


def test_temporal_embed_interpolated_to_num_frames(config_dir, tmp_path):
    """An EVA02-AT checkpoint of 2 frames (conv1 as a Conv2d) converted to 4 frames: resampled once, linearly."""
    sd = make_source("eva02at", seed=7, frames=2)
    stored = save(sd, tmp_path / "ckpt.pt")
    result = convert_checkpoint("eva02at", tmp_path / "ckpt.pt", config_dir, tmp_path / "out", num_frames=4)
    assert result.temporal == "linearly interpolated from 2 to 4 frames"
    model = load(result.output_dir)
    assert model.config.vision_config.num_frames == 4
    expected_temporal = lerp_frames(stored["visual.temporal_embed"], 4)
    assert_close(model.vision_model.embeddings.temporal_embed.detach(), expected_temporal, 1e-6)
    pixels, _ = inputs(4)
    assert_close(embed(model, pixels)[0], reference_video(stored, "eva02at", pixels, expected_temporal)[1])
    # The converter uses the model's interpolation function, which is what the model runs at another frame count.
    emb = torch.randn(5, 8)
    for frames in (1, 3, 5, 16):
        assert torch.equal(interpolate_temporal_embed(emb, frames), model_interpolation(emb, frames))
        assert_close(interpolate_temporal_embed(emb, frames), lerp_frames(emb, frames), 1e-6)


def model_interpolation(emb, frames):
    config = tiny_config()
    config.vision_config.num_frames = emb.shape[0]
    config.vision_config.hidden_size = emb.shape[1]
    from modeling_eva02at.modeling_eva02at import Eva02AtVideoEmbeddings

    module = Eva02AtVideoEmbeddings(config.vision_config)
    module.temporal_embed.data.copy_(emb)
    return module.temporal_embedding(frames).detach()


def test_other_projection_dim_reinitialises_heads(config_dir, tmp_path):
    sd = make_source("open_clip", seed=3)
    stored = save(sd, tmp_path / "ckpt.safetensors")
    result = convert_checkpoint(
        "open_clip", tmp_path / "ckpt.safetensors", config_dir, tmp_path / "out", projection_dim=8
    )
    assert result.heads_kept == {"visual_projection": False, "text_projection": False}
    assert set(result.initialised) >= {"visual_projection.weight", "visual_projection.bias", "text_projection.weight"}
    assert "NEW (random init)" in result.summary()
    model = load(result.output_dir)
    assert model.config.projection_dim == 8 and model.visual_projection.weight.shape == (8, D)
    assert model.logit_scale.item() == pytest.approx(model.config.logit_scale_init_value)
    # The towers themselves are converted: the pooled features before the heads match the reference.
    pixels, ids = inputs(1)
    with torch.no_grad():
        pooled_video = model.vision_model(pixels).pooler_output
        pooled_text = model.text_model(input_ids=ids).pooler_output
    assert_close(pooled_video, reference_video(stored, "open_clip", pixels)[0])
    assert_close(pooled_text, reference_text(stored, "open_clip", ids)[0])


# ---------------------------------------------------------------------------------------------------------------------
# Real open_clip / timm code (fixture made by scripts/make_open_clip_reference.py)
# ---------------------------------------------------------------------------------------------------------------------


def test_matches_real_open_clip_fixture(tmp_path):
    with open(os.path.join(FIXTURE, "meta.json")) as f:
        meta = json.load(f)
    reference = load_file(os.path.join(FIXTURE, "reference.safetensors"))
    config_dir = tmp_path / "config"
    Eva02AtConfig(**meta["eva02at_config"]).save_pretrained(config_dir)
    result = convert_checkpoint(
        "open_clip",
        os.path.join(FIXTURE, "open_clip_weights.safetensors"),
        config_dir,
        tmp_path / "out",
        projection_dim=reference["image_embeds"].shape[-1],
    )
    assert all(result.heads_kept.values())
    model = load(result.output_dir)
    video, text = embed(model, reference["pixel_values"].unsqueeze(1), reference["input_ids"])
    assert_close(video, reference["image_embeds"])
    assert_close(text, reference["text_embeds"])
    assert model.logit_scale.item() == reference["logit_scale"].item()


# ---------------------------------------------------------------------------------------------------------------------
# Output folder: remote code, processor, CLI
# ---------------------------------------------------------------------------------------------------------------------

REMOTE_LOAD = r"""
import sys, torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoProcessor
folder, data = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32).eval()
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
assert type(processor).__module__.startswith("transformers_modules"), type(processor).__module__
assert not any(name.startswith("modeling_eva02at") for name in sys.modules), "the package was imported"
batch = load_file(data)
with torch.no_grad():
    video = model.get_video_features(batch["pixels"]).pooler_output
    text = model.get_text_features(batch["ids"]).pooler_output
tokens = processor(text=["a cat"])["input_ids"]
save_file({"video": video, "text": text, "tokens": tokens}, data + ".out")
"""


@pytest.mark.skipif(not os.path.isfile(os.path.join(HUB_B16, "tokenizer.json")), reason="tokenizer not built yet")
def test_output_loads_as_remote_code_in_fresh_process(config_dir, tmp_path):
    # A config folder with the hub processor files next to the tiny config.
    with_processor = tmp_path / "config_with_processor"
    shutil.copytree(config_dir, with_processor)
    for name in ("processor_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(HUB_B16, name), with_processor / name)
    sd = make_source("eva02at", seed=11, frames=FRAMES)
    save(sd, tmp_path / "ckpt.pt")
    result = convert_checkpoint("eva02at", tmp_path / "ckpt.pt", with_processor, tmp_path / "out")
    files = set(os.listdir(result.output_dir))
    assert {
        "config.json",
        "model.safetensors",
        "configuration_eva02at.py",
        "modeling_eva02at.py",
        "processing_eva02at.py",
        "video_processing_eva02at.py",
        "video_reading_eva02at.py",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= files
    with open(os.path.join(result.output_dir, "config.json")) as f:
        assert json.load(f)["auto_map"]["AutoModel"] == "modeling_eva02at.Eva02AtModel"
    with open(os.path.join(result.output_dir, "processor_config.json")) as f:
        assert json.load(f)["image_processor"]["num_frames"] == FRAMES  # follows the model's frame count

    pixels, ids = inputs(FRAMES)
    data = str(tmp_path / "batch.safetensors")
    save_file({"pixels": pixels, "ids": ids}, data)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD, result.output_dir, data],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    remote = load_file(data + ".out")
    video, text = embed(load(result.output_dir), pixels, ids)
    assert torch.equal(remote["video"], video) and torch.equal(remote["text"], text)
    assert remote["tokens"][0, 0].item() == 49406  # CLIP's start-of-text


def test_cli(config_dir, tmp_path, capsys):
    save(make_source("eva_clip", seed=5), tmp_path / "ckpt.pt")
    argv = [
        "--source",
        "eva_clip",
        "--checkpoint",
        str(tmp_path / "ckpt.pt"),
        "--config",
        config_dir,
        "--output",
        str(tmp_path / "out"),
        "--projection-dim",
        str(PROJ),
        "--num-frames",
        "8",
        "-q",
    ]
    cli_runs.convert_checkpoint(argv)
    out = capsys.readouterr().out
    assert "Converted eva_clip checkpoint" in out and "zeros for 8 frames" in out
    assert load(tmp_path / "out").config.vision_config.num_frames == 8
    # A second run refuses to overwrite, --overwrite replaces.
    with pytest.raises(ValueError, match="not empty"):
        cli_runs.convert_checkpoint(argv)
    cli_runs.convert_checkpoint(argv + ["--overwrite", "--num-frames", "2"])
    assert load(tmp_path / "out").config.vision_config.num_frames == 2
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: clear errors, nothing written
# ---------------------------------------------------------------------------------------------------------------------


def _expect_failure(source, path, config_dir, tmp_path, match, **kwargs):
    out = tmp_path / "sub" / "out"
    with pytest.raises(CheckpointError, match=match):
        convert_checkpoint(source, path, config_dir, out, **kwargs)
    assert not out.exists() and not (tmp_path / "sub").exists()
    assert leftovers(tmp_path) == []


def test_wrong_model_size_names_keys_and_shapes(config_dir, tmp_path):
    # A bigger model (the L-into-B mistake): width 48, 3 blocks, hidden 128.
    save(make_source("open_clip", hidden=48, depth=3, mlp=128), tmp_path / "big.safetensors")
    with pytest.raises(CheckpointError) as info:
        convert_checkpoint("open_clip", tmp_path / "big.safetensors", config_dir, tmp_path / "out")
    message = str(info.value)
    assert "vision_config.hidden_size: the checkpoint has 48 (visual.trunk.cls_token (1, 1, 48))" in message
    assert "vision_config.num_hidden_layers: the checkpoint has 3" in message
    assert "vision_config.intermediate_size: the checkpoint has 128 (visual.trunk.blocks.0.mlp.fc1_g.weight" in message
    assert config_dir in message
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_eva_clip_rope_buffer_reveals_wrong_head_count(tmp_path):
    config = tiny_config()
    config.vision_config.num_attention_heads = 4  # head_dim 8, but the buffers say 16
    config.save_pretrained(tmp_path / "config")
    save(make_source("eva_clip"), tmp_path / "ckpt.pt")
    _expect_failure("eva_clip", tmp_path / "ckpt.pt", str(tmp_path / "config"), tmp_path, r"visual\.rope\.freqs_cos")


def test_unexpected_missing_and_misshaped_keys_are_named(config_dir, tmp_path):
    sd = make_source("open_clip")
    sd["text.attn_mask"] = torch.full((CTX, CTX), float("-inf")).triu(1)  # documented: dropped, not an error
    sd["visual.trunk.rope.bands"] = torch.ones(4)
    save(sd, tmp_path / "buffers.safetensors")
    result = convert_checkpoint("open_clip", tmp_path / "buffers.safetensors", config_dir, tmp_path / "ok")
    assert result.dropped["the text tower's causal mask buffer (built by the model)"] == ["text.attn_mask"]
    assert result.dropped["RoPE tables (the model recomputes them)"] == ["visual.trunk.rope.bands"]

    sd = make_source("open_clip")
    sd["visual.trunk.blocks.0.gamma_1"] = torch.ones(D)
    sd["text.logit_bias"] = torch.zeros(())
    save(sd, tmp_path / "extra.safetensors")
    _expect_failure(
        "open_clip",
        tmp_path / "extra.safetensors",
        config_dir,
        tmp_path,
        r"visual\.trunk\.blocks\.0\.gamma_1.*text\.logit_bias|text\.logit_bias.*gamma_1",
    )

    sd = make_source("open_clip")
    del sd["visual.trunk.blocks.1.attn.k_proj.weight"]
    save(sd, tmp_path / "missing.safetensors")
    _expect_failure(
        "open_clip",
        tmp_path / "missing.safetensors",
        config_dir,
        tmp_path,
        r"lacks 1 tensors.*vision_model\.encoder\.layers\.1\.self_attn\.k_proj\.weight",
    )

    sd = make_source("open_clip")
    sd["visual.trunk.blocks.0.attn.proj.bias"] = torch.zeros(D + 1)
    save(sd, tmp_path / "shape.safetensors")
    _expect_failure(
        "open_clip",
        tmp_path / "shape.safetensors",
        config_dir,
        tmp_path,
        r"wrong shape: visual\.trunk\.blocks\.0\.attn\.proj\.bias \(33,\)",
    )

    sd = make_source("open_clip", fused_qkv=True)
    sd["visual.trunk.blocks.0.attn.k_bias"] = torch.ones(D)  # a real key bias cannot be dropped
    save(sd, tmp_path / "kbias.safetensors")
    _expect_failure("open_clip", tmp_path / "kbias.safetensors", config_dir, tmp_path, r"non-zero key bias")


def test_wrong_source_layout_is_explained(config_dir, tmp_path):
    save(make_source("eva_clip"), tmp_path / "eva.pt")
    _expect_failure("open_clip", tmp_path / "eva.pt", config_dir, tmp_path, r"looks like a 'eva_clip' checkpoint")
    save(make_source("open_clip"), tmp_path / "oc.pt")
    _expect_failure("timm", tmp_path / "oc.pt", config_dir, tmp_path, r"looks like a 'open_clip' checkpoint")
    _expect_failure(
        "eva_clip",
        tmp_path / "oc.pt",
        config_dir,
        tmp_path,
        r"looks like a 'open_clip' checkpoint: check --source.*visual\.trunk\.cls_token",
    )


@pytest.mark.parametrize("kind", ["truncated_pt", "truncated_safetensors", "random_bytes", "empty", "not_a_dict"])
def test_unreadable_files(kind, config_dir, tmp_path):
    path = tmp_path / f"{kind}.bin"
    if kind.startswith("truncated"):
        full = tmp_path / ("full.safetensors" if kind.endswith("safetensors") else "full.pt")
        save(make_source("open_clip"), full)
        path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    elif kind == "random_bytes":
        path.write_bytes(
            torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
            .numpy()
            .tobytes()
        )
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        torch.save([torch.zeros(2)], str(path))
    _expect_failure("open_clip", path, config_dir, tmp_path, re.escape(str(path)))


class _Exploit:
    """Unpickling this would create a file: what a malicious checkpoint would do with os.system instead."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("container", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_refused_without_running_code(container, config_dir, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"state_dict": {"visual.trunk.cls_token": torch.zeros(1, 1, D)}, "hook": _Exploit(str(marker))}
    if container == "torch_zip":
        torch.save(payload, str(path))
    else:
        with open(path, "wb") as f:
            # Protocol 2, as torch's legacy format; no tensors (they pickle through a torch global of their own).
            pickle.dump({"hook": payload["hook"]}, f, protocol=2)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r"cannot be loaded safely.*Python global (io|builtins)\.open"):
        load_checkpoint(path)
    _expect_failure("open_clip", path, config_dir, tmp_path, re.escape(str(path)))
    assert not marker.exists()


def test_existing_output_is_protected(config_dir, tmp_path):
    save(make_source("timm"), tmp_path / "timm.safetensors")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="not empty"):
        convert_checkpoint("timm", tmp_path / "timm.safetensors", config_dir, out)
    assert os.listdir(out) == ["keep.txt"]
    # A failed conversion with --overwrite leaves the old folder alone too.
    save(make_source("timm", hidden=48), tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError):
        convert_checkpoint("timm", tmp_path / "bad.safetensors", config_dir, out, overwrite=True)
    assert os.listdir(out) == ["keep.txt"] and leftovers(tmp_path) == []
    # An existing empty folder is simply filled.
    empty = tmp_path / "empty"
    empty.mkdir()
    convert_checkpoint("timm", tmp_path / "timm.safetensors", config_dir, empty)
    assert "model.safetensors" in os.listdir(empty)


def test_temporal_switches_of_the_config_are_respected(config_dir, tmp_path):
    """A config without the temporal embedding and the temporal RoPE: the checkpoint's temporal_embed is dropped and
    reported (not kept unused, not silently loaded), both switches reach the output's config.json, and the model
    cannot tell a clip from its time reversal."""
    config = Eva02AtConfig.from_pretrained(config_dir)
    config.vision_config.use_temporal_embedding = False
    config.vision_config.use_temporal_rope = False
    no_time = tmp_path / "config-no-time"
    config.save_pretrained(no_time)
    save(make_source("eva02at", seed=7, frames=4), tmp_path / "ckpt.pt")
    result = convert_checkpoint("eva02at", tmp_path / "ckpt.pt", no_time, tmp_path / "out")
    assert result.temporal == "none (use_temporal_embedding=false)"
    assert result.dropped == {
        "temporal_embed (the config sets use_temporal_embedding=false)": ["visual.temporal_embed"]
    }
    with open(tmp_path / "out" / "config.json") as handle:
        saved = json.load(handle)["vision_config"]
    assert saved["use_temporal_embedding"] is False and saved["use_temporal_rope"] is False
    model = load(result.output_dir)
    assert model.vision_model.embeddings.temporal_embed is None
    pixels, _ = inputs(4)
    forward, backward = embed(model, pixels)[0], embed(model, pixels.flip(1))[0]
    assert_close(backward, forward, 1e-5)
