"""End-to-end clip encoding (decode in DataLoader workers + forward) against the forward alone, in one run.

    python benchmarks/bench_encode_pipeline.py                       # B/16, T = 16, --dtype auto, workers 0 1 2
    python benchmarks/bench_encode_pipeline.py --frames 4 --clips 16 --dtype float32

The evaluation scripts and the search index encode clips with `modeling_eva02at.evaluation.encoding.encode_videos`:
DataLoader workers decode and preprocess the next batches while the main process runs the model. This script writes
a camera-like 10-second 568x320 30-fps H.264 video, then measures clips per second of

  (a) the model alone, on pixels decoded beforehand (the same batches, dtype and autocast as (b));
  (b) `encode_videos` from the file, with each --workers count,

and prints (b) / (a): 1.0 means decoding is entirely hidden behind the forward pass. The model is randomly
initialised at the preset's size (speed does not depend on the weights).
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import torch


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for tests/video_helpers.py

from modeling_eva02at import Eva02AtConfig, Eva02AtModel, Eva02AtProcessor  # noqa: E402
from modeling_eva02at.evaluation.encoding import (  # noqa: E402
    ClipCollator,
    EncodeSettings,
    compute_in,
    embed_video_batch,
    encode_videos,
)
from modeling_eva02at.utils.processor import match_processor_to_model  # noqa: E402
from modeling_eva02at.utils.runtime import resolve_dtype, tune_cpu_allocator  # noqa: E402
from tests.video_helpers import make_frames, write_video  # noqa: E402


HUB_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub_configs")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["b16", "l14"], default="b16")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--clips", type=int, default=8, help="clips per measurement")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--reps", type=int, default=2, help="passes per setting, alternating; the best is kept")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        tune_cpu_allocator()
    dtype, reason = resolve_dtype(args.dtype, device)
    folder = os.path.join(HUB_CONFIGS, {"b16": "eva02at-b16", "l14": "eva02at-l14"}[args.preset])
    config = Eva02AtConfig.from_pretrained(folder)
    config.vision_config.num_frames = args.frames
    torch.manual_seed(0)
    model = Eva02AtModel(config).to(device).eval()
    processor = Eva02AtProcessor.from_pretrained(folder)
    match_processor_to_model(processor, model.config, resize=True)
    print(
        f"{args.preset} T={args.frames}, batch {args.batch_size}, {args.clips} clips, {reason}, {device}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} cores",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="bench-encode-") as workdir:
        path = os.path.join(workdir, "clip.mp4")
        write_video(path, make_frames(300, 320, 568, noise=12.0), 30.0, crf=23, gop_size=60)
        starts = [(i % 8) * 0.5 for i in range(args.clips)]
        ends = [start + 5.0 for start in starts]
        videos = [path] * args.clips
        collate = ClipCollator(processor)
        batches = [
            collate(
                [
                    {"video": path, "start": s, "end": e}
                    for s, e in zip(starts[i : i + args.batch_size], ends[i : i + args.batch_size])
                ]
            )
            for i in range(0, args.clips, args.batch_size)
        ]

        def model_only():
            with torch.inference_mode(), compute_in(dtype, device, model):
                for pixels in batches:
                    embed_video_batch(model, pixels.to(device))

        def end_to_end(workers):
            settings = EncodeSettings(
                batch_size=args.batch_size, num_workers=workers, device=device, compute_dtype=dtype, progress=False
            )
            return lambda: encode_videos(model, processor, videos, starts, ends, settings)

        runs = {"model only": model_only, **{f"workers={w}": end_to_end(w) for w in args.workers}}
        model_only()  # warm-up
        seconds = {name: [] for name in runs}
        for _ in range(args.reps):  # alternate so that machine noise hits every setting alike
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[name].append(time.perf_counter() - start)

    rates = {name: args.clips / min(times) for name, times in seconds.items()}
    reference = rates["model only"]
    print(f"\n{'setting':<12} {'clips/s':>9} {'of model-only':>14}   (best of {args.reps}; all runs in s)")
    for name, rate in rates.items():
        runs_s = ", ".join(f"{t:.2f}" for t in seconds[name])
        print(f"{name:<12} {rate:9.3f} {rate / reference:14.3f}   [{runs_s}]")
    chosen = max((w for w in args.workers), key=lambda w: rates[f"workers={w}"])
    print(
        f"\nbest worker count: {chosen}, end to end {rates[f'workers={chosen}'] / reference:.3f} of the model-only rate"
    )
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "preset": args.preset,
        "frames": args.frames,
        "batch_size": args.batch_size,
        "clips": args.clips,
        "dtype": str(dtype or torch.float32).removeprefix("torch."),
        "dtype_reason": reason,
        "clips_per_s": {k: round(v, 4) for k, v in rates.items()},
        "fraction_of_model_only": {k: round(v / reference, 4) for k, v in rates.items()},
        "seconds": seconds,
        "best_workers": chosen,
    }
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    return result


if __name__ == "__main__":
    main()
