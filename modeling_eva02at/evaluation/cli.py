"""The runs behind `examples/eval_ek100_mir.py`, `eval_egomcq.py` and `eval_charades_ego.py`: their arguments (one
dataclass of encoding settings they share and one per benchmark), and each run from the files to the printed table and
the JSON report.

Importing this module is cheap (no torch), so the scripts answer --help at once; the heavy modules are imported when a
run starts. Library functions raise errors that name the file or value; the arguments' checks name the flag.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..data.egomcq import EGOMCQ_VIDEO_LAYOUTS
from ..utils.runtime import DTYPE_CHOICES


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class EncodingArguments:
    """The model and how clips and texts are encoded (every evaluation script takes these)."""

    model: str = field(metadata={"help": "model folder or Hub id (save_pretrained / convert_checkpoint output)"})
    video_root: str = field(metadata={"help": "folder of the videos"})
    processor: str | None = field(default=None, metadata={"help": "processor folder if not in --model"})
    num_frames: int | None = field(default=None, metadata={"help": "frames per clip (default: the model's)"})
    batch_size: int = field(default=16, metadata={"help": "clips per forward pass"})
    text_batch_size: int = field(default=256, metadata={"help": "texts per forward pass"})
    num_workers: int = field(
        default_factory=lambda: min(4, available_cores()),
        metadata={"help": "DataLoader workers decoding videos (default: 4, or the cores available if fewer)"},
    )
    flip: bool = field(default=False, metadata={"help": "horizontal-flip test-time augmentation"})
    dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype the model is loaded and computes in: auto is bfloat16 on hardware with native bf16 "
            "(CUDA, CPUs with AMX or AVX512-BF16), else float32",
            "choices": DTYPE_CHOICES,
        },
    )
    device: str | None = field(default=None, metadata={"help": "default: cuda if available, else cpu"})
    cache_dir: str | None = field(default=None, metadata={"help": "feature cache folder (default: no cache)"})
    output_json: str | None = field(default=None, metadata={"help": "write the metrics and settings here"})
    no_progress: bool = field(default=False, metadata={"help": "no progress bars"})

    def __post_init__(self):
        for name in ("batch_size", "text_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise ValueError(f"--num-workers must be >= 0, got {self.num_workers}")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"--num-frames must be at least 1, got {self.num_frames}")
        if not os.path.isdir(self.video_root):
            raise FileNotFoundError(f"--video-root {self.video_root} is not a folder")


@dataclass
class Ek100MirArguments:
    """The EK-100 MIR test annotations."""

    test_csv: str = field(metadata={"help": "EPIC_100_retrieval_test.csv"})
    sentence_csv: str = field(metadata={"help": "EPIC_100_retrieval_test_sentence.csv"})
    relevancy: str | None = field(default=None, metadata={"help": "relevancy pickle (default: built from the CSVs)"})
    video_ext: str = field(default="MP4", metadata={"help": "<root>/<participant>/<video_id>.<ext>"})


@dataclass
class EgoMcqArguments:
    """EgoMCQ's questions and where their Ego4D clips are."""

    egomcq_json: str = field(metadata={"help": "EgoVLP's egomcq.json"})
    video_layout: str = field(
        default="auto",
        metadata={
            "help": "full: <root>/<video_uid>.mp4; egovlp: <root>/<video_uid>/<k>.mp4 (EgoVLP's 600 s chunks); "
            "auto: per video, the full file if it exists",
            "choices": EGOMCQ_VIDEO_LAYOUTS,
        },
    )
    video_ext: str = field(default="mp4", metadata={"help": "video file extension"})
    chunk_seconds: int = field(default=600, metadata={"help": "seconds per chunk of the egovlp layout"})

    def __post_init__(self):
        if self.chunk_seconds < 1:
            raise ValueError(f"--chunk-seconds must be at least 1, got {self.chunk_seconds}")


@dataclass
class CharadesEgoArguments:
    """The Charades-Ego test annotations and the class texts."""

    csv: str = field(metadata={"help": "CharadesEgo_v1_test_only1st.csv"})
    classes: str = field(metadata={"help": "Charades_v1_classes.txt"})
    templates: list[str] | None = field(
        default=None,
        metadata={
            "help": "class text templates with {} for the class name, averaged per class (default: '{}', the "
            "bare class name)"
        },
    )
    video_ext: str = field(default="mp4", metadata={"help": "video file extension"})


