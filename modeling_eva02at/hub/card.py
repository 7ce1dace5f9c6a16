"""The model card (a Hub repo's README.md), rendered from the `model_card.md` template shipped with this package.

The template holds the YAML metadata every repo shares and the usage snippets; rendering fills in the repo id, the
architecture, the base model and the `model-index`: the paper's reported numbers for the checkpoint's size (arXiv
2506.14356, docs/results.md), attributed to the paper, plus the checkpoint's own results from the JSON reports that
`examples/eval_*.py --output-json` write.

A report is published only for what it measured (:func:`read_eval_reports`): it must record the model's fingerprint,
which must be the pushed model's, its annotation files and its frame count. Numbers measured on the package's
synthetic demo data never enter the model-index under a benchmark's name: the card's body shows them in a table of
their own, labelled as the demo's.
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re

from huggingface_hub import EvalResult, ModelCard

from ..evaluation.fingerprint import describe_differences, fingerprint_identity, model_fingerprint
from ..evaluation.results import PAPER_RESULTS


TEMPLATE = importlib.resources.files(__package__) / "model_card.md"
"""The card template: package data, so that it is there after a plain `pip install` too (the repository's top-level
model_card.md links to it)."""

PAPER_NAME = "EVA02-AT paper (arXiv 2506.14356)"
PAPER_URL = "https://arxiv.org/abs/2506.14356"

# The paper's two sizes, recognised by their video tower, and the EVA02-CLIP checkpoints they start from.
PAPER_SIZES = {
    # (hidden_size, num_hidden_layers, patch_size): (name in PAPER_RESULTS, display name, base model)
    (768, 12, 16): ("EVA02-AT-B", "EVA02-AT-B/16", "timm/eva02_base_patch16_clip_224.merged2b_s8b_b131k"),
    (1024, 24, 14): ("EVA02-AT-L", "EVA02-AT-L/14", "timm/eva02_large_patch14_clip_224.merged2b_s4b_b131k"),
}

# How each benchmark appears in the model-index: the eval JSON's "task" -> task and dataset, and the metrics reported
# (JSON key, metric type, display name). The paper gives only the mean of the two EK-100 MIR directions.
BENCHMARKS = {
    "ek100_mir": {
        "task_type": "video-text-retrieval",
        "task_name": "Multi-instance retrieval",
        "dataset_type": "epic-kitchens-100",
        "dataset_name": "EPIC-Kitchens-100 MIR",
        "metrics": (
            ("avg_mAP", "mAP", "avg mAP"),
            ("avg_nDCG", "nDCG", "avg nDCG"),
            ("vis2txt_mAP", "mAP", "video-to-text mAP"),
            ("txt2vis_mAP", "mAP", "text-to-video mAP"),
            ("vis2txt_nDCG", "nDCG", "video-to-text nDCG"),
            ("txt2vis_nDCG", "nDCG", "text-to-video nDCG"),
        ),
    },
    "charades_ego": {
        "task_type": "video-classification",
        "task_name": "Action recognition (text classes)",
        "dataset_type": "charades-ego",
        "dataset_name": "Charades-Ego",
        "metrics": (("mAP", "mAP", "mAP"),),
    },
    "egomcq": {
        "task_type": "video-text-retrieval",
        "task_name": "Multiple-choice video question (EgoMCQ)",
        "dataset_type": "egomcq",
        "dataset_name": "EgoMCQ",
        "metrics": (
            ("inter_video_accuracy", "accuracy", "inter-video accuracy"),
            ("intra_video_accuracy", "accuracy", "intra-video accuracy"),
        ),
    },
}

# PAPER_RESULTS keys -> (benchmark, setting); the setting is the model-index dataset config.
PAPER_SETTINGS = {
    "ek100_mir_zero_shot": ("ek100_mir", "zero-shot"),
    "ek100_mir_fine_tuned": ("ek100_mir", "fine-tuned"),
    "charades_ego_zero_shot": ("charades_ego", "zero-shot"),
    "charades_ego_fine_tuned": ("charades_ego", "fine-tuned"),
    "egomcq": ("egomcq", "zero-shot"),
}
# The checkpoint's own results form their own model-index entries (the Hub groups results by task, dataset and
# config, and gives each group one source); the config also names the frame count.
OWN_SETTING = "this checkpoint"
# Frames per clip of the paper's numbers, where docs/results.md states them (it does not for EgoMCQ).
PAPER_FRAMES = {"ek100_mir": 16, "charades_ego": 16}


def paper_size(config) -> tuple[str, str, str] | None:
    """(PAPER_RESULTS name, display name, base model) of the paper size `config` has, or None for another shape."""
    vision = config.vision_config
    return PAPER_SIZES.get((vision.hidden_size, vision.num_hidden_layers, vision.patch_size))


def describe_architecture(config) -> str:
    """One line on the model's shape, for the card."""
    vision, text = config.vision_config, config.text_config
    size = paper_size(config)
    name = f"{size[1]}: " if size else "a custom size of EVA02-AT: "
    return (
        f"{name}video tower {vision.hidden_size} wide, {vision.num_hidden_layers} layers, patch "
        f"{vision.patch_size}, {vision.image_size}-pixel frames, {vision.num_frames} frames; CLIP text tower "
        f"{text.hidden_size} wide, {text.num_hidden_layers} layers; "
        f"{config.projection_dim}-d joint embedding"
    )


