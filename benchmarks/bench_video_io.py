"""
Video I/O benchmark: how much does Eva02AtVideoProcessor add on top of bare decoding, and does it scale with
DataLoader workers?

It writes a 10-second 568x320 30-fps H.264 clip with camera-like noise into a temporary folder, then measures
(median of --reps runs, clips per second):

  (a) the full processor path: open + decode + sample 16 frames + resize / crop / normalise;
  (b) bare decord: VideoReader(path).get_batch(same indices).asnumpy();
  plus, for reference, the processor with PyAV, and decord's decoder-side resizing (VideoReader(width=, height=))
  with its pixel difference from the torch path;
  (c) a DataLoader over --copies copies of the clip with num_workers 0, 1, 2.

Usage: python benchmarks/bench_video_io.py [--reps 7] [--copies 24] [--json results.json]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import torch


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for tests/video_helpers.py

from modeling_eva02at.video_processing_eva02at import Eva02AtVideoProcessor
from modeling_eva02at.video_reading_eva02at import sample_frame_indices
from tests.video_helpers import make_frames, write_video  # noqa: E402


try:
    import decord
except ImportError:
    decord = None


def interleaved_timings(functions: dict, reps: int) -> dict[str, list[float]]:
    """
    Seconds per call of each function, `reps` times. The functions take turns within each repetition, so that load
    from other processes on a shared machine hits all of them alike.
    """
    for function in functions.values():
        function()  # warm-up: page cache, lazy imports
    times = {name: [] for name in functions}
    for _ in range(reps):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return times


class ClipDataset(torch.utils.data.Dataset):
    """Paths in, pixel_values_videos out; the processor opens and closes each video inside __getitem__."""

    def __init__(self, paths, processor):
        self.paths, self.processor = paths, processor

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return self.processor(self.paths[index])["pixel_values_videos"][0]


def dataloader_clips_per_second(paths, processor, num_workers: int, batch_size: int) -> float:
    loader = torch.utils.data.DataLoader(
        ClipDataset(paths, processor), batch_size=batch_size, num_workers=num_workers, persistent_workers=False
    )
    start = time.perf_counter()
    count = sum(len(batch) for batch in loader)
    return count / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=568)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--gop", type=int, default=60, help="keyframe interval (cameras: about 1-2 s)")
    parser.add_argument("--noise", type=float, default=12.0, help="noise std in gray levels (sets the bitrate)")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="decoder threads (processor num_threads)")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--copies", type=int, default=24, help="clips in the DataLoader run")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    if decord is None:
        raise SystemExit("this benchmark compares against decord, which is not installed")

    results = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"}
    workdir = tempfile.mkdtemp(prefix="bench-video-io-")
    try:
        num_video_frames = int(args.seconds * args.fps)
        path = os.path.join(workdir, "clip.mp4")
        frames = make_frames(num_video_frames, args.height, args.width, noise=args.noise)
        write_video(path, frames, args.fps, crf=23, gop_size=args.gop)
        del frames
        results["clip"] = (
            f"{args.seconds:g} s, {args.width}x{args.height}, {args.fps:g} fps, GOP {args.gop}, "
            f"{os.path.getsize(path) / 1e6:.2f} MB ({os.path.getsize(path) * 8 / args.seconds / 1e6:.2f} Mbit/s)"
        )
        print(f"clip: {results['clip']}")

        processor = Eva02AtVideoProcessor(num_frames=args.num_frames, num_threads=args.threads)
        indices = sample_frame_indices(0, num_video_frames, args.num_frames).tolist()

        def bare_decord():
            return decord.VideoReader(path, num_threads=args.threads).get_batch(indices).asnumpy()

        # Decoder-side resizing: decord scales while converting to RGB. Faster? Same pixels?
        short = min(args.width, args.height)
        resized_w, resized_h = (int(224 * args.width / short), int(224 * args.height / short))
        no_resize = Eva02AtVideoProcessor(num_frames=args.num_frames, do_resize=False)

        def decoder_resize():
            small = decord.VideoReader(path, num_threads=args.threads, width=resized_w, height=resized_h)
            return no_resize.transform_frames(small.get_batch(indices).asnumpy())

        decoded = bare_decord()
        times = interleaved_timings(
            {
                "full": lambda: processor(path),
                "bare": bare_decord,
                "transform": lambda: processor.transform_frames(decoded),
                "pyav": lambda: processor(path, video_backend="pyav"),
                "decoder_side": decoder_resize,
            },
            args.reps,
        )
        full, bare, transform, pyav, decoder_side = (
            statistics.median(times[name]) for name in ("full", "bare", "transform", "pyav", "decoder_side")
        )
        ratio = statistics.median(a / b for a, b in zip(times["full"], times["bare"]))
        std = torch.tensor(processor.image_std).view(1, 3, 1, 1) * 255
        difference = ((decoder_resize() - processor(path)["pixel_values_videos"][0]) * std).abs()

        results.update(
            {
                "full_processor_ms": full * 1e3,
                "bare_decord_ms": bare * 1e3,
                "ratio_full_over_bare": ratio,
                "resize_crop_normalise_ms": transform * 1e3,
                "processor_pyav_ms": pyav * 1e3,
                "decord_side_resize_ms": decoder_side * 1e3,
                "decord_side_resize_mean_abs_diff_gray_levels": difference.mean().item(),
                "decord_side_resize_max_abs_diff_gray_levels": difference.max().item(),
            }
        )
        print(
            f"\n{args.num_frames} frames per clip, decoder threads {args.threads}, torch threads "
            f"{torch.get_num_threads()}, median of {args.reps}:"
        )
        print(f"  (a) full processor path (decord) {full * 1e3:8.1f} ms  {1 / full:6.2f} clips/s")
        print(f"  (b) bare decord get_batch        {bare * 1e3:8.1f} ms  {1 / bare:6.2f} clips/s")
        print(f"      ratio (a) / (b)              {ratio:8.3f}    (median of per-repetition ratios; target <= 1.3)")
        print(f"      resize + crop + normalise    {transform * 1e3:8.1f} ms")
        print(f"      full processor path (PyAV)   {pyav * 1e3:8.1f} ms  {1 / pyav:6.2f} clips/s")
        print(
            f"      decord-side resize + rest    {decoder_side * 1e3:8.1f} ms  {1 / decoder_side:6.2f} clips/s, "
            f"|diff| mean {difference.mean():.2f} / max {difference.max():.0f} gray levels"
        )

        copies = []
        for index in range(args.copies):
            copies.append(os.path.join(workdir, f"copy{index:03d}.mp4"))
            shutil.copyfile(path, copies[-1])
        print(f"\n(c) DataLoader over {args.copies} clips, batch size {args.batch_size} (worker start-up included):")
        results["dataloader_clips_per_s"] = {}
        for workers in args.workers:
            rate = dataloader_clips_per_second(copies, processor, workers, args.batch_size)
            results["dataloader_clips_per_s"][str(workers)] = rate
            print(f"  num_workers={workers}: {rate:6.2f} clips/s")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
