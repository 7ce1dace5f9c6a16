"""The arguments of `examples/index_videos.py` and `examples/search_videos.py`, and what they run: bring an index up to
date with a folder of videos or an EK-100 CSV, and print the best clips of an index for text queries.

Importing this module is cheap (no torch), so the scripts answer --help at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from ..utils.runtime import DTYPE_CHOICES


@dataclass
class IndexArguments:
    """What to index, with which model, and how to encode it."""

    model: str = field(metadata={"help": "model folder or Hub id (save_pretrained / convert_checkpoint output)"})
    index: str = field(metadata={"help": "index folder (new, or one built with the same model)"})
    videos: str | None = field(default=None, metadata={"help": "folder of videos (searched recursively)"})
    ek100_csv: str | None = field(
        default=None, metadata={"help": "EPIC_100_retrieval_*.csv: index its clips (needs --video-root)"}
    )
    video_root: str | None = field(
        default=None, metadata={"help": "with --ek100-csv: <root>/<participant>/<video_id>.MP4"}
    )
    video_ext: str = field(default="MP4", metadata={"help": "with --ek100-csv: video file ending"})
    processor: str | None = field(default=None, metadata={"help": "processor folder if not in --model"})
    window: float | None = field(default=None, metadata={"help": "with --videos: cut videos into clips of SECONDS"})
    stride: float | None = field(
        default=None, metadata={"help": "with --window: start a clip every SECONDS (default: the window, no overlap)"}
    )
    num_frames: int | None = field(default=None, metadata={"help": "frames per clip (default: the model's)"})
    batch_size: int = field(default=16, metadata={"help": "clips per forward pass"})
    num_workers: int = field(default=2, metadata={"help": "DataLoader workers decoding videos"})
    shard_size: int | None = field(
        default=None,
        metadata={"help": "clips saved together (default: batch size x workers); a kill loses at most one shard"},
    )
    flip: bool = field(default=False, metadata={"help": "horizontal-flip test-time augmentation"})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype the model is loaded and computes in; auto: an existing index's, else bfloat16 where "
            "the hardware computes it natively",
            "choices": DTYPE_CHOICES,
        },
    )
    device: str | None = field(default=None, metadata={"help": "default: cuda if available, else cpu"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bars"})

    def __post_init__(self):
        if (self.videos is None) == (self.ek100_csv is None):
            raise ValueError("give one source: --videos FOLDER or --ek100-csv FILE (with --video-root)")
        if self.ek100_csv and not self.video_root:
            raise ValueError("--ek100-csv needs --video-root (the folder of <participant>/<video_id>.MP4)")
        if self.video_root and not self.ek100_csv:
            raise ValueError("--video-root goes with --ek100-csv; for a folder of videos use --videos")
        if self.ek100_csv and self.window is not None:
            raise ValueError("--window cuts --videos into clips; EK-100 clips come from the CSV's timestamps")
        if self.stride is not None and self.window is None:
            raise ValueError("--stride needs --window")
        for name in ("batch_size", "num_frames", "shard_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.num_workers < 0:
            raise ValueError(f"--num-workers must be >= 0, got {self.num_workers}")
        for name in ("window", "stride"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"--{name} must be a positive number of seconds, got {value}")


def index_videos(args: IndexArguments) -> dict:
    """Bring the index up to date with the source (the model is checked against an existing index first); prints
    what was done and the videos skipped. Returns the counts and the skipped paths."""
    import torch
    from tqdm.contrib.logging import logging_redirect_tqdm

    from ..evaluation.encoding import EncodeSettings, load_model_for_inference
    from ..evaluation.fingerprint import model_fingerprint
    from ..utils.runtime import resolve_device, resolve_dtype, tune_cpu_allocator
    from .build import update_index
    from .sources import Ek100Clips, VideoFolder
    from .store import MANIFEST_NAME, index_lock

    # The sources check their paths and the index is held before the model is loaded: a mistake or a second indexer
    # is refused at once.
    if args.videos:
        source = VideoFolder(args.videos, window=args.window, stride=args.stride)
        if not source.video_paths() and not os.path.isfile(os.path.join(args.index, MANIFEST_NAME)):
            raise ValueError(
                f"no videos in {args.videos} (files ending in {', '.join(source.extensions)}, in any subfolder): "
                f"nothing to index"
            )
    else:
        source = Ek100Clips(args.ek100_csv, args.video_root, args.video_ext)
        paths = source.video_paths()
        if not any(map(os.path.exists, paths)) and not os.path.isfile(os.path.join(args.index, MANIFEST_NAME)):
            raise ValueError(
                f"none of the {len(paths)} videos {args.ek100_csv} names is in --video-root {args.video_root} "
                f"(the first: {paths[0] if paths else 'none'}; expected <root>/<participant>/<video_id>."
                f"{args.video_ext}): nothing to index"
            )
    with index_lock(args.index):
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
        model, processor = load_model_for_inference(
            args.model, processor_path=args.processor, num_frames=args.num_frames, device=device, dtype=dtype
        )
        settings = EncodeSettings(
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            flip=args.flip,
            device=device,
            compute_dtype=dtype,
            progress=not args.no_progress,
        )
        with logging_redirect_tqdm():
            report = update_index(
                args.index,
                source,
                model,
                processor,
                settings,
                shard_size=args.shard_size,
                model_id=model_fingerprint(args.model, args.processor),
            )
    rate = f" ({report.clips_per_second:.3g} clips/s)" if report.encoded else ""
    print(
        f"Encoded {report.encoded} new clips in {report.seconds:.1f} s{rate}; {report.unchanged} already indexed, "
        f"{report.removed} of changed or deleted videos removed. {args.index} holds {report.total} clips."
    )
    if report.skipped:
        print(f"\nSkipped {len(report.skipped)} unreadable videos (tried again on the next run):")
        for entry in report.skipped:
            clips = f" [{entry.clips} clips]" if entry.clips > 1 else ""
            print(f"  {entry.path}{clips}: {entry.reason}")
    return {
        "encoded": report.encoded,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "total": report.total,
        "seconds": report.seconds,
        "skipped": [e.path for e in report.skipped],
    }


@dataclass
class QueryArguments:
    """Text queries against an index."""

    index: str = field(metadata={"help": "index folder made by index_videos.py"})
    query: list[str] = field(metadata={"help": "one or more queries, e.g. --query 'cut an onion' 'wash the pan'"})
    model: str | None = field(default=None, metadata={"help": "default: the model the index was built with"})
    processor: str | None = field(default=None, metadata={"help": "default: the processor the index was built with"})
    top_k: int = field(default=5, metadata={"help": "clips per query"})
    json: bool = field(default=False, metadata={"help": "print the hits as JSON"})
    device: str | None = field(default=None, metadata={"help": "default: cuda if available, else cpu"})

    def __post_init__(self):
        if self.top_k < 1:
            raise ValueError(f"--top-k must be at least 1, got {self.top_k}")


def query_index(args: QueryArguments) -> list:
    """The `top_k` best clips of the index for each query, printed as a table or JSON; returns the hits."""
    import torch

    from ..evaluation.encoding import load_model_for_inference
    from ..evaluation.fingerprint import model_fingerprint
    from .build import search_index
    from .store import VideoIndex

    index = VideoIndex.load(args.index)
    model_path = args.model or index.model_path
    processor_path = args.processor or (index.processor_path if args.model is None else None)
    if os.path.isabs(model_path) and not os.path.exists(model_path):
        raise FileNotFoundError(
            f"the index {args.index} was built with the model {model_path}, which no longer "
            "exists: pass --model (the same model, moved)"
        )
    # the queries in the dtype of the index's clips (docs/search_and_app.md)
    dtype = torch.bfloat16 if index.header.get("dtype") == str(torch.bfloat16) else None
    model, processor = load_model_for_inference(
        model_path, processor_path=processor_path, device=args.device, dtype=dtype
    )
    results = search_index(
        index, model, processor, args.query, top_k=args.top_k, model_id=model_fingerprint(model_path, processor_path)
    )
    if args.json:
        print(
            json.dumps(
                [{"query": text, "hits": [asdict(hit) for hit in hits]} for text, hits in zip(args.query, results)],
                indent=2,
            )
        )
        return results
    for text, hits in zip(args.query, results):
        print(f"\n{text!r}")
        for hit in hits:
            label = f"  [{hit.label}] {hit.caption}" if hit.label else ""
            span = f"{hit.start:.2f}-{hit.end:.2f} s"
            print(f"  {hit.rank:>3}  {hit.score:7.4f}  {span:>18}  {hit.path}{label}")
    return results


__all__ = ["IndexArguments", "QueryArguments", "index_videos", "query_index"]
