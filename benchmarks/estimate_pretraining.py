"""What EgoClip pretraining of EVA02-AT-B/16 needs on one H200-class GPU: memory at a batch of 256 per GPU and time
per epoch, from a CPU measurement and arithmetic (docs/pretraining.md).

    python benchmarks/estimate_pretraining.py                    # B/16 (hub_configs/eva02at-b16), 4 frames
    python benchmarks/estimate_pretraining.py --batch 256 --mfu 0.45 --peak-tflops 989 --clips 3847723

1. Activation memory per sample, measured on the CPU at batches 1 and 2 (the difference, so that nothing shared by
   the batch counts): every tensor autograd saves for the backward pass is recorded through
   `torch.autograd.graph.saved_tensors_hooks` (parameters excluded, each storage once), under bf16 autocast as
   `--bf16` training runs on a GPU. With gradient checkpointing (non-reentrant, per encoder layer) the forward pass
   keeps only what lies outside the layers plus each layer's input; the backward pass then rebuilds one layer at a
   time, so the peak adds one layer's activations for the whole batch.
2. FLOPs per sample, analytically from the config (matrix multiplications only, 2 per multiply-add): the video tower
   on 1 + T * (224 / 16)^2 tokens, the text tower on 77 tokens, the projections. Training costs 3 forward passes
   (backward = 2), 4 with gradient checkpointing (the forward runs again).
3. Memory at the batch size: fp32 weights, fp32 gradients and AdamW's two fp32 moments (16 bytes per parameter) plus
   the activations; time per epoch at an assumed model-FLOPs utilisation of a dense bf16 peak.

The CPU's attention is PyTorch's fused scaled-dot-product kernel, which, like FlashAttention on the GPU, keeps no
(tokens x tokens) matrix for the backward pass.
"""

from __future__ import annotations

import argparse
import os

import torch


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GIB = 2**30
TEXT_TOKENS = 77  # the processor pads captions to CLIP's context length


