#!/usr/bin/env python
"""Reference embeddings from the real open_clip / timm EVA02 code, and their comparison with converted models.

open_clip and timm need torchvision, which must never enter the project's environment (it breaks transformers
there). So the references are made in a scratch venv outside the repo, and compared in the project's venv, which
only reads the safetensors files written here:

    python3 -m venv /tmp/ocenv
    /tmp/ocenv/bin/pip install torch==2.14.1 torchvision==0.29.1 open_clip_torch timm safetensors
    # (tested with open_clip_torch 3.3.0, timm 1.0.31; on CPU the multi-GB CUDA build of torch is fine)

    # the tiny fixture used by tests/test_convert.py (committed, ~0.2 MB):
    /tmp/ocenv/bin/python scripts/make_open_clip_reference.py make tiny --out tests/fixtures/open_clip_tiny
    # the full EVA02-B-16 (random init, ~600 MB: keep it out of the repo):
    /tmp/ocenv/bin/python scripts/make_open_clip_reference.py make b16 --out /tmp/eva02_b16_open_clip

    # then, in the project's venv (converts with modeling_eva02at.conversion.convert and compares):
    .venv/bin/python scripts/make_open_clip_reference.py compare tests/fixtures/open_clip_tiny
    .venv/bin/python scripts/make_open_clip_reference.py compare /tmp/eva02_b16_open_clip \\
        --config hub_configs/eva02at-b16

`make` builds the open_clip model with random weights (pretrained=None, seeded), then adds seeded noise to every
tensor, biases and LayerNorm parameters included (they start at 0 / 1, where a wrong mapping would go unseen), and
records `encode_image` / `encode_text` (not normalised) for a seeded image batch (the model's input, already
normalised: no preprocessing is involved) and a few token sequences. `compare` converts the checkpoint with the
heads kept and T = 1 and reports the largest absolute differences of the embeddings.
"""

import argparse
import json
import os
import sys
import tempfile

import torch


WEIGHTS = "open_clip_weights.safetensors"
REFERENCE = "reference.safetensors"
META = "meta.json"

# A tiny timm EVA02 with the EVA02-CLIP block design (separate q/k/v, SwiGLU with sub-LN, inner attention LN,
# RoPE on a 16 reference grid): 32 px images, 8 px patches (4 x 4 grid), width 48, 3 heads of 16 channels.
TINY_TIMM_NAME = "eva02_tiny_test_clip_32"
TINY_TIMM_ARGS = dict(
    img_size=32,
    patch_size=8,
    embed_dim=48,
    depth=2,
    num_heads=3,
    qkv_fused=False,
    mlp_ratio=8 / 3,
    swiglu_mlp=True,
    scale_mlp=True,
    scale_attn_inner=True,
    use_rot_pos_emb=True,
    ref_feat_shape=(16, 16),
)
TINY_OPEN_CLIP = {
    "embed_dim": 24,
    "vision_cfg": {
        "image_size": 32,
        "timm_model_name": TINY_TIMM_NAME,
        "timm_model_pretrained": False,
        "timm_pool": "token",
        "timm_proj": None,
    },
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 2},
    "custom_text": True,
}
# The same sizes as an Eva02AtConfig (bos / eos are the two highest ids, as in CLIP's vocabulary).
TINY_EVA02AT = {
    "projection_dim": 24,
    "vision_config": {
        "hidden_size": 48,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 3,
        "image_size": 32,
        "patch_size": 8,
        "num_frames": 4,
    },
    "text_config": {
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "vocab_size": 64,
        "max_position_embeddings": 16,
        "bos_token_id": 62,
        "eos_token_id": 63,
        "pad_token_id": 0,
    },
}


# ---------------------------------------------------------------------------------------------------------------------
# make (scratch venv with open_clip + timm)
# ---------------------------------------------------------------------------------------------------------------------


