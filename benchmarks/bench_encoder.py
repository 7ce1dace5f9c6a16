"""Forward speed of the EVA02-AT video tower against the machine's matmul peak, measured in the same run.

    python benchmarks/bench_encoder.py                 # B/16, T = 4 and 16, batch 1, fp32 on CPU
    python benchmarks/bench_encoder.py --preset l14 --frames 16 --batch 2

On the CPU the script tunes glibc's allocator (modeling_eva02at.runtime.tune_cpu_allocator) and, unless
--no-compare, re-runs itself with the default allocator in a subprocess so both figures come from the same run.

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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at import Eva02AtConfig, Eva02AtVisionConfig  # noqa: E402
from modeling_eva02at.modeling_eva02at import Eva02AtVisionModel  # noqa: E402
from modeling_eva02at.runtime import tune_cpu_allocator  # noqa: E402

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
        "attn q @ k^T (BH x N x d)": (mk(batch * heads, n, d // heads), mk(batch * heads, d // heads, n), 2 * batch * n * n * d),
    }
    rates = {}
    with torch.no_grad():
        for name, (a, b, flops) in cases.items():
            best = min(time_it(lambda: torch.matmul(a, b), device, reps))
            rates[name] = flops / best
    return rates


def run(args) -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    config = vision_config(args.preset)
    results = []
    impls = list(args.attn or ["sdpa"])
    if device.type == "cuda" and not args.attn:
        try:
            import flash_attn  # noqa: F401

            impls.append("flash_attention_2")
        except ImportError:
            pass
    for frames in args.frames:
        peak = matmul_peak(config, frames, args.batch, device, dtype, reps=args.reps)
        best_peak = max(peak.values())
        for impl in impls:
            config._attn_implementation = impl
            model = Eva02AtVisionModel(config).to(device).eval()
            pixels = torch.randn(args.batch, frames, 3, config.image_size, config.image_size, device=device)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()

            def forward():
                with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
                    model(pixels)

            times = time_it(forward, device, reps=args.reps)
            seconds = statistics.median(times)
            flops = forward_flops(config, frames, args.batch)
            row = {
                "preset": args.preset,
                "allocator": "default" if args.default_allocator or device.type == "cuda" else "tuned",
                "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
                "dtype": str(dtype).replace("torch.", ""),
                "attn": impl,
                "frames": frames,
                "batch": args.batch,
                "tokens": 1 + frames * (config.image_size // config.patch_size) ** 2,
                "forward_s_median": round(seconds, 4),
                "forward_s_all": [round(t, 4) for t in times],
                "gflop": round(flops / 1e9, 1),
                "achieved_gflops": round(flops / seconds / 1e9, 1),
                "matmul_peak_gflops": round(best_peak / 1e9, 1),
                "fraction_of_peak": round(flops / seconds / best_peak, 3),
                "matmul_rates_gflops": {k: round(v / 1e9, 1) for k, v in peak.items()},
            }
            if device.type == "cuda":
                row["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            else:
                # ru_maxrss is the process high-water mark (KiB on Linux): a bound that includes earlier runs.
                row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
            results.append(row)
            print(
                f"{row['preset']} T={frames:>2} B={args.batch} {row['dtype']} {impl:<6} {row['allocator']:<7} alloc  "
                f"forward {seconds:7.3f} s "
                f"(median of {args.reps})  {row['gflop']:7.1f} GFLOP  {row['achieved_gflops']:7.1f} GFLOP/s  "
                f"peak {row['matmul_peak_gflops']:7.1f}  => {100 * row['fraction_of_peak']:5.1f} % of matmul peak",
                flush=True,
            )
            del model
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["b16", "l14"], default="b16")
    parser.add_argument("--frames", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--attn", nargs="+", default=None, help="attention implementations to time")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even if CUDA is available")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--default-allocator", action="store_true", help="leave glibc's malloc settings alone")
    parser.add_argument("--no-compare", action="store_true", help="skip the default-allocator run on CPU")
    args = parser.parse_args(argv)
    on_cpu = args.cpu or not torch.cuda.is_available()
    if on_cpu and not args.default_allocator and not args.no_compare:
        # mallopt settings are sticky for a process: the baseline needs a process of its own.
        command = [sys.executable, os.path.abspath(__file__), "--default-allocator", "--cpu", "--preset", args.preset,
                   "--batch", str(args.batch), "--reps", str(args.reps), "--frames", *map(str, args.frames)]
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