def forward_flops(config, num_frames: int, text_tokens: int = TEXT_TOKENS) -> dict[str, float]:
    """Matrix-multiplication FLOPs of one sample's forward pass (2 per multiply-add), per tower."""
    vision, text = config.vision_config, config.text_config
    patches = num_frames * (vision.image_size // vision.patch_size) ** 2
    n, d, f = 1 + patches, vision.hidden_size, vision.intermediate_size
    # q, k, v, out projections; QK^T and AV; SwiGLU's two input matrices and its output matrix
    vision_layer = 2 * 4 * n * d * d + 2 * 2 * n * n * d + 2 * 3 * n * d * f
    patch_embed = 2 * patches * (vision.num_channels * vision.patch_size**2) * d
    t, e, g = text_tokens, text.hidden_size, text.intermediate_size
    text_layer = 2 * 4 * t * e * e + 2 * 2 * t * t * e + 2 * 2 * t * e * g  # CLIP's GELU MLP: two matrices
    projections = 2 * (d + e) * config.projection_dim
    return {
        "video": vision.num_hidden_layers * vision_layer + patch_embed,
        "text": text.num_hidden_layers * text_layer,
        "projections": projections,
        "tokens": n,
    }


def saved_activation_bytes(model, batch: int, num_frames: int, checkpointing: bool, bf16: bool) -> tuple[int, int]:
    """(all bytes, the largest encoder layer's bytes) that one forward pass of `batch` samples leaves for the
    backward pass, parameters excluded."""
    vision = model.config.vision_config
    pixels = torch.randn(batch, num_frames, 3, vision.image_size, vision.image_size)
    input_ids = torch.randint(0, 49000, (batch, TEXT_TOKENS))
    parameters = {p.data_ptr() for p in model.parameters()}
    storages: dict[int, tuple[int, str | None]] = {}  # storage -> (bytes, the layer that saved it)
    current: list[str | None] = [None]

    def pack(tensor):
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in parameters:
            storages.setdefault(pointer, (tensor.untyped_storage().nbytes(), current[0]))
        return tensor

    def enter(module, args):
        current[0] = module.name
        if checkpointing:  # the checkpoint keeps the layer's input; its own hooks hide what the layer saves from ours
            storages.setdefault(args[0].untyped_storage().data_ptr(), (args[0].untyped_storage().nbytes(), None))

    def leave(module, args, output):
        current[0] = None

    if checkpointing:
        model.activation_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.activation_checkpointing_disable()
    handles = []
    for name, module in model.named_modules():
        if type(module).__name__ in ("Eva02AtEncoderLayer", "CLIPEncoderLayer"):
            module.name = name
            handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values_videos=pixels)
    for handle in handles:
        handle.remove()
    del out
    per_layer: dict[str, int] = {}
    for size, layer in storages.values():
        if layer is not None:
            per_layer[layer] = per_layer.get(layer, 0) + size
    return sum(size for size, _ in storages.values()), max(per_layer.values(), default=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "hub_configs", "eva02at-b16"))
    parser.add_argument("--num-frames", type=int, default=4, help="frames per clip (pretraining: 4)")
    parser.add_argument("--batch", type=int, default=256, help="samples per GPU")
    parser.add_argument("--mfu", type=float, default=0.45, help="assumed model-FLOPs utilisation")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100 / H200 SXM: 989)")
    parser.add_argument("--gpu-memory-gib", type=float, default=139.0, help="usable memory (H200: ~139 GiB)")
    parser.add_argument("--clips", type=int, default=3_847_723, help="clips per epoch (EgoClip)")
    args = parser.parse_args(argv)

    from modeling_eva02at import Eva02AtConfig, Eva02AtModel

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    config = Eva02AtConfig.from_pretrained(args.config)
    config.vision_config.num_frames = args.num_frames
    model = Eva02AtModel(config)
    num_parameters = sum(p.numel() for p in model.parameters())

    print(
        f"EVA02-AT ({os.path.relpath(args.config, REPO)}), {args.num_frames} frames, {num_parameters / 1e6:.1f} M "
        "parameters\n"
    )
    print("Activations saved for the backward pass, per sample (measured on this CPU: batch 2 minus batch 1)")
    per_sample, per_layer = {}, {}
    for bf16 in (False, True):
        for checkpointing in (False, True):
            (one, layer_one), (two, layer_two) = (
                saved_activation_bytes(model, b, args.num_frames, checkpointing, bf16) for b in (1, 2)
            )
            per_sample[bf16, checkpointing], per_layer[bf16, checkpointing] = two - one, layer_two - layer_one
            print(
                f"  {'bf16 autocast' if bf16 else 'fp32         '}  checkpointing {'on ' if checkpointing else 'off'}"
                f"  {(two - one) / 2**20:8.1f} MiB"
            )
    full, kept = per_sample[True, False], per_sample[True, True]
    one_layer = per_layer[True, False]  # rebuilt during the backward pass, for the whole batch
    print(
        f"  (bf16: the largest encoder layer saves {one_layer / 2**20:.1f} MiB per sample; with checkpointing it is "
        "rebuilt, one layer at a time, in the backward pass)"
    )

    flops = forward_flops(config, args.num_frames)
    forward = flops["video"] + flops["text"] + flops["projections"]
    print(f"\nFLOPs per sample (analytic, {flops['tokens']} video tokens, {TEXT_TOKENS} text tokens)")
    print(
        f"  forward: video {flops['video'] / 1e9:.1f} G + text {flops['text'] / 1e9:.1f} G + projections = "
        f"{forward / 1e9:.1f} GFLOP"
    )
    print(
        f"  training step: {3 * forward / 1e9:.1f} GFLOP (3x forward), {4 * forward / 1e9:.1f} GFLOP with "
        "gradient checkpointing (4x)"
    )

    states = 16 * num_parameters
    print(f"\nMemory at {args.batch} samples per GPU (bf16 autocast; weights, gradients, AdamW moments in fp32)")
    print(f"  weights + gradients + AdamW moments: {states / GIB:.1f} GiB (16 bytes x {num_parameters / 1e6:.1f} M)")
    for name, activations in (("off", full * args.batch), ("on ", kept * args.batch + one_layer * args.batch)):
        total = states + activations
        verdict = "fits" if total < args.gpu_memory_gib * GIB else "does NOT fit"
        print(
            f"  checkpointing {name}: activations {activations / GIB:6.1f} GiB, total {total / GIB:6.1f} GiB "
            f"({verdict} in {args.gpu_memory_gib:.0f} GiB, before the allocator's slack and CUDA workspaces)"
        )

    rate = args.mfu * args.peak_tflops * 1e12
    print(
        f"\nTime per epoch of {args.clips:,} clips on one GPU at {100 * args.mfu:.0f} % of {args.peak_tflops:.0f} "
        "TFLOP/s (an assumption: measure it)"
    )
    for name, factor in (("off", 3), ("on ", 4)):
        seconds = args.clips * factor * forward / rate
        print(
            f"  checkpointing {name}: {args.clips * 1.0 / seconds:7.0f} clips/s, {seconds / 3600:5.1f} h per epoch, "
            f"{5 * seconds / 3600:6.1f} h for the recipe's 5 epochs"
        )
    return {"parameters": num_parameters, "activations_per_sample": per_sample, "forward_flops": forward}


if __name__ == "__main__":
    main()