def read_eval_reports(paths, model: str | None = None) -> list[dict]:
    """Load eval JSON reports (`examples/eval_*.py --output-json`), checked: each needs a known "task" and that task's
    metrics (fractions), and what this package's reports record of what they measured: the model's fingerprint, the
    annotation files (with whether they are the demo's synthetic data) and the frame count. With `model` (the folder
    being pushed), each report must have measured that model: same weights, forward configuration and tokenizer
    (`model_fingerprint`), wherever the folder was and however it was saved.

    Raises:
        FileNotFoundError / ValueError: one line naming the report and what is wrong: a missing or unreadable file, an
            unknown task, missing metrics, a report written before reports recorded what they measured (re-run the
            evaluation), a report of another model (naming what differs), two reports of one benchmark.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths or ())
    pushed = fingerprint_identity(model_fingerprint(model)) if model is not None and paths else None
    reports = []
    for path in paths:
        try:
            with open(path) as file:
                report = json.load(file)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"eval JSON {path} not found (write it with examples/eval_*.py --output-json)"
            ) from None
        except json.JSONDecodeError as error:
            raise ValueError(f"eval JSON {path} is not valid JSON ({error})") from None
        task = report.get("task") if isinstance(report, dict) else None
        if task not in BENCHMARKS:
            raise ValueError(
                f'eval JSON {path} has "task": {task!r}; expected one of {sorted(BENCHMARKS)}, as '
                f"examples/eval_*.py --output-json write"
            )
        metrics = report.get("metrics") or {}
        missing = [key for key, _, _ in BENCHMARKS[task]["metrics"] if key not in metrics]
        if missing:
            raise ValueError(f"eval JSON {path} ({task}) lacks the metrics {missing}")
        # A report that cannot say which model and data it measured cannot be published for a model: re-running it
        # is the only way to know (such reports once put another model's demo numbers on a card).
        frames = (report.get("settings") or {}).get("num_frames")
        if not isinstance(report.get("model_fingerprint"), dict) or not report.get("annotations") or not frames:
            raise ValueError(
                f"eval JSON {path} does not record which model, annotation files and frame count it measured "
                f"(written by an older examples/eval_{task}.py): re-run examples/eval_{task}.py with --output-json "
                f"{path} on the model you push"
            )
        if pushed is not None:
            differences = describe_differences(report["model_fingerprint"], pushed, "report", "pushed folder")
            if differences:
                raise ValueError(
                    f"eval JSON {path} measured another model than {model} ({_report_model(report)}): "
                    + "; ".join(differences)
                    + f". Evaluate {model} with examples/eval_{task}.py --output-json and push with that report"
                )
        report["demo_data"] = bool(report.get("demo_data")) or any(a.get("demo") for a in report["annotations"])
        reports.append(report)
    benchmarks = [(report["task"], report["demo_data"]) for report in reports]
    duplicated = sorted({task for task, demo in benchmarks if benchmarks.count((task, demo)) > 1})
    if duplicated:
        raise ValueError(f"two eval JSON reports for {duplicated}: give one per benchmark")
    return reports


def _report_model(report: dict) -> str:
    model = report["model_fingerprint"].get("model")
    return model.get("path", "?") if isinstance(model, dict) else str(model)


def _frames(report: dict) -> int:
    return int(report["settings"]["num_frames"])


def _eval_result(
    benchmark: str, setting: str, key_type_name, value: float, source_name: str | None, source_url: str | None
) -> EvalResult:
    info = BENCHMARKS[benchmark]
    _, metric_type, metric_name = key_type_name
    return EvalResult(
        task_type=info["task_type"],
        task_name=info["task_name"],
        dataset_type=info["dataset_type"],
        dataset_name=info["dataset_name"],
        dataset_config=setting,
        dataset_split="test",
        metric_type=metric_type,
        metric_name=metric_name,
        metric_value=round(float(value), 2),
        source_name=source_name,
        source_url=source_url,
    )


def paper_eval_results(size_name: str) -> list[EvalResult]:
    """The paper's reported numbers (percent) for one size, attributed to the paper."""
    results = []
    for key, numbers in PAPER_RESULTS[size_name].items():
        benchmark, setting = PAPER_SETTINGS[key]
        for metric in BENCHMARKS[benchmark]["metrics"]:
            if metric[0] in numbers:
                results.append(_eval_result(benchmark, setting, metric, numbers[metric[0]], PAPER_NAME, PAPER_URL))
    return results