def evaluate_ek100_mir_files(data: Ek100MirArguments, encoding: EncodingArguments) -> dict:
    """EK-100 MIR mAP / nDCG of `encoding.model` on the test files: prints the table, returns the JSON report."""
    from ..data.ek100 import Ek100MirAnnotations
    from .ek100_mir import evaluate_ek100_mir

    annotations = Ek100MirAnnotations.from_files(data.test_csv, data.sentence_csv, data.relevancy)

    def evaluate(model, processor, settings, model_id):
        return evaluate_ek100_mir(
            model,
            processor,
            annotations,
            encoding.video_root,
            settings,
            video_ext=data.video_ext,
            cache_dir=encoding.cache_dir,
            model_id=model_id,
            data_files=[data.test_csv],
        )

    return run_evaluation(
        encoding,
        evaluate,
        _print_ek100_mir,
        annotation_files=[path for path in (data.test_csv, data.sentence_csv, data.relevancy) if path],
        test_csv=data.test_csv,
        sentence_csv=data.sentence_csv,
        relevancy=data.relevancy or "built from the CSVs",
    )


def evaluate_egomcq_files(data: EgoMcqArguments, encoding: EncodingArguments) -> dict:
    """EgoMCQ inter- / intra-video accuracy of `encoding.model`: prints the table, returns the JSON report."""
    from ..data.egomcq import EgoMcqQuestions
    from .egomcq import evaluate_egomcq

    questions = EgoMcqQuestions.from_json(data.egomcq_json)

    def evaluate(model, processor, settings, model_id):
        return evaluate_egomcq(
            model,
            processor,
            questions,
            encoding.video_root,
            settings,
            layout=data.video_layout,
            video_ext=data.video_ext,
            chunk_seconds=data.chunk_seconds,
            cache_dir=encoding.cache_dir,
            model_id=model_id,
        )

    return run_evaluation(
        encoding,
        evaluate,
        _print_egomcq,
        annotation_files=[data.egomcq_json],
        egomcq_json=data.egomcq_json,
        video_layout=data.video_layout,
    )


def evaluate_charades_ego_files(data: CharadesEgoArguments, encoding: EncodingArguments) -> dict:
    """Charades-Ego mAP of `encoding.model`: prints the table, returns the JSON report."""
    from .charades_ego import DEFAULT_CHARADES_TEMPLATES, CharadesEgoAnnotations, evaluate_charades_ego

    templates = data.templates or list(DEFAULT_CHARADES_TEMPLATES)
    annotations = CharadesEgoAnnotations.from_files(data.csv, data.classes)

    def evaluate(model, processor, settings, model_id):
        return evaluate_charades_ego(
            model,
            processor,
            annotations,
            encoding.video_root,
            settings,
            templates=templates,
            video_ext=data.video_ext,
            cache_dir=encoding.cache_dir,
            model_id=model_id,
        )

    return run_evaluation(
        encoding,
        evaluate,
        _print_charades_ego,
        annotation_files=[data.csv, data.classes],
        csv=data.csv,
        classes=data.classes,
        templates=templates,
    )


def encode_settings(encoding: EncodingArguments):
    """:class:`~modeling_eva02at.evaluation.encoding.EncodeSettings` of the arguments; prints the dtype chosen."""
    from ..utils.runtime import resolve_device, resolve_dtype
    from .encoding import EncodeSettings

    device = resolve_device(encoding.device)
    dtype, reason = resolve_dtype(encoding.dtype, device)
    print(f"Encoding in {reason}")
    return EncodeSettings(
        batch_size=encoding.batch_size,
        text_batch_size=encoding.text_batch_size,
        num_workers=encoding.num_workers,
        flip=encoding.flip,
        device=device,
        compute_dtype=dtype,
        progress=not encoding.no_progress,
    )


