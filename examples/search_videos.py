#!/usr/bin/env python
"""Text-to-video search: embed videos into an index with an EVA02-AT model, then find clips by text.

    # a folder of videos, each video one clip; or cut into 10 s windows every 5 s
    python examples/search_videos.py index --model eva02at-b16 --videos my_videos/ --index my_index/
    python examples/search_videos.py index --model eva02at-b16 --videos long_videos/ --window 10 --stride 5 \\
        --index my_index/ --num-workers 4
    # the clips of an EPIC-Kitchens-100 retrieval CSV
    python examples/search_videos.py index --model eva02at-b16 --ek100-csv EPIC_100_retrieval_test.csv \\
        --video-root /data/EK100_320p_15sec_30fps_libx264 --index ek100_index/

    python examples/search_videos.py query --index my_index/ "cut an onion" "wash the pan" --top-k 5

The index is a folder of safetensors shards that records the model and settings it was built with. Running `index`
again encodes only new or changed videos (by size and modification time), and a run that was killed resumes where
it stopped. Unreadable videos are skipped and listed at the end. See docs/search_and_app.md.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from modeling_eva02at.evaluation.cli import ArgumentParser, add_dtype_argument  # noqa: E402  (no torch: --help is quick)


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="add videos to an index (creates it if needed)")
    index.add_argument("--model", required=True, help="model folder (save_pretrained / convert_checkpoint output)")
    index.add_argument("--processor", default=None, help="processor folder if not in --model")
    index.add_argument("--index", required=True, help="index folder (new, or one built with the same model)")
    source = index.add_mutually_exclusive_group(required=True)
    source.add_argument("--videos", help="folder of videos (searched recursively)")
    source.add_argument("--ek100-csv", help="EPIC_100_retrieval_*.csv: index its clips (needs --video-root)")
    index.add_argument("--video-root", help="with --ek100-csv: <root>/<participant>/<video_id>.MP4")
    index.add_argument("--video-ext", default="MP4", help="with --ek100-csv: video file ending (default MP4)")
    index.add_argument("--window", type=float, default=None, help="with --videos: cut videos into clips of SECONDS")
    index.add_argument("--stride", type=float, default=None, help="with --window: start a clip every SECONDS "
                       "(default: the window, no overlap)")  # fmt: skip
    index.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the model's)")
    index.add_argument("--batch-size", type=int, default=16, help="clips per forward pass")
    index.add_argument("--num-workers", type=int, default=2, help="DataLoader workers decoding videos")
    index.add_argument("--shard-size", type=int, default=None, help="clips saved together (default: batch size x "
                       "workers); a kill loses at most one shard")  # fmt: skip
    index.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    add_dtype_argument(index)  # --dtype auto|float32|bfloat16 (auto: an existing index's, else bf16 if native)
    index.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    index.add_argument("--no-progress", action="store_true", help="no progress bars")

    query = commands.add_parser("query", help="the best clips of an index for each text")
    query.add_argument("texts", nargs="+", help="one or more queries, e.g. 'cut an onion'")
    query.add_argument("--index", required=True, help="index folder made by `index`")
    query.add_argument("--model", default=None, help="default: the model the index was built with")
    query.add_argument("--processor", default=None, help="default: the processor the index was built with")
    query.add_argument("--top-k", type=int, default=5, help="clips per query (default 5)")
    query.add_argument("--json", action="store_true", help="print the hits as JSON")
    query.add_argument("--device", default=None, help="default: cuda if available, else cpu")

    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _check_args(parser, args) -> None:
    """Flag combinations argparse cannot express; parser.error names the flag and exits with status 2."""
    if args.command == "query":
        if args.top_k < 1:
            parser.error(f"--top-k must be at least 1, got {args.top_k}")
        return
    if args.ek100_csv and not args.video_root:
        parser.error("--ek100-csv needs --video-root (the folder of <participant>/<video_id>.MP4)")
    if args.video_root and not args.ek100_csv:
        parser.error("--video-root goes with --ek100-csv; for a folder of videos use --videos")
    if args.ek100_csv and args.window is not None:
        parser.error("--window cuts --videos into clips; EK-100 clips come from the CSV's timestamps")
    if args.stride is not None and args.window is None:
        parser.error("--stride needs --window")
    for name in ("batch_size", "num_frames", "shard_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.num_workers < 0:
        parser.error(f"--num-workers must be >= 0, got {args.num_workers}")
    for name in ("window", "stride"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            parser.error(f"--{name} must be a positive number of seconds, got {value}")


def run_index(args) -> dict:
    import torch
    from tqdm.contrib.logging import logging_redirect_tqdm

    from modeling_eva02at.evaluation.fingerprint import model_fingerprint
    from modeling_eva02at.evaluation.encoding import (
        EncodeSettings,
        load_model_for_inference,
        resolve_device,
        resolve_dtype,
    )
    from modeling_eva02at.search.build import update_index
    from modeling_eva02at.search.sources import Ek100Clips, VideoFolder
    from modeling_eva02at.search.store import MANIFEST_NAME
    from modeling_eva02at.utils.runtime import tune_cpu_allocator

    # Sources check their paths before the model is loaded.
    if args.videos:
        source = VideoFolder(args.videos, window=args.window, stride=args.stride)
    else:
        source = Ek100Clips(args.ek100_csv, args.video_root, args.video_ext)
    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    manifest = os.path.join(args.index, MANIFEST_NAME)
    if args.dtype == "auto" and os.path.isfile(manifest):
        # extending an index: its embeddings' dtype, whatever this machine's default would be
        with open(manifest) as handle:
            built = json.load(handle).get("header", {}).get("dtype")
        dtype = torch.bfloat16 if built == str(torch.bfloat16) else None
        reason = f"{'bfloat16' if dtype else 'float32'} (--dtype auto: the dtype {args.index} was built with)"
    else:
        dtype, reason = resolve_dtype(args.dtype, device)
    print(f"Encoding in {reason}")
    model, processor = load_model_for_inference(args.model, processor_path=args.processor, num_frames=args.num_frames,
                                                device=device, dtype=dtype)  # fmt: skip
    settings = EncodeSettings(batch_size=args.batch_size, num_workers=args.num_workers, flip=args.flip, device=device,
                              dtype=dtype, progress=not args.no_progress)  # fmt: skip
    with logging_redirect_tqdm():
        report = update_index(args.index, source, model, processor, settings, shard_size=args.shard_size,
                              model_id=model_fingerprint(args.model, args.processor))  # fmt: skip
    rate = f" ({report.clips_per_second:.3g} clips/s)" if report.encoded else ""
    print(f"Encoded {report.encoded} new clips in {report.seconds:.1f} s{rate}; {report.unchanged} already indexed, "
          f"{report.removed} of changed or deleted videos removed. {args.index} holds {report.total} clips.")
    if report.skipped:
        print(f"\nSkipped {len(report.skipped)} unreadable videos (tried again on the next run):")
        for entry in report.skipped:
            clips = f" [{entry.clips} clips]" if entry.clips > 1 else ""
            print(f"  {entry.path}{clips}: {entry.reason}")
    return {"encoded": report.encoded, "unchanged": report.unchanged, "removed": report.removed,
            "total": report.total, "seconds": report.seconds, "skipped": [e.path for e in report.skipped]}  # fmt: skip


def run_query(args) -> list:
    from dataclasses import asdict

    import torch

    from modeling_eva02at.evaluation.fingerprint import model_fingerprint
    from modeling_eva02at.evaluation.encoding import load_model_for_inference
    from modeling_eva02at.search.build import search_index
    from modeling_eva02at.search.store import VideoIndex

    index = VideoIndex.load(args.index)
    model_path = args.model or index.model_path
    processor_path = args.processor or (index.processor_path if args.model is None else None)
    if os.path.isabs(model_path) and not os.path.exists(model_path):
        raise FileNotFoundError(f"the index {args.index} was built with the model {model_path}, which no longer "
                                "exists: pass --model (the same model, moved)")  # fmt: skip
    # the queries in the dtype of the index's clips (docs/search_and_app.md)
    dtype = torch.bfloat16 if index.header.get("dtype") == str(torch.bfloat16) else None
    model, processor = load_model_for_inference(model_path, processor_path=processor_path, device=args.device,
                                                dtype=dtype)  # fmt: skip
    results = search_index(index, model, processor, args.texts, top_k=args.top_k,
                           model_id=model_fingerprint(model_path, processor_path))
    if args.json:
        print(json.dumps([{"query": text, "hits": [asdict(hit) for hit in hits]}
                          for text, hits in zip(args.texts, results)], indent=2))  # fmt: skip
        return results
    for text, hits in zip(args.texts, results):
        print(f"\n{text!r}")
        for hit in hits:
            label = f"  [{hit.label}] {hit.caption}" if hit.label else ""
            span = f"{hit.start:.2f}-{hit.end:.2f} s"
            print(f"  {hit.rank:>3}  {hit.score:7.4f}  {span:>18}  {hit.path}{label}")
    return results


def main(argv=None):
    args = parse_args(argv)
    return run_index(args) if args.command == "index" else run_query(args)


if __name__ == "__main__":
    main()
