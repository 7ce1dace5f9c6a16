"""Training throughput of EVA02-AT: clips/s, peak memory, MFU against this device's measured matmul peak, data-wait
share; with and without activation checkpointing, eager and compiled.

    python benchmarks/bench_train.py                       # demo config on demo data, then B/16 at T = 4 (CPU: fp32)
    python benchmarks/bench_train.py --only b16 --batch 256 --checkpointing on --compile both   # a GPU: bf16 autocast
    python benchmarks/bench_train.py --only b16 --tiny --checkpointing on --compile both       # the same code, tiny

Each configuration runs in a subprocess of its own so peak memory (CPU: max RSS; CUDA: max allocated) is its own.
A step is what Eva02AtTrainer does: forward both towers, SMS over the batch's relevancy, backward, AdamW.
- demo: the train_mir.py demo model on its synthetic EK-100 data, decoded by the real DataLoader + collator
  (workers decode while the model trains); "data wait" is the time the loop blocks on the next batch.
- b16: the EVA02-AT-B/16 preset at T = 4 on random pixels (no decoding): the model's own cost. `--tiny` swaps in the
  test suite's tiny model (tests/fixtures/tiny_mir_config) so the whole path runs on a CPU in seconds.

Utilisation, for b16 (benchmarks/estimate_pretraining.py counts the FLOPs of the config: matrix products only):
- MFU = 3 x forward FLOPs per clip x clips/s / peak; with checkpointing the forward runs twice, which MFU does not
  count (HFU = 4 x forward, the work the device really does).
- peak = the best rate of this device's matrix products in the run's dtype (a square 8192 product and the model's own
  linear shapes), measured in the same run, not the data sheet's.
- clips/s per peak TFLOP/s: AVION trains ViT-B at 4 frames, batch 256 per GPU in 19 GB on an A5000, 5 EgoClip epochs
  in 130 GPU-hours, i.e. about 0.37 clips/s per peak dense TFLOP/s (41 clips/s on a 111 TFLOP/s card); the goal here
  is 0.45 or more.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AVION_CLIPS_PER_PEAK_TFLOPS = 0.37
"""AVION's ViT-B, 4 frames: 5 x 3,847,723 EgoClip clips in 130 A5000-hours = 41 clips/s on a 111 TFLOP/s (bf16 dense)
card."""
GOAL_CLIPS_PER_PEAK_TFLOPS = 0.45
AVION_PEAK_MEMORY_GB = 19  # batch 256 per GPU on an A5000 (24 GB)


def model_config(tiny: bool):
    """The B/16 preset, or the test suite's tiny model (`--tiny`)."""
    from modeling_eva02at import Eva02AtConfig

    folder = (
        os.path.join(REPO, "tests", "fixtures", "tiny_mir_config")
        if tiny
        else os.path.join(REPO, "hub_configs", "eva02at-b16")
    )
    return Eva02AtConfig.from_pretrained(folder)


def flops_per_clip(config, frames: int) -> float:
    """Forward FLOPs of one clip and its caption (77 tokens), from the config (benchmarks/estimate_pretraining.py)."""
    from estimate_pretraining import forward_flops  # this script's own folder is on sys.path

    counts = forward_flops(config, frames)
    return counts["video"] + counts["text"] + counts["projections"]