def _register_tiny_timm_model() -> None:
    from timm.models import register_model
    from timm.models.eva import _create_eva

    def eva02_tiny_test_clip_32(pretrained=False, **kwargs):
        args = dict(TINY_TIMM_ARGS, global_pool=kwargs.pop("global_pool", "token"))
        return _create_eva(TINY_TIMM_NAME, pretrained=pretrained, **dict(args, **kwargs))

    eva02_tiny_test_clip_32.__name__ = TINY_TIMM_NAME
    register_model(eva02_tiny_test_clip_32)


def _perturb_(model: torch.nn.Module, seed: int, std: float = 0.02) -> None:
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and name != "logit_scale":
                tensor.add_(torch.randn(tensor.shape, generator=generator) * std)


def make(kind: str, out: str, seed: int = 0) -> None:
    import open_clip
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    if kind == "tiny":
        _register_tiny_timm_model()
        with tempfile.TemporaryDirectory() as folder:
            with open(os.path.join(folder, "EVA02-tiny-test.json"), "w") as f:
                json.dump(TINY_OPEN_CLIP, f)
            open_clip.add_model_config(folder)
            model = open_clip.create_model("EVA02-tiny-test", pretrained=None)
        store_dtype, image_size, num_texts = torch.float16, 32, 3
    elif kind == "b16":
        model = open_clip.create_model("EVA02-B-16", pretrained=None)
        store_dtype, image_size, num_texts = torch.float32, 224, 3
    else:
        raise ValueError(kind)
    model.eval()
    _perturb_(model, seed)

    state_dict = {k: v.detach().to(store_dtype).contiguous() for k, v in model.state_dict().items()}
    # Reference outputs of the weights exactly as stored (an fp16 fixture is run in fp32 on the rounded values).
    model.load_state_dict({k: v.float() for k, v in state_dict.items()})

    generator = torch.Generator().manual_seed(seed + 2)
    pixel_values = torch.randn(2, 3, image_size, image_size, generator=generator)
    if kind == "tiny":
        ctx, vocab = TINY_OPEN_CLIP["text_cfg"]["context_length"], TINY_OPEN_CLIP["text_cfg"]["vocab_size"]
        input_ids = torch.zeros(num_texts, ctx, dtype=torch.long)
        for row, length in enumerate((5, 9, ctx - 2)):
            input_ids[row, 0] = vocab - 2  # start of text
            input_ids[row, 1 : 1 + length] = torch.randint(1, vocab - 2, (length,), generator=generator)
            input_ids[row, 1 + length] = vocab - 1  # end of text, the highest id (open_clip pools at the argmax)
    else:
        tokenizer = open_clip.get_tokenizer("EVA02-B-16")
        input_ids = tokenizer(
            [
                "a photo of a cat",
                "someone cuts an onion on a wooden board",
                "open the fridge door and take out the milk",
            ]
        )[:num_texts]

    with torch.no_grad():
        image_embeds = model.encode_image(pixel_values)
        text_embeds = model.encode_text(input_ids)

    os.makedirs(out, exist_ok=True)
    save_file(state_dict, os.path.join(out, WEIGHTS))
    save_file(
        {
            "pixel_values": pixel_values.contiguous(),
            "input_ids": input_ids.contiguous(),
            "image_embeds": image_embeds.contiguous(),
            "text_embeds": text_embeds.contiguous(),
            "logit_scale": model.logit_scale.detach().reshape(1).contiguous(),
        },
        os.path.join(out, REFERENCE),
    )
    meta = {
        "kind": kind,
        "seed": seed,
        "noise_std": 0.02,
        "open_clip_model": "EVA02-tiny-test" if kind == "tiny" else "EVA02-B-16",
        "open_clip_config": TINY_OPEN_CLIP if kind == "tiny" else open_clip.get_model_config("EVA02-B-16"),
        "timm_model_args": TINY_TIMM_ARGS if kind == "tiny" else "eva02_base_patch16_clip_224",
        "eva02at_config": TINY_EVA02AT if kind == "tiny" else None,
        "weights_dtype": str(store_dtype).replace("torch.", ""),
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__, "timm": timm.__version__},
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    with open(os.path.join(out, META), "w") as f:
        json.dump(meta, f, indent=2)
    print(
        f"wrote {out}: {len(state_dict)} tensors ({meta['weights_dtype']}), image_embeds {tuple(image_embeds.shape)},"
        f" text_embeds {tuple(text_embeds.shape)}; open_clip {open_clip.__version__}, timm {timm.__version__}"
    )