def run_evaluation(
    encoding: EncodingArguments,
    evaluate: Callable,
    print_table: Callable[[dict], None],
    *,
    annotation_files: Sequence[str],
    **report_fields,
) -> dict:
    """The tail every evaluation shares: load the model and processor in the dtype chosen, run
    ``evaluate(model, processor, settings, model_id)`` (an :class:`EvaluationResult`), print its table, and write
    the JSON report to ``--output-json``: metrics, the model's fingerprint, the `annotation_files` by name and
    SHA-256 (and whether they are the demo's synthetic data), pixel settings, settings with the frame count,
    `report_fields`, the paper's numbers. The Hub push checks the fingerprint and keeps demo numbers out of the
    model-index (docs/hub.md). Returns the report.
    """
    from ..utils.files import write_json
    from ..utils.runtime import tune_cpu_allocator
    from .encoding import load_model_for_inference
    from .fingerprint import model_fingerprint, pixel_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = encode_settings(encoding)
    if settings.device.type == "cpu":
        tune_cpu_allocator()
    model, processor = load_model_for_inference(
        encoding.model,
        processor_path=encoding.processor,
        num_frames=encoding.num_frames,
        device=settings.device,
        dtype=settings.compute_dtype,
    )
    model_id = model_fingerprint(encoding.model, encoding.processor)
    result = evaluate(model, processor, settings, model_id)
    print_table(result.metrics)
    report = result.to_json_dict(
        model_fingerprint=model_id,
        annotation_files=annotation_files,
        pixels=pixel_settings(processor),
        model=encoding.model,
        video_root=encoding.video_root,
        num_frames=processor.image_processor.num_frames,
        flip=encoding.flip,
        dtype="bfloat16" if settings.compute_dtype is not None else "float32",
        batch_size=encoding.batch_size,
        **report_fields,
    )
    if report["demo_data"]:
        print(
            "\nThe annotation files are the demo's synthetic data (DEMO_DATA.json beside them): these numbers check "
            "that the model and the scripts work, they are not benchmark results (a Hub card shows them as the demo's)"
        )
    if encoding.output_json:
        write_json(encoding.output_json, report)
        print(f"\nWrote {encoding.output_json}")
    return report


def _print_ek100_mir(metrics: dict) -> None:
    from .results import PAPER_RESULTS

    keys = ("vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG")
    print("\nEK-100 MIR (percent)")
    print(f"{'':<28}" + "".join(f"{key:>14}" for key in keys))
    print(f"{'this model':<28}" + "".join(f"{100 * metrics[key]:>14.2f}" for key in keys))
    for name, results in PAPER_RESULTS.items():
        for setting in ("zero_shot", "fine_tuned"):
            paper = results[f"ek100_mir_{setting}"]
            cells = [f"{paper[key]:>14.1f}" if key in paper else f"{'-':>14}" for key in keys]
            print(f"{f'paper {name} {setting}':<28}" + "".join(cells))


def _print_egomcq(metrics: dict) -> None:
    from .results import PAPER_RESULTS

    print("\nEgoMCQ accuracy (percent)")
    print(f"{'':<24}{'inter-video':>14}{'intra-video':>14}")
    inter, intra = 100 * metrics["inter_video_accuracy"], 100 * metrics["intra_video_accuracy"]
    print(f"{'this model':<24}{inter:>14.2f}{intra:>14.2f}")
    for name, results in PAPER_RESULTS.items():
        paper = results["egomcq"]
        print(f"{f'paper {name}':<24}{paper['inter_video_accuracy']:>14.1f}{paper['intra_video_accuracy']:>14.1f}")
    print(
        f"({metrics['num_inter_video']} inter-video (types 1) and {metrics['num_intra_video']} intra-video (types 2) "
        "questions)"
    )


def _print_charades_ego(metrics: dict) -> None:
    from .results import PAPER_RESULTS

    print("\nCharades-Ego mAP (percent)")
    print(f"{'':<30}{'mAP':>10}")
    print(f"{'this model':<30}{100 * metrics['mAP']:>10.2f}")
    for name, results in PAPER_RESULTS.items():
        zero_shot, fine_tuned = results["charades_ego_zero_shot"]["mAP"], results["charades_ego_fine_tuned"]["mAP"]
        print(f"{f'paper {name} zero-shot':<30}{zero_shot:>10.1f}")
        print(f"{f'paper {name} fine-tuned':<30}{fine_tuned:>10.1f}")


__all__ = [
    "CharadesEgoArguments",
    "EgoMcqArguments",
    "Ek100MirArguments",
    "EncodingArguments",
    "encode_settings",
    "evaluate_charades_ego_files",
    "evaluate_egomcq_files",
    "evaluate_ek100_mir_files",
    "run_evaluation",
]
