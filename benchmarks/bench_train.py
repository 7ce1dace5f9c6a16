"""Training throughput of EVA02-AT: samples/s, peak memory, data-wait share, with and without gradient checkpointing.

    python benchmarks/bench_train.py                       # demo config on demo data, then B/16 at T = 4 (CPU: fp32)
    python benchmarks/bench_train.py --only b16 --batch 32 # on a GPU: bf16 autocast

Each configuration runs in a subprocess of its own so peak memory (CPU: max RSS; CUDA: max allocated) is its own.
A step is what Eva02AtTrainer does: forward both towers, SMS over the batch's relevancy, backward, AdamW.
- demo: the train_mir.py demo model on its synthetic EK-100 data, decoded by the real DataLoader + collator
  (workers decode while the model trains); "data wait" is the time the loop blocks on the next batch.
- b16: the EVA02-AT-B/16 preset at T = 4 on random pixels (no decoding): the model's own cost.
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


def build(name: str, batch: int, frames: int, workers: int):
    """(model, batch iterator, trainer) for one configuration."""
    import numpy as np

    from modeling_eva02at import Eva02AtConfig, Eva02AtModel
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
        config = Eva02AtConfig.from_pretrained(os.path.join(REPO, "hub_configs", "eva02at-b16"))
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


def run_one(name: str, batch: int, frames: int, steps: int, checkpointing: bool, workers: int) -> dict:
    from modeling_eva02at.utils.runtime import tune_cpu_allocator

    cuda = torch.cuda.is_available()
    if not cuda:
        tune_cpu_allocator()
    trainer, batches = build(name, batch, frames, workers)
    device = torch.device("cuda" if cuda else "cpu")
    model = trainer.model.to(device).train()
    if checkpointing:
        model.activation_checkpointing_enable()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    step_times, waits = [], []
    for step in range(steps + 1):  # step 0 warms up (allocator, workers, kernels) and is not counted
        start = time.perf_counter()
        inputs = next(batches)
        got_batch = time.perf_counter()
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = trainer.compute_loss(model, inputs)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if step:
            step_times.append(time.perf_counter() - start)
            waits.append(got_batch - start)
    median = statistics.median(step_times)
    result = {
        "config": name,
        "device": torch.cuda.get_device_name() if cuda else f"cpu x{torch.get_num_threads()}",
        "dtype": "bf16 autocast" if cuda else "fp32",
        "batch": batch,
        "frames": frames if name == "b16" else trainer.model.config.vision_config.num_frames,
        "gradient_checkpointing": checkpointing,
        "steps": steps,
        "step_s_median": round(median, 4),
        "samples_per_s": round(batch / median, 2),
        "data_wait_fraction": round(sum(waits) / sum(step_times), 3),
        "loss": round(loss.item(), 4),
    }
    if cuda:
        result["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    else:
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["demo", "b16"], default=None)
    parser.add_argument("--batch", type=int, default=None, help="default: 32 (demo), 2 on CPU / 32 on GPU (b16)")
    parser.add_argument("--frames", type=int, default=4, help="frames for b16")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 demo, 3 b16 on CPU)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the demo")
    parser.add_argument("--json", default=None)
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        name, checkpointing = args._child.split(":")
        print(json.dumps(run_one(name, args.batch, args.frames, args.steps, checkpointing == "1", args.workers)))
        return
    cuda = torch.cuda.is_available()
    results = []
    for name in [args.only] if args.only else ["demo", "b16"]:
        batch = args.batch or (32 if name == "demo" or cuda else 2)
        steps = args.steps or (10 if name == "demo" or cuda else 3)
        for checkpointing in (False, True):
            command = [
                sys.executable,
                os.path.abspath(__file__),
                "--_child",
                f"{name}:{int(checkpointing)}",
                "--batch",
                str(batch),
                "--frames",
                str(args.frames),
                "--steps",
                str(steps),
                "--workers",
                str(args.workers),
            ]
            done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{name} (checkpointing={checkpointing}) failed")
            row = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(row)
            memory = row.get("peak_memory_mib", row.get("peak_rss_mib"))
            print(
                f"{row['config']:<5} {row['device']} {row['dtype']:<13} batch {row['batch']:>3} T={row['frames']:>2} "
                f"ckpt={'on ' if checkpointing else 'off'} {row['samples_per_s']:8.2f} samples/s "
                f"(step {row['step_s_median']:.3f} s median of {row['steps']})  peak {memory:9.1f} MiB  "
                f"data wait {100 * row['data_wait_fraction']:5.1f} %",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