# ---------------------------------------------------------------------------------------------------------------------
# compare (project venv with modeling_eva02at)
# ---------------------------------------------------------------------------------------------------------------------


def compare(folder: str, config_dir: str | None = None, tolerance: float = 1e-4) -> dict:
    """Convert `folder`'s open_clip weights with the heads kept and compare embeddings; returns the max differences."""
    from safetensors.torch import load_file

    from modeling_eva02at import Eva02AtConfig, Eva02AtModel
    from modeling_eva02at.conversion.convert import convert_checkpoint

    with open(os.path.join(folder, META)) as f:
        meta = json.load(f)
    reference = load_file(os.path.join(folder, REFERENCE))
    projection_dim = reference["image_embeds"].shape[-1]
    with tempfile.TemporaryDirectory() as work:
        if config_dir is None:
            config_dir = os.path.join(work, "config")
            Eva02AtConfig(**meta["eva02at_config"]).save_pretrained(config_dir)
        output = os.path.join(work, "converted")
        result = convert_checkpoint(
            "open_clip",
            os.path.join(folder, WEIGHTS),
            config_dir,
            output,
            projection_dim=projection_dim,
            save_processor=False,
        )
        print(result.summary())
        model = Eva02AtModel.from_pretrained(output, dtype=torch.float32).eval()
        with torch.no_grad():
            video = model.get_video_features(reference["pixel_values"].unsqueeze(1)).pooler_output
            text = model.get_text_features(reference["input_ids"]).pooler_output

    def max_diff(a, b, normalise=False):
        if normalise:
            a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        return (a - b).abs().max().item()

    diffs = {
        "image_embeds": max_diff(video, reference["image_embeds"]),
        "text_embeds": max_diff(text, reference["text_embeds"]),
        "image_embeds_normalised": max_diff(video, reference["image_embeds"], normalise=True),
        "text_embeds_normalised": max_diff(text, reference["text_embeds"], normalise=True),
        "logit_scale": (model.logit_scale.detach() - reference["logit_scale"][0]).abs().item(),
    }
    scale = {
        "image_embeds": reference["image_embeds"].abs().max().item(),
        "text_embeds": reference["text_embeds"].abs().max().item(),
    }
    print(
        f"{meta['open_clip_model']} (open_clip {meta['versions']['open_clip']}, timm {meta['versions']['timm']}) vs "
        f"converted Eva02AtModel, T = 1, heads kept:"
    )
    for name, value in diffs.items():
        extra = f"  (largest |value| {scale[name]:.3g})" if name in scale else ""
        print(f"  max |diff| {name}: {value:.3e}{extra}")
    worst = max(diffs.values())
    print(("OK" if worst <= tolerance else "FAILED") + f": largest difference {worst:.3e} (tolerance {tolerance:g})")
    return diffs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make_parser = commands.add_parser("make", help="write weights + reference embeddings (needs open_clip and timm)")
    make_parser.add_argument("kind", choices=("tiny", "b16"))
    make_parser.add_argument("--out", required=True)
    make_parser.add_argument("--seed", type=int, default=0)
    compare_parser = commands.add_parser("compare", help="convert and compare (needs modeling_eva02at)")
    compare_parser.add_argument("folder")
    compare_parser.add_argument("--config", default=None, help="Eva02At config folder (default: the one in meta.json)")
    compare_parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)
    if args.command == "make":
        make(args.kind, args.out, args.seed)
        return 0
    diffs = compare(args.folder, args.config, args.tolerance)
    return 0 if max(diffs.values()) <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