def own_eval_results(reports: list[dict], repo_id: str) -> list[EvalResult]:
    """A checkpoint's own results (percent) for the model-index, from its eval reports on the benchmarks' data; reports
    on the demo's synthetic data are left out (:func:`render_model_card` shows them in the body, labelled)."""
    results = []
    for report in reports:
        if report["demo_data"]:
            continue
        benchmark = report["task"]
        setting = f"{OWN_SETTING}, {_frames(report)} frames"
        for metric in BENCHMARKS[benchmark]["metrics"]:
            value = report["metrics"][metric[0]]
            if value is None:  # NaN is written as null: nothing to report
                continue
            source = f"measured with examples/eval_{benchmark}.py"
            results.append(
                _eval_result(benchmark, setting, metric, 100 * value, source, f"https://huggingface.co/{repo_id}")
            )
    return results


def _report_rows(reports: list[dict]) -> list[tuple]:
    """(dataset, setting, frames, metric, value in percent) of each report's metrics, for a table of the body."""
    rows = []
    for report in reports:
        info = BENCHMARKS[report["task"]]
        dataset = info["dataset_name"]
        if report["demo_data"]:
            dataset = f"synthetic demo data in the {dataset} format (not {dataset})"
        for key, _, name in info["metrics"]:
            value = report["metrics"][key]
            if value is not None:
                rows.append((dataset, OWN_SETTING, _frames(report), name, 100 * value))
    return rows


def _paper_rows(results: list[EvalResult]) -> list[tuple]:
    frames = {info["dataset_name"]: PAPER_FRAMES.get(benchmark, "not given") for benchmark, info in BENCHMARKS.items()}
    return [(r.dataset_name, r.dataset_config, frames[r.dataset_name], r.metric_name, r.metric_value) for r in results]


def _results_table(rows: list[tuple]) -> str:
    lines = ["| benchmark | setting | frames | metric | value (%) |", "|---|---|---|---|---|"]
    for dataset, setting, frames, metric, value in rows:
        lines.append(f"| {dataset} | {setting} | {frames} | {metric} | {value:.2f} |")
    return "\n".join(lines)


