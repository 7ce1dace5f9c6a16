"""Forward speed of the EVA02-AT video tower against the machine's matmul peak, measured in the same run.

    python benchmarks/bench_encoder.py                 # B/16, T = 4 and 16, batch 1: fp32 (and bf16) on CPU
    python benchmarks/bench_encoder.py --preset l14 --frames 16 --batch 2

On the CPU each forward is timed against a straightforward timm-style implementation (same weights; q and k rotated
twice with rotate-half arithmetic), alternating rep by rep in one process so machine noise hits both alike. The
script tunes glibc's allocator (modeling_eva02at.utils.runtime.tune_cpu_allocator) and, unless --no-compare, first runs
itself with the default allocator in a subprocess, so both settings come from the same run.

Where the CPU computes bfloat16 natively (AMX, AVX512-BF16; or with --bf16) it also times a bf16-cast model and bf16
autocast over the float32 model, side by side with float32 in the same alternation, and prints each one's speed
against float32, its share of the bf16 matmul peak and the cosine of its embeddings to float32's.

On a CUDA machine it runs bf16 (autocast) with sdpa (and flash_attention_2 if installed) and prints model FLOP
utilisation against the best bf16 matmul rate of the model's own shapes.

The "peak" is the best rate of large matrix products with the model's own shapes (the q/k/v/out projections, the
SwiGLU matrices, the batched attention products) timed in this process, so the ratio says how much of the forward
is spent outside matmul-bound work (RoPE, norms, softmax, copies).
"""

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from modeling_eva02at import Eva02AtConfig, Eva02AtVisionConfig
from modeling_eva02at.modeling_eva02at import Eva02AtVisionModel
from modeling_eva02at.utils.runtime import tune_cpu_allocator


HUB_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub_configs")


def vision_config(preset: str) -> Eva02AtVisionConfig:
    folder = os.path.join(HUB_CONFIGS, {"b16": "eva02at-b16", "l14": "eva02at-l14"}[preset])
    return Eva02AtConfig.from_pretrained(folder).vision_config