def matmul_peak_flops(config, device: torch.device, dtype: torch.dtype, reps: int = 10) -> float:
    """The best FLOP/s of large matrix products in `dtype` on `device`: a square product (8192 on a GPU) and the
    model's own linear shapes at 32 clips of 4 frames. The MFU's denominator, measured rather than read off a sheet."""
    vision = config.vision_config
    d, h = vision.hidden_size, vision.intermediate_size
    rows = 32 * (1 + 4 * (vision.image_size // vision.patch_size) ** 2)
    square = 8192 if device.type == "cuda" else 1024
    shapes = [(square, square, square), (rows, d, d), (rows, d, h), (rows, h, d)]
    best = 0.0
    with torch.no_grad():
        for m, k, n in shapes:
            a = torch.randn(m, k, device=device, dtype=dtype)
            b = torch.randn(k, n, device=device, dtype=dtype)
            torch.matmul(a, b)  # warm-up (cuBLAS heuristics, allocator)
            for _ in range(reps):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                torch.matmul(a, b)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                best = max(best, 2 * m * k * n / (time.perf_counter() - start))
    return best


def build(name: str, batch: int, frames: int, workers: int, tiny: bool = False):
    """(trainer, batch iterator) for one configuration."""
    import numpy as np

    from modeling_eva02at import Eva02AtModel
    from modeling_eva02at.training.arguments import Eva02AtTrainingArguments
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    args = Eva02AtTrainingArguments(
        output_dir=tempfile.mkdtemp(),
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        per_device_train_batch_size=batch,
    )
    if name == "demo":
        from modeling_eva02at.data.collate import VideoTextCollator
        from modeling_eva02at.data.ek100 import Ek100MirAnnotations, Ek100MirDataset
        from modeling_eva02at.demo.ek100 import make_demo_dataset
        from modeling_eva02at.training.setup import load_model_for_training
        from modeling_eva02at.training.train_mir import DEFAULT_DEMO_DIR

        model, processor = load_model_for_training(None)  # the demo's own model, random init
        paths = make_demo_dataset(DEFAULT_DEMO_DIR)
        dataset = Ek100MirDataset(
            Ek100MirAnnotations.from_files(paths.train_csv, paths.train_sentence_csv), paths.video_root, train=True
        )
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            collate_fn=VideoTextCollator(processor),
            persistent_workers=workers > 0,
        )
        relevancy = dataset.relevancy

        def batches():
            while True:
                yield from loader

    else:
        config = model_config(tiny)
        config.vision_config.num_frames = frames
        model = Eva02AtModel(config)
        relevancy = np.random.default_rng(0).choice([0.0, 0.5, 1.0], size=(batch, batch)).astype(np.float32)
        np.fill_diagonal(relevancy, 1.0)
        size = config.vision_config.image_size

        def batches():
            # One fixed batch, made once on the device: this configuration measures the model, not data loading.
            device = "cuda" if torch.cuda.is_available() else "cpu"
            generator = torch.Generator(device=device).manual_seed(0)
            ids = torch.randint(1, 49406, (batch, 77), generator=generator, device=device)
            ids[:, 0], ids[:, 20:] = 49406, 49407
            fixed = {
                "input_ids": ids,
                "attention_mask": torch.ones_like(ids),
                "pixel_values_videos": torch.randn(batch, frames, 3, size, size, generator=generator, device=device),
                "video_index": torch.arange(batch),
                "sentence_index": torch.arange(batch),
                "positive_relevancy": torch.ones(batch),
            }
            while True:
                yield fixed

    trainer = Eva02AtTrainer(model=model, args=args, relevancy=relevancy)
    return trainer, batches()


def run_one(
    name: str, batch: int, frames: int, steps: int, checkpointing: bool, workers: int, compiled: bool, tiny: bool
) -> dict:
    from modeling_eva02at.utils.runtime import tune_cpu_allocator

    cuda = torch.cuda.is_available()
    if not cuda:
        tune_cpu_allocator()
    trainer, batches = build(name, batch, frames, workers, tiny)
    device = torch.device("cuda" if cuda else "cpu")
    model = trainer.model.to(device).train()
    if checkpointing:
        # transformers 5.25 names it activation_checkpointing_enable; earlier 5.x only gradient_checkpointing_enable
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    step_model = model
    if compiled:
        # The towers and the loss compiled by inductor; the relevancy look-up stays on the host, before the forward.
        step_model = torch.compile(model)
        trainer.loss_fn.fn = torch.compile(trainer.loss_fn.fn, fullgraph=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    step_times, waits = [], []
    warmup = 2 if compiled else 1  # the first steps compile / warm up (allocator, workers, kernels): not counted
    for step in range(steps + warmup):
        start = time.perf_counter()
        inputs = next(batches)
        got_batch = time.perf_counter()
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = trainer.compute_loss(step_model, inputs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step >= warmup:
            step_times.append(time.perf_counter() - start)
            waits.append(got_batch - start)
    median = statistics.median(step_times)
    clips_per_s = batch / median
    result = {
        "config": name + (" (tiny)" if tiny else ""),
        "device": torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()}",
        "dtype": "bf16 autocast" if cuda else "fp32",
        "batch": batch,
        "frames": frames if name == "b16" else trainer.model.config.vision_config.num_frames,
        "gradient_checkpointing": checkpointing,
        "compiled": compiled,
        "steps": steps,
        "step_s_median": round(median, 4),
        "samples_per_s": round(clips_per_s, 2),
        "data_wait_fraction": round(sum(waits) / sum(step_times), 3),
        "loss": round(loss.item(), 4),
    }
    if cuda:  # read before the matmul peak's own allocations
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if name == "b16":
        peak = matmul_peak_flops(model.config, device, torch.bfloat16 if cuda else torch.float32)
        forward = flops_per_clip(model.config, frames)
        result.update(
            matmul_peak_tflops=round(peak / 1e12, 2),
            forward_gflop_per_clip=round(forward / 1e9, 1),
            mfu=round(3 * forward * clips_per_s / peak, 3),
            hfu=round((4 if checkpointing else 3) * forward * clips_per_s / peak, 3),
            clips_per_s_per_peak_tflops=round(clips_per_s / (peak / 1e12), 3),
        )
    return result


def summary_line(row: dict) -> str:
    memory = row.get("peak_memory_mib", row.get("peak_rss_mib"))
    line = (
        f"{row['config']:<5} {row['device']} {row['dtype']:<13} batch {row['batch']:>3} T={row['frames']:>2} "
        f"ckpt={'on ' if row['gradient_checkpointing'] else 'off'} {'compiled' if row['compiled'] else 'eager   '} "
        f"{row['samples_per_s']:8.2f} clips/s (step {row['step_s_median']:.3f} s median of {row['steps']})  "
        f"peak {memory:9.1f} MiB  data wait {100 * row['data_wait_fraction']:5.1f} %"
    )
    if "mfu" in row:
        line += (
            f"\n      MFU {100 * row['mfu']:.1f} % (HFU {100 * row['hfu']:.1f} %) of the measured "
            f"{row['matmul_peak_tflops']:.1f} TFLOP/s matmul peak; {row['clips_per_s_per_peak_tflops']:.3f} clips/s "
            f"per peak TFLOP/s (AVION {AVION_CLIPS_PER_PEAK_TFLOPS}, goal >= {GOAL_CLIPS_PER_PEAK_TFLOPS}); "
            f"peak memory {memory / 1024:.1f} GiB (AVION: {AVION_PEAK_MEMORY_GB} GB at batch 256)"
        )
    return line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["demo", "b16"], default=None)
    parser.add_argument("--batch", type=int, default=None, help="default: 32 (demo), 2 on CPU / 32 on GPU (b16)")
    parser.add_argument("--frames", type=int, default=4, help="frames for b16")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 demo, 3 b16 on CPU)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the demo")
    parser.add_argument("--checkpointing", choices=["off", "on", "both"], default="both")
    parser.add_argument(
        "--compile", choices=["off", "on", "both"], default="off", help="torch.compile the model and the loss"
    )
    parser.add_argument("--tiny", action="store_true", help="b16's path with the tests' tiny model (a CPU check)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        name, checkpointing, compiled = args._child.split(":")
        row = run_one(
            name, args.batch, args.frames, args.steps, checkpointing == "1", args.workers, compiled == "1", args.tiny
        )
        print(json.dumps(row))
        return
    cuda = torch.cuda.is_available()
    both = {"off": [False], "on": [True], "both": [False, True]}
    results = []
    for name in [args.only] if args.only else ["demo", "b16"]:
        batch = args.batch or (32 if name == "demo" or cuda else 2)
        steps = args.steps or (10 if name == "demo" or cuda else 3)
        for checkpointing in both[args.checkpointing]:
            for compiled in both[args.compile]:
                command = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--_child",
                    f"{name}:{int(checkpointing)}:{int(compiled)}",
                    "--batch",
                    str(batch),
                    "--frames",
                    str(args.frames),
                    "--steps",
                    str(steps),
                    "--workers",
                    str(args.workers),
                    *(["--tiny"] if args.tiny else []),
                ]
                env = {**os.environ, "HF_HUB_OFFLINE": "1"}
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                if done.returncode:
                    print(done.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"{name} (checkpointing={checkpointing}, compiled={compiled}) failed")
                row = json.loads(done.stdout.strip().splitlines()[-1])
                results.append(row)
                print(summary_line(row), flush=True)
                if args.json:  # after every row: a later configuration that fails or times out keeps the earlier ones
                    with open(args.json, "w") as f:
                        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
