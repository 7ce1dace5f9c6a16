"""The command-line layer shared by ``examples/eval_*.py``: flags, settings, and the run's shared tail.

Importing this module is cheap (no torch), so the scripts answer ``--help`` at once; the heavy modules are imported
when a run starts. Library functions raise errors that name the file or value; this layer adds the flag.
"""

from __future__ import annotations

import argparse
import logging
from typing import Callable


class ArgumentParser(argparse.ArgumentParser):
    """argparse that accepts every ``--dashed-flag`` also as ``--dashed_flag`` (the spelling of transformers'
    `HfArgumentParser`, which ``examples/train_mir.py`` uses), so both spellings work in every script."""

    def add_argument(self, *names, **kwargs):
        aliases = ["--" + n[2:].replace("-", "_") for n in names if n.startswith("--") and "-" in n[2:]]
        return super().add_argument(*names, *[a for a in aliases if a not in names], **kwargs)


def add_dtype_argument(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    """--dtype auto|float32|bfloat16 (auto: bfloat16 where the hardware computes it natively), and --bf16, which is
    --dtype bfloat16. The choices are `encoding.DTYPE_CHOICES`, written out so that --help needs no torch."""
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default=default,
                        help=f"compute dtype of the forward passes (default: {default}): auto is bfloat16 on hardware "
                             "with native bf16 (CUDA, CPUs with AMX or AVX512-BF16), else float32")  # fmt: skip
    parser.add_argument("--bf16", dest="dtype", action="store_const", const="bfloat16", help="--dtype bfloat16")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every `examples/eval_*.py` script takes (model, video root, encoding, cache, output)."""
    parser.add_argument("--model", required=True, help="model folder (save_pretrained / convert_checkpoint output)")
    parser.add_argument("--processor", default=None, help="processor folder if not in --model")
    parser.add_argument("--video-root", required=True, help="folder of the videos")
    parser.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per forward pass")
    parser.add_argument("--text-batch-size", type=int, default=256, help="texts per forward pass")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers decoding videos")
    parser.add_argument("--flip", action="store_true", help="horizontal-flip test-time augmentation")
    add_dtype_argument(parser)
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--cache-dir", default=None, help="feature cache folder (default: no cache)")
    parser.add_argument("--output-json", default=None, help="write the metrics and settings here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def settings_from_args(args):
    """:class:`~modeling_eva02at.evaluation.encoding.EncodeSettings` from the arguments of
    :func:`add_common_arguments`, checked; errors name the flag."""
    import os

    from .encoding import EncodeSettings, resolve_device, resolve_dtype

    for name in ("batch_size", "text_batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.num_workers < 0:
        raise ValueError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.num_frames is not None and args.num_frames < 1:
        raise ValueError(f"--num-frames must be at least 1, got {args.num_frames}")
    if not os.path.isdir(args.video_root):
        raise FileNotFoundError(f"--video-root {args.video_root} is not a folder")
    device = resolve_device(args.device)
    dtype, reason = resolve_dtype(args.dtype, device)
    print(f"Encoding in {reason}")
    return EncodeSettings(batch_size=args.batch_size, text_batch_size=args.text_batch_size,
                          num_workers=args.num_workers, flip=args.flip, device=device, dtype=dtype,
                          progress=not args.no_progress)  # fmt: skip


def run_settings(args, processor, settings) -> dict:
    """The settings a JSON report records (the dtype as chosen, e.g. "bfloat16" for --dtype auto on a bf16 CPU)."""
    dtype = "bfloat16" if settings.dtype is not None else "float32"
    return {"model": args.model, "video_root": args.video_root, "num_frames": processor.image_processor.num_frames,
            "flip": args.flip, "dtype": dtype, "batch_size": args.batch_size}  # fmt: skip


def run_evaluation(args, evaluate: Callable, print_table: Callable[[dict], None], **report_fields) -> dict:
    """The tail every eval script shares: check the settings, load the model and processor, run
    ``evaluate(model, processor, settings, model_id)`` (an :class:`EvaluationResult`), print its table, and write
    the JSON report (metrics, settings, `report_fields`, the paper's numbers) to ``--output-json``. Returns the report.
    """
    from ..utils.files import write_json
    from ..utils.runtime import tune_cpu_allocator
    from .encoding import load_model_for_inference
    from .fingerprint import model_fingerprint

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = settings_from_args(args)
    if settings.device.type == "cpu":
        tune_cpu_allocator()
    model, processor = load_model_for_inference(args.model, processor_path=args.processor, num_frames=args.num_frames,
                                                device=settings.device, dtype=settings.dtype)  # fmt: skip
    result = evaluate(model, processor, settings, model_fingerprint(args.model, args.processor))
    print_table(result.metrics)
    report = result.to_json_dict(**run_settings(args, processor, settings), **report_fields)
    if args.output_json:
        write_json(args.output_json, report)
        print(f"\nWrote {args.output_json}")
    return report