def forward_flops(config: Eva02AtVisionConfig, frames: int, batch: int) -> float:
    """Multiply-adds x 2 of the video tower's forward: patch embedding, projections, attention, SwiGLU, head."""
    d, h, p = config.hidden_size, config.intermediate_size, config.patch_size
    patches = (config.image_size // p) ** 2
    n = 1 + frames * patches
    per_layer = 8 * n * d * d + 4 * n * n * d + 6 * n * d * h
    embed = 2 * frames * patches * (config.num_channels * p * p) * d
    return batch * (embed + config.num_hidden_layers * per_layer)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_it(fn, device, reps: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def matmul_peak(config: Eva02AtVisionConfig, frames: int, batch: int, device, dtype, reps: int) -> dict:
    """Best FLOP/s of the model's own large matrix products at this (frames, batch)."""
    d, h, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    n = 1 + frames * (config.image_size // config.patch_size) ** 2
    rows = batch * n
    mk = lambda *s: torch.randn(*s, device=device, dtype=dtype)  # noqa: E731
    cases = {
        "proj (BN x D) @ (D x D)": (mk(rows, d), mk(d, d), 2 * rows * d * d),
        "fc1 (BN x D) @ (D x h)": (mk(rows, d), mk(d, h), 2 * rows * d * h),
        "fc2 (BN x h) @ (h x D)": (mk(rows, h), mk(h, d), 2 * rows * h * d),
        "attn q @ k^T (BH x N x d)": (
            mk(batch * heads, n, d // heads),
            mk(batch * heads, d // heads, n),
            2 * batch * n * n * d,
        ),
    }
    rates = {}
    with torch.no_grad():
        for name, (a, b, flops) in cases.items():
            best = min(time_it(lambda a=a, b=b: torch.matmul(a, b), device, reps))
            rates[name] = flops / best
    return rates


def timm_style_attention_forward(self, hidden_states, rope, **kwargs):
    """The straightforward baseline: rotate-half arithmetic on real tensors, the cls token sliced off and put back,
    q and k rotated twice (spatial table, then temporal table), as a timm-style EVA block extended to time would."""

    def rotate_half(x):
        a, b = x.unflatten(-1, (-1, 2)).unbind(-1)
        return torch.stack((-b, a), dim=-1).flatten(-2)

    def rotate(x, angles):  # x (B, L, H, d); angles (L, d/2)
        cos = angles.cos().repeat_interleave(2, -1)[:, None]
        sin = angles.sin().repeat_interleave(2, -1)[:, None]
        return x * cos + rotate_half(x) * sin

    heads = (*hidden_states.shape[:-1], self.num_heads, self.head_dim)
    spatial, temporal = self.baseline_tables
    outputs = []
    for proj in (self.q_proj, self.k_proj):
        x = proj(hidden_states).view(heads)
        patches = rotate(rotate(x[:, 1:], spatial), temporal)
        outputs.append(torch.cat((x[:, :1], patches), dim=1).transpose(1, 2))
    value = self.v_proj(hidden_states).view(heads).transpose(1, 2)
    out = torch.nn.functional.scaled_dot_product_attention(outputs[0], outputs[1], value, scale=self.scaling)
    return self.out_proj(self.inner_norm(out.transpose(1, 2).reshape(hidden_states.shape))), None


def as_timm_style_baseline(model: Eva02AtVisionModel, frames: int) -> Eva02AtVisionModel:
    """Swap every attention of `model` for the baseline (same weights, same maths, straightforward RoPE)."""
    import types

    from modeling_eva02at.modeling_eva02at import st_rope_angles

    config = model.config
    grid = config.image_size // config.patch_size
    head_dim = config.hidden_size // config.num_attention_heads
    spatial = st_rope_angles(frames, (grid, grid), head_dim, temporal=False)
    temporal = st_rope_angles(frames, (grid, grid), head_dim) - spatial
    for layer in model.encoder.layers:
        layer.self_attn.baseline_tables = (spatial, temporal)
        layer.self_attn.forward = types.MethodType(timm_style_attention_forward, layer.self_attn)
    return model


def run(args) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    config = vision_config(args.preset)
    # CPU: float32 (with the timm-style baseline), and bfloat16 where the CPU computes it natively (or --bf16), both
    # as a bf16-cast model and as bf16 autocast over the float32 model. CUDA: bf16 autocast.
    if device.type == "cuda":
        bf16 = True
    else:
        from modeling_eva02at.utils.runtime import native_bf16

        bf16 = args.bf16 or native_bf16(device) is not None
    results = []
    impls = list(args.attn or ["sdpa"])
    if device.type == "cuda" and not args.attn:
        try:
            import flash_attn  # noqa: F401

            impls.append("flash_attention_2")
        except ImportError:
            pass
    # The peak is a property of the machine: the best rate of any of the model's shapes at any frame count, timed
    # with more repetitions than the model (a single noisy reading would otherwise move every ratio).
    peak_dtypes = ([torch.float32] if device.type == "cpu" else []) + ([torch.bfloat16] if bf16 else [])
    peaks = {
        (frames, dtype): matmul_peak(config, frames, args.batch, device, dtype, reps=3 * args.reps)
        for frames in args.frames
        for dtype in peak_dtypes
    }
    best_peak = {
        dtype: max(max(rates.values()) for (_, d), rates in peaks.items() if d == dtype) for dtype in peak_dtypes
    }
    for frames in args.frames:
        for impl in impls:
            config._attn_implementation = impl
            pixels = torch.randn(args.batch, frames, 3, config.image_size, config.image_size, device=device)
            model = Eva02AtVisionModel(config).to(device).eval()
            # name: (model, autocast dtype or None, compute dtype)
            variants = {}
            if device.type == "cpu":
                variants["eva02at fp32"] = (model, None, torch.float32)
                baseline = Eva02AtVisionModel(config).to(device).eval()
                baseline.load_state_dict(model.state_dict())
                variants["timm-style baseline fp32"] = (as_timm_style_baseline(baseline, frames), None, torch.float32)
                if bf16:
                    cast = Eva02AtVisionModel(config).to(device).eval()
                    cast.load_state_dict(model.state_dict())
                    variants["eva02at bf16 (cast)"] = (cast.to(torch.bfloat16), None, torch.bfloat16)
                    variants["eva02at bf16 autocast"] = (model, torch.bfloat16, torch.bfloat16)
            else:
                variants["eva02at bf16 autocast"] = (model, torch.bfloat16, torch.bfloat16)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()

            def forward(variant, pixels=pixels):
                network, autocast_dtype, _ = variant
                with (
                    torch.inference_mode(),
                    torch.autocast(
                        device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
                    ),
                ):
                    return network(pixels).pooler_output.float()

            outputs = {name: forward(variant) for name, variant in variants.items()}  # warm-up, and the same maths
            if "timm-style baseline fp32" in outputs:
                a, b = outputs["eva02at fp32"], outputs["timm-style baseline fp32"]
                assert torch.allclose(a, b, atol=1e-4), "the baseline must compute the same function"
            reference = outputs.get("eva02at fp32")
            # Alternate the implementations rep by rep so that machine noise hits all alike.
            times = {name: [] for name in variants}
            for _ in range(args.reps):
                for name, variant in variants.items():
                    times[name].extend(time_it(lambda variant=variant: forward(variant), device, reps=1, warmup=0))
            flops = forward_flops(config, frames, args.batch)
            for name, model_times in times.items():
                seconds = statistics.median(model_times)
                dtype = variants[name][2]
                peak = peaks[(frames, dtype)]
                row = {
                    "preset": args.preset,
                    "implementation": name,
                    "allocator": "default" if args.default_allocator or device.type == "cuda" else "tuned",
                    "device": torch.cuda.get_device_name()
                    if device.type == "cuda"
                    else f"cpu x{torch.get_num_threads()}",
                    "dtype": str(dtype).replace("torch.", ""),
                    "autocast": variants[name][1] is not None,
                    "attn": impl,
                    "frames": frames,
                    "batch": args.batch,
                    "tokens": 1 + frames * (config.image_size // config.patch_size) ** 2,
                    "forward_s_median": round(seconds, 4),
                    "forward_s_all": [round(t, 4) for t in model_times],
                    "gflop": round(flops / 1e9, 1),
                    "achieved_gflops": round(flops / seconds / 1e9, 1),
                    "matmul_peak_gflops": round(best_peak[dtype] / 1e9, 1),
                    "fraction_of_peak": round(flops / seconds / best_peak[dtype], 3),
                    "matmul_rates_gflops": {k: round(v / 1e9, 1) for k, v in peak.items()},
                }
                if reference is not None:
                    row["speed_vs_fp32"] = round(statistics.median(times["eva02at fp32"]) / seconds, 3)
                    row["cosine_to_fp32_min"] = round(
                        torch.nn.functional.cosine_similarity(outputs[name], reference).min().item(), 6
                    )
                if device.type == "cuda":
                    row["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                else:
                    # ru_maxrss is the process high-water mark (KiB on Linux): a bound that includes earlier runs.
                    row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
                results.append(row)
                versus = (
                    f"  {row['speed_vs_fp32']:5.2f}x fp32, cosine {row['cosine_to_fp32_min']:.5f}"
                    if reference is not None
                    else ""
                )
                print(
                    f"{row['preset']} T={frames:>2} B={args.batch} {impl:<5} {row['allocator']:<7} alloc "
                    f"{name:<25} forward {seconds:7.3f} s (median of {args.reps})  {row['gflop']:7.1f} GFLOP  "
                    f"{row['achieved_gflops']:8.1f} GFLOP/s  {row['dtype']} peak {row['matmul_peak_gflops']:8.1f}  "
                    f"=> {100 * row['fraction_of_peak']:5.1f} % of matmul peak{versus}",
                    flush=True,
                )
            if "timm-style baseline fp32" in times:
                ratio = statistics.median(times["timm-style baseline fp32"]) / statistics.median(times["eva02at fp32"])
                print(f"    eva02at is {ratio:.2f}x the speed of the baseline (same process, alternating reps)")
            del variants, model, outputs
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["b16", "l14"], default="b16")
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--attn", nargs="+", default=None, help="attention implementations to time")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even if CUDA is available")
    parser.add_argument("--bf16", action="store_true", help="time bfloat16 on a CPU without native support too")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--default-allocator", action="store_true", help="leave glibc's malloc settings alone")
    parser.add_argument("--no-compare", action="store_true", help="skip the comparison runs on CPU")
    args = parser.parse_args(argv)
    on_cpu = args.cpu or not torch.cuda.is_available()
    if on_cpu and not (args.default_allocator or args.no_compare):
        # mallopt settings are sticky for a process: the baseline needs a process of its own.
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--default-allocator",
            "--cpu",
            "--preset",
            args.preset,
            "--batch",
            str(args.batch),
            "--reps",
            str(args.reps),
            "--frames",
            *map(str, args.frames),
        ]
        if args.attn:
            command += ["--attn", *args.attn]
        subprocess.run(command, check=True)
    if on_cpu and not args.default_allocator:
        tune_cpu_allocator()
    results = run(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
