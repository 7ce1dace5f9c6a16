"""Real-valued RoPE (the model's `apply_rotary`) against the complex multiply it replaced, on CPU, in one process.

    python benchmarks/bench_rope.py                   # B/16: the rotation alone at T = 16, the forward at T = 16 and 4
    python benchmarks/bench_rope.py --threads 2 1     # benchmarks/results/cpu_rope.txt: with 2 threads, then with 1
    python benchmarks/bench_rope.py --frames 4 --reps 9 --output ""   # print only

The complex implementation is kept here as a private copy: each channel pair read as a complex number, upcast to
float32 whatever the activations' dtype, times a complex64 table, cast back. The real one rotates pairs with cos / sin
tables in the activations' own dtype.

Two measurements, each in float32 and bfloat16 (the model cast with `.to(torch.bfloat16)`), complex vs real:

- the rotation alone on a B/16-sized q, (batch 1, 1 + 16 * 196 tokens, 12 heads, head_dim 64), as the attention
  applies it to the q projection's output;
- the whole forward of the B/16 video tower (`Eva02AtVisionModel(Eva02AtVisionConfig())`, random init, batch 1,
  224 x 224 frames), the two variants sharing their weights and differing only in the attention's rotation.

All variants of a measurement alternate rep by rep so that machine noise (this VM is shared) hits them alike. The
table gives wall-time medians, and "paired": the median [min, max] over reps of real's time over complex's within the
same rep, in wall time and in this process's CPU time. With --threads 1 the CPU time leaves out the time other
processes took from the run, so its paired ratio shows a difference of a percent or two even on a busy machine; with
several threads it also counts the threads' spin-waits. The load average before and after is recorded too. glibc's
allocator is tuned as the command lines tune it (modeling_eva02at.utils.runtime.tune_cpu_allocator) unless
--default-allocator.
"""

import argparse
import json
import os
import statistics
import sys
import time
import types

import torch
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# The model module itself, not the package's lazy exports: it imports only its configuration.
from modeling_eva02at.configuration_eva02at import Eva02AtVisionConfig  # noqa: E402
from modeling_eva02at.modeling_eva02at import (  # noqa: E402
    Eva02AtVisionModel,
    apply_rotary,
    eager_attention_forward,
    st_rope_angles,
    st_rope_tables,
)
from modeling_eva02at.utils.runtime import tune_cpu_allocator  # noqa: E402


RESULTS = os.path.join(REPO, "benchmarks", "results")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def complex_apply_rotary(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """The rotation before the real-valued one: pairs as complex numbers times cos + i sin, in float32."""
    pairs = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))
    return torch.view_as_real(pairs * freqs).flatten(-2).to(x.dtype)


def complex_tables(config: Eva02AtVisionConfig, frames: int) -> torch.Tensor:
    """complex64 (1 + T * P, 1, head_dim / 2), from the same exact float32 (cos, sin) table as the model's."""
    grid = config.image_size // config.patch_size
    angles = st_rope_angles(
        frames,
        (grid, grid),
        config.hidden_size // config.num_attention_heads,
        theta=config.rope_theta,
        ref_grid=config.rope_ref_grid,
    )
    return torch.view_as_complex(st_rope_tables(angles))[:, None]


def complex_attention_forward(self, hidden_states, rope, **kwargs):
    """Eva02AtAttention.forward with the complex rotation (the model's tables, passed as `rope`, go unused)."""
    heads_shape = (*hidden_states.shape[:-1], self.num_heads, self.head_dim)
    query = complex_apply_rotary(self.q_proj(hidden_states).view(heads_shape), self.complex_freqs).transpose(1, 2)
    key = complex_apply_rotary(self.k_proj(hidden_states).view(heads_shape), self.complex_freqs).transpose(1, 2)
    value = self.v_proj(hidden_states).view(heads_shape).transpose(1, 2)
    interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
    output, weights = interface(self, query, key, value, None, scaling=self.scaling, dropout=0.0, **kwargs)
    output = output.reshape(*hidden_states.shape[:-1], self.embed_dim)
    return self.out_proj(self.inner_norm(output)), weights


