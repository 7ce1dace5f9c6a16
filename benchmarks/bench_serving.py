#!/usr/bin/env python
"""What a request costs the Inference Endpoints handler, just under and just over each of its limits, and what a
102 MB upload costs (raw bytes and base64 text): peak resident memory above the handler's own before the call, and
time. The model is the demo's small one (a 2-layer text tower, as in the report that asked for the limits), saved and
assembled into a repo folder here; the videos are made here too (noise, so that they do not compress away).

    python benchmarks/bench_serving.py [--output benchmarks/results/cpu_serving] [--before-handler OLD_HANDLER.py]

`--before-handler` also measures the upload with another version of `handler.py` (e.g. the one before the limits:
`git show b059b2c:modeling_eva02at/hub/handler.py > /tmp/handler_before.py`), in the same run.

Peak memory is Linux's VmHWM of this process, reset before each request (/proc/self/clear_refs).
"""

import argparse
import base64
import json
import os
import platform
import sys
import tempfile
import time


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for tests/video_helpers.py

import numpy as np  # noqa: E402
import torch  # noqa: E402

from tests.video_helpers import write_video  # noqa: E402


MB = 2**20


def peak_rss() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def current_rss() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(call) -> dict:
    """Run `call()`: its outcome, seconds, and peak memory above the memory in use before it."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the current RSS
    before = current_rss()
    started = time.perf_counter()
    try:
        call()
        outcome = "served"
    except ValueError as error:
        outcome = f"refused: {str(error)[:90]}"
    return {"outcome": outcome, "seconds": time.perf_counter() - started, "peak_mb": (peak_rss() - before) / MB}


def smooth_video(path: str, width: int, height: int, seconds: float, fps: float) -> str:
    """A moving gradient: quick to encode at any size."""
    count = max(1, round(seconds * fps))
    ys, xs = np.mgrid[0:height, 0:width]
    frames = np.stack([((xs + ys + 8 * i) % 256).astype(np.uint8) for i in range(count)])
    write_video(path, np.repeat(frames[..., None], 3, axis=-1), fps, gop_size=int(fps))
    return path


def noise_video(path: str, target_mb: float, width: int = 1280, height: int = 720, fps: float = 2.0) -> str:
    """New random frames (incompressible, lossless) until the file is about `target_mb`."""
    rng = np.random.default_rng(0)
    per_frame = 1.01 * width * height * 1.5 / MB  # lossless yuv420p noise: about 1.5 bytes per pixel
    count = max(1, round(target_mb / per_frame))
    frames = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    write_video(path, frames, fps, crf=0, gop_size=int(fps))
    return path


def repo_folder(workdir: str) -> str:
    from modeling_eva02at import Eva02AtConfig, Eva02AtModel, Eva02AtProcessor
    from modeling_eva02at.demo.model import DEMO_MODEL_CONFIG
    from modeling_eva02at.hub import assemble_repo_folder
    from modeling_eva02at.training.setup import REPOSITORY_PROCESSOR
    from modeling_eva02at.utils.processor import match_processor_to_model

    model_dir, repo = os.path.join(workdir, "model"), os.path.join(workdir, "repo")
    torch.manual_seed(0)
    model = Eva02AtModel(Eva02AtConfig(**DEMO_MODEL_CONFIG))
    model.save_pretrained(model_dir)
    processor = Eva02AtProcessor.from_pretrained(REPOSITORY_PROCESSOR)
    match_processor_to_model(processor, model.config, resize=True)
    processor.save_pretrained(model_dir)
    assemble_repo_folder(model_dir, repo, "someone/eva02at-demo")
    return repo


def load_handler(repo: str, handler_file: str | None = None, **limits):
    import importlib.util

    handler_file = handler_file or os.path.join(repo, "handler.py")
    spec = importlib.util.spec_from_file_location(f"bench_handler_{abs(hash(handler_file))}", handler_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.EndpointHandler(repo, **limits)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=None, help="write <output>.txt and <output>.json")
    parser.add_argument("--before-handler", default=None, help="an earlier handler.py to measure the upload with too")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows, lines = [], []

    def report(case: str, result: dict) -> None:
        rows.append({"case": case, **result})
        line = f"{case:<52} {result['outcome'][:60]:<62} {result['seconds']:8.2f} s {result['peak_mb']:9.1f} MB"
        lines.append(line)
        print(line, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as workdir:
        repo = repo_folder(workdir)
        module, handler = load_handler(repo)
        limits = handler.limits
        print(f"limits: {limits}", flush=True)
        small = smooth_video(os.path.join(workdir, "small.mp4"), 64, 64, 2, 8)
        small_bytes = open(small, "rb").read()

        def classify(data, labels, with_handler=handler):
            return lambda: with_handler({"inputs": data, "parameters": {"candidate_labels": labels}})

        # upload bytes first, while the process holds no freed memory from bigger requests that the allocator could
        # reuse unseen: about 102 MB (raw and base64), and one over the limit (refused before it is decoded)
        big_path = noise_video(os.path.join(workdir, "big.mp4"), target_mb=102)
        big = open(big_path, "rb").read()
        size_mb = len(big) / MB
        text = base64.b64encode(big).decode()
        handlers = {"": handler}
        if args.before_handler:
            handlers[" (before)"] = load_handler(repo, args.before_handler)[1]
        for suffix, version in handlers.items():
            for name, data in (("raw bytes", big), ("base64 text", text)):
                result = measure(classify(data, ["a", "b"], version))
                report(f"upload: {size_mb:.0f} MB {name}{suffix}", {**result, "upload_mb": size_mb})
        del text
        over = b"\0" * (limits["max_upload_bytes"] + 1)
        report(f"upload: {limits['max_upload_bytes'] // MB} MB + 1 byte", measure(classify(over, ["a", "b"])))

        # labels: the limit and one more; the 10,000 of the report, with the limit raised, chunked and in one batch
        labels = [f"label number {i}" for i in range(limits["max_labels"] + 1)]
        report(f"labels: {limits['max_labels']} (the limit)", measure(classify(small_bytes, labels[:-1])))
        report(f"labels: {limits['max_labels'] + 1}", measure(classify(small_bytes, labels)))
        _, generous = load_handler(repo, max_labels=10_000)
        many = [f"label number {i}" for i in range(10_000)]
        report("labels: 10000, limit raised, encoded 64 at a time", measure(classify(small_bytes, many, generous)))
        pipeline_module = sys.modules[type(generous.pipeline).__module__]
        chunk = pipeline_module.CAPTION_BATCH_SIZE
        pipeline_module.CAPTION_BATCH_SIZE = 10_000  # the code before the limits: every caption in one batch
        report("labels: 10000, limit raised, in one batch (before)", measure(classify(small_bytes, many, generous)))
        pipeline_module.CAPTION_BATCH_SIZE = chunk

        # texts to embed
        texts = [f"text number {i}" for i in range(limits["max_texts"] + 1)]
        report(f"texts: {limits['max_texts']} (the limit)", measure(lambda: handler({"inputs": {"texts": texts[:-1]}})))
        report(f"texts: {limits['max_texts'] + 1}", measure(lambda: handler({"inputs": {"texts": texts}})))

        # pixels per frame: 4K (3840 x 2160, the limit) and 8K, 2 s each
        for name, (width, height) in {"4K 3840x2160": (3840, 2160), "8K 7680x4320": (7680, 4320)}.items():
            video = open(smooth_video(os.path.join(workdir, "frames.mp4"), width, height, 2, 8), "rb").read()
            report(f"frame size: {name}, 2 s", measure(classify(video, ["a", "b"])))

        # duration: the limit and one second more (64 x 64, 4 fps)
        for seconds in (limits["max_seconds"], limits["max_seconds"] + 1):
            video = open(smooth_video(os.path.join(workdir, "long.mp4"), 64, 64, seconds, 4), "rb").read()
            report(f"duration: {seconds} s", measure(classify(video, ["a", "b"])))

    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    print(f"\n{machine}")
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output + ".txt", "w") as handle:
            handle.write("\n".join([*lines, "", machine]) + "\n")
        with open(args.output + ".json", "w") as handle:
            json.dump({"machine": machine, "limits": limits, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