def render_model_card(
    config,
    repo_id: str,
    eval_reports: list[dict] | None = None,
    *,
    base_model: str | None = None,
    license: str | None = None,
    template_path: str | None = None,
) -> str:
    """The README.md of a Hub repo holding a model of `config`.

    Args:
        config: the model's `Eva02AtConfig`.
        repo_id: the Hub repo ("owner/name"), written into the usage snippets.
        eval_reports: the checkpoint's eval reports (:func:`read_eval_reports`, which checks them against the
            model pushed). Those on the benchmarks' data go into the model-index (config "this checkpoint, N
            frames") and a table, next to the paper's; those on the demo's synthetic data only into a table of
            their own, labelled as the demo's.
        base_model: the Hub id of the checkpoint this one was converted or fine-tuned from (default: the EVA02-CLIP
            checkpoint of the paper's size; none for other shapes).
        license: overrides the template's license.
        template_path: another template (default: the package's `model_card.md`).
    """
    if template_path is None:
        template = TEMPLATE.read_text(encoding="utf-8")
    else:
        with open(template_path, encoding="utf-8") as file:
            template = file.read()
    size = paper_size(config)
    reports = eval_reports or []
    own = own_eval_results(reports, repo_id)
    paper = paper_eval_results(size[0]) if size else []
    benchmark_reports = [report for report in reports if not report["demo_data"]]
    demo_reports = [report for report in reports if report["demo_data"]]
    sections = []
    if benchmark_reports:
        sections.append(
            "Measured on these weights with the package's evaluation scripts, on the benchmarks' test annotations, "
            "with clips of the frame count given:\n\n" + _results_table(_report_rows(benchmark_reports))
        )
    if demo_reports:
        sections.append(
            "Measured on these weights on the package's **synthetic demo data** (`modeling_eva02at/demo`: generated "
            "videos in the benchmarks' file formats). A check that the model and the scripts work, not a benchmark "
            "result, so not in the model-index:\n\n" + _results_table(_report_rows(demo_reports))
        )
    if not benchmark_reports:
        sections.append(
            "Not evaluated yet on a benchmark's data: run `examples/eval_ek100_mir.py`, `eval_egomcq.py` or "
            "`eval_charades_ego.py` with `--output-json`, and push again with `--eval-json`."
        )
    own_section = "\n\n".join(sections)
    if paper:
        paper_section = (
            f"Reported by the [EVA02-AT paper]({PAPER_URL}) for {size[1]} (EgoClip+ pretraining; "
            f"EK-100 MIR fine-tuned with the SMS loss). They describe the architecture trained the "
            f"paper's way, not measured on these weights:\n\n" + _results_table(_paper_rows(paper))
        )
    else:
        paper_section = "The paper reports no results for this size (its sizes are B/16 and L/14)."
    replacements = {
        "{{ repo_id }}": repo_id,
        "{{ model_name }}": repo_id.split("/")[-1],
        "{{ architecture }}": describe_architecture(config),
        "{{ own_results }}": own_section,
        "{{ paper_results }}": paper_section,
    }
    for placeholder, value in replacements.items():
        template = template.replace(placeholder, value)
    unknown = sorted(set(re.findall(r"\{\{ \w+ \}\}", template)))
    if unknown:
        raise ValueError(
            f"{template_path} has placeholders the card does not fill: {unknown}; known: {sorted(replacements)}"
        )
    card = ModelCard(template, ignore_metadata_errors=False)
    base_model = base_model or (size[2] if size else None)
    if base_model:
        card.data.base_model = base_model
    if license:
        card.data.license = license
    if own or paper:
        # model-index needs a name; ModelCardData writes eval_results as model-index under it.
        card.data.model_name = repo_id.split("/")[-1]
        card.data.eval_results = own + paper
    return str(card)


__all__ = ["TEMPLATE", "describe_architecture", "paper_size", "read_eval_reports", "render_model_card"]