def as_complex_rope(model: Eva02AtVisionModel, frames: int) -> Eva02AtVisionModel:
    freqs = complex_tables(model.config, frames)
    for layer in model.encoder.layers:
        layer.self_attn.complex_freqs = freqs
        layer.self_attn.forward = types.MethodType(complex_attention_forward, layer.self_attn)
    return model


def alternate(variants: dict, reps: int, calls: int = 1) -> dict:
    """Time every variant `reps` times, alternating variant by variant within each rep: {key: {"wall": [...], "cpu":
    [...]}} in seconds per call. CPU time is this process's: with one thread it leaves out the time the VM gave to
    other processes, which wall time includes."""
    samples = {key: {"wall": [], "cpu": []} for key in variants}
    for _ in range(reps):
        for key, run in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                run()
            samples[key]["wall"].append((time.perf_counter() - wall) / calls)
            samples[key]["cpu"].append((time.process_time() - cpu) / calls)
    return samples


def timing_fields(times: dict) -> dict:
    fields = {}
    for clock, values in times.items():
        fields[f"{clock}_s_median"] = round(statistics.median(values), 6)
        fields[f"{clock}_s_all"] = [round(value, 6) for value in values]
    return fields


def bench_rotation(config: Eva02AtVisionConfig, frames: int, reps: int, calls: int) -> list[dict]:
    """The rotation alone on one q of B/16's shape at `frames`, `calls` calls per timed sample."""
    heads, head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    tokens = 1 + frames * (config.image_size // config.patch_size) ** 2
    rotary = Eva02AtVisionModel(config).rotary_emb
    grid = config.image_size // config.patch_size
    freqs = complex_tables(config, frames)
    variants = {}
    for name, dtype in DTYPES.items():
        # A view of a projection's output, as in the attention: (B, L, H, d) over a contiguous (B, L, H * d).
        q = torch.randn(1, tokens, heads * head_dim).to(dtype).view(1, tokens, heads, head_dim)
        tables = rotary(frames, grid, grid, q.device, dtype)
        variants[(name, "complex")] = lambda q=q: complex_apply_rotary(q, freqs)
        variants[(name, "real")] = lambda q=q, tables=tables: apply_rotary(q, *tables)
    with torch.inference_mode():
        for run in variants.values():  # warm-up
            run()
        samples = alternate(variants, reps, calls)
    return [
        {
            "measure": "rotation",
            "frames": frames,
            "tokens": tokens,
            "shape": [1, tokens, heads, head_dim],
            "dtype": name,
            "rope": rope,
            "calls_per_sample": calls,
            **timing_fields(times),
        }
        for (name, rope), times in samples.items()
    ]


def bench_forward(config: Eva02AtVisionConfig, frames: int, reps: int) -> list[dict]:
    """The whole video-tower forward at `frames`, complex vs real RoPE, float32 and a bf16-cast model."""
    torch.manual_seed(0)
    real = Eva02AtVisionModel(config).eval()
    complex_rope = Eva02AtVisionModel(config).eval()
    complex_rope.load_state_dict(real.state_dict())
    as_complex_rope(complex_rope, frames)
    pixels = torch.randn(1, frames, 3, config.image_size, config.image_size)
    models = {("float32", "complex"): complex_rope, ("float32", "real"): real}
    for rope, model in list(models.items()):
        cast = Eva02AtVisionModel(config).eval()
        cast.load_state_dict(model.state_dict())
        if rope[1] == "complex":
            as_complex_rope(cast, frames)
        models[("bfloat16", rope[1])] = cast.to(torch.bfloat16)

    def forward(key):
        with torch.inference_mode():
            return models[key](pixels.to(DTYPES[key[0]])).pooler_output.float()

    outputs = {key: forward(key) for key in models}  # warm-up, and the same function
    cosines = {
        key: torch.nn.functional.cosine_similarity(out, outputs[(key[0], "complex")]).min().item()
        for key, out in outputs.items()
    }
    assert min(cosines.values()) > 0.999, cosines
    assert (outputs[("float32", "real")] - outputs[("float32", "complex")]).abs().max() < 1e-4
    samples = alternate({key: lambda key=key: forward(key) for key in models}, reps)
    return [
        {
            "measure": "forward",
            "frames": frames,
            "tokens": 1 + frames * (config.image_size // config.patch_size) ** 2,
            "batch": 1,
            "dtype": name,
            "rope": rope,
            "cosine_to_complex_min": round(cosines[(name, rope)], 6),
            **timing_fields(times),
        }
        for (name, rope), times in samples.items()
    ]


def paired(real_row: dict, complex_row: dict, clock: str) -> str:
    ratios = [r / c for r, c in zip(real_row[f"{clock}_s_all"], complex_row[f"{clock}_s_all"])]
    return f"{statistics.median(ratios):.3f} [{min(ratios):.3f}, {max(ratios):.3f}]"


def table(rows: list[dict]) -> str:
    """complex and real side by side per (threads, measure, frames, dtype): wall-time medians, real's median over
    complex's, and the paired ratios (real over complex within each rep) of wall and of CPU time: median [min, max]."""
    lines = []
    for threads, measure, unit, scale, title in [
        (threads, *measure)
        for threads in sorted({row["threads"] for row in rows}, reverse=True)
        for measure in [
            ("rotation", "ms", 1e3, "RoPE apply alone on q (1, L, 12, 64), per call"),
            ("forward", "s", 1, "Whole B/16 video-tower forward, batch 1, 224 x 224"),
        ]
    ]:
        selected = [row for row in rows if row["measure"] == measure and row["threads"] == threads]
        if not selected:
            continue
        lines.append(f"{title}, {threads} thread(s): medians of {len(selected[0]['wall_s_all'])} alternating reps")
        lines.append(
            f"  {'T':>3} {'tokens':>6}  {'dtype':<9} {'complex':>10} {'real':>10}  real / complex   "
            f"{'paired wall: median [min, max]':<32} paired CPU: median [min, max]"
        )
        for frames in sorted({row["frames"] for row in selected}, reverse=True):
            for dtype in DTYPES:
                pair = {row["rope"]: row for row in selected if row["frames"] == frames and row["dtype"] == dtype}
                complex_row, real_row = pair["complex"], pair["real"]
                complex_wall, real_wall = complex_row["wall_s_median"], real_row["wall_s_median"]
                lines.append(
                    f"  {frames:>3} {real_row['tokens']:>6}  {dtype:<9} {scale * complex_wall:>8.3f}{unit:<2} "
                    f"{scale * real_wall:>8.3f}{unit:<2} {real_wall / complex_wall:>14.3f}   "
                    f"{paired(real_row, complex_row, 'wall'):<32} {paired(real_row, complex_row, 'cpu')}"
                )
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 4], help="frame counts of the forward")
    parser.add_argument("--rotation-frames", type=int, default=16, help="frame count of the rotation-alone q")
    parser.add_argument("--reps", type=int, default=11, help="alternating reps of the forward (medians)")
    parser.add_argument("--rotation-reps", type=int, default=31, help="alternating reps of the rotation alone")
    parser.add_argument("--rotation-calls", type=int, default=10, help="calls per timed rotation sample")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[torch.get_num_threads()],
        help="torch intra-op thread counts, measured one after the other (default: torch's)",
    )
    parser.add_argument("--default-allocator", action="store_true", help="leave glibc's malloc settings alone")
    parser.add_argument("--output", default=os.path.join(RESULTS, "cpu_rope"), help="writes OUTPUT.txt and .json")
    args = parser.parse_args(argv)
    tuned = not args.default_allocator and tune_cpu_allocator()
    allocator = "tuned" if tuned else "default"
    config = Eva02AtVisionConfig()
    load_before = os.getloadavg()
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        measured = bench_rotation(config, args.rotation_frames, args.rotation_reps, args.rotation_calls)
        for frames in args.frames:
            measured += bench_forward(config, frames, args.reps)
        rows += [{"threads": threads, **row} for row in measured]
        print(table(rows[-len(measured) :]), flush=True)
    machine = {
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "allocator": allocator,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    load = f"load average (1, 5, 15 min) before {machine['load_average_before']}, after {machine['load_average_after']}"
    text = f"{table(rows)}{os.cpu_count()} CPUs, torch {machine['torch']}, {allocator} allocator, {load}\n"
    print(text)
    if args.output:
        with open(args.output + ".txt", "w") as f:
            f.write(text)
        with open(args.output + ".json", "w") as f:
            json.dump({"machine": machine, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
