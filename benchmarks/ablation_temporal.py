#!/usr/bin/env python
"""The temporal ablation in miniature: which source of temporal order lets the demo model learn the motion verbs.

Trains the demo (examples/train_mir.py on the synthetic EK-100-format data, same data and steps for every run) in four
variants, each with several seeds:

    both            temporal RoPE + learnable temporal embedding (the paper's model)
    rope only       --no-temporal-embedding
    embedding only  --no-temporal-rope
    neither         both removed: the encoder sees a set of frames (a clip and its reversal embed identically)

and reports mean +- std over seeds of avg mAP, avg nDCG, verb top-1 and the accuracy within each direction pair on
the held-out split. Writes `<output>/ablation_temporal.md` (a Markdown table), `<output>/ablation_temporal.json`
(every run) and, when matplotlib is installed (`pip install -e '.[plot]'`), `<output>/ablation_temporal.png`.

    python benchmarks/ablation_temporal.py                   # make ablation: 4 variants x 3 seeds, 24 epochs each
    python benchmarks/ablation_temporal.py --epochs 12       # half the demo's length, early in training
    python benchmarks/ablation_temporal.py --seeds 0 1 --epochs 4 --output outputs/ablation-quick

An interrupted ablation resumes: finished runs are read back from `<output>/ablation_temporal.json`.
"""

import argparse
import json
import os
import sys
import tempfile
import time


VARIANTS = {
    "both": [],
    "rope only": ["--no-temporal-embedding"],
    "embedding only": ["--no-temporal-rope"],
    "neither": ["--no-temporal-rope", "--no-temporal-embedding"],
}
METRICS = {
    "avg mAP": ("after training", "avg_mAP"),
    "avg nDCG": ("after training", "avg_nDCG"),
    "verb top-1": ("motion after training", "verb_top1"),
    "left/right": ("motion after training", "pair/left/right"),
    "up/down": ("motion after training", "pair/up/down"),
    "enlarge/shrink": ("motion after training", "pair/enlarge/shrink"),
}
ABLATION_EPOCHS = 24.0
"""Epochs per run by default: 1200 steps, the demo's own training. The README's table was made with it."""
CHANCE = {"verb top-1": 1 / 6, "left/right": 0.5, "up/down": 0.5, "enlarge/shrink": 0.5}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="which variants to train (default: all four)",
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=ABLATION_EPOCHS,
        help="training epochs per run (default: %(default)s, the demo's own length; the 12 runs take "
        "about an hour on 2 cores; 12 compares the variants early in training)",
    )
    parser.add_argument(
        "--output",
        default=os.path.join("outputs", "ablation-temporal"),
        help="folder for the table, the runs' JSON and the plot (default: %(default)s)",
    )
    parser.add_argument("--demo-dir", default=None, help="demo dataset folder (default: the demo's own)")
    return parser.parse_args(argv)


def train_once(flags: list[str], seed: int, epochs: float | None, demo_dir: str | None) -> dict:
    from modeling_eva02at.training.train_mir import parse_mir_arguments, train_mir

    with tempfile.TemporaryDirectory(prefix="eva02at-ablation-") as output_dir:
        argv = [
            *flags,
            "--seed",
            str(seed),
            "--output-dir",
            output_dir,
            "--save-strategy",
            "no",
            "--report-to",
            "none",
            "--disable-tqdm",
            "true",
            "--logging-steps",
            "1000",
        ]
        if epochs is not None:
            argv += ["--num-train-epochs", str(epochs)]
        if demo_dir is not None:
            argv += ["--demo-dir", demo_dir]
        rows = train_mir(*parse_mir_arguments(argv), save_model=False)  # only the scores are kept
    return {name: rows[section][key] for name, (section, key) in METRICS.items()}


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float]]]:
    import numpy as np

    return {
        variant: {
            name: (float(np.mean([r[name] for r in results])), float(np.std([r[name] for r in results])))
            for name in METRICS
        }
        for variant, results in runs.items()
    }


def markdown_table(summary: dict, num_seeds: int) -> str:
    header = "| variant | " + " | ".join(METRICS) + " |"
    lines = [header, "|---" * (len(METRICS) + 1) + "|"]
    for variant, values in summary.items():
        cells = [f"{100 * mean:.1f} ± {100 * std:.1f}" for mean, std in values.values()]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    chance = " | ".join(f"{100 * CHANCE[name]:.1f}" if name in CHANCE else "" for name in METRICS)
    lines.append(f"| chance | {chance} |")
    lines.append("")
    lines.append(
        f"Percent on the demo's held-out split, mean ± std over {num_seeds} seeds; the last four columns are "
        "verb top-1 among the six verbs and the accuracy within each direction pair."
    )
    return "\n".join(lines)


def plot(summary: dict, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[plot]'): no plot written")
        return False
    import numpy as np

    names = list(METRICS)
    width = 0.8 / len(summary)
    figure, axis = plt.subplots(figsize=(10, 4))
    for index, (variant, values) in enumerate(summary.items()):
        means = [100 * values[name][0] for name in names]
        stds = [100 * values[name][1] for name in names]
        axis.bar(
            np.arange(len(names)) + (index - (len(summary) - 1) / 2) * width,
            means,
            width,
            yerr=stds,
            capsize=3,
            label=variant,
        )
    for position, name in enumerate(names):
        if name in CHANCE:
            axis.hlines(100 * CHANCE[name], position - 0.4, position + 0.4, colors="gray", linestyles="dashed")
    axis.set_xticks(np.arange(len(names)), names)
    axis.set_ylabel("percent (mean ± std over seeds)")
    axis.set_ylim(0, 100)
    axis.set_title("Temporal ablation on the demo task (dashed: chance)")
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    from modeling_eva02at.utils.files import atomic_path

    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return True


def load_finished(path: str, epochs: float | None) -> tuple[dict, float]:
    """The runs (and their training seconds) of an interrupted ablation in `path` with the same epochs, if any."""
    if not os.path.exists(path):
        return {}, 0.0
    with open(path, encoding="utf-8") as handle:
        saved = json.load(handle)
    if saved.get("epochs") != epochs:
        return {}, 0.0
    return saved["runs"], float(saved.get("seconds", 0.0))


def main(argv=None) -> int:
    from modeling_eva02at.utils.files import atomic_path, write_json

    args = parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    json_path = os.path.join(args.output, "ablation_temporal.json")
    # Every finished run is saved at once, so an interrupted ablation resumes where it stopped.
    runs, seconds = load_finished(json_path, args.epochs)
    # Seeds outer, variants inner: at any point every variant has as many seeds as the others (give or take one).
    for seed in args.seeds:
        for variant in args.variants:
            done = {run["seed"] for run in runs.get(variant, [])}
            if seed in done:
                continue
            print(f"[{seconds:7.0f} s] {variant}, seed {seed}", flush=True)
            started = time.perf_counter()
            metrics = train_once(VARIANTS[variant], seed, args.epochs, args.demo_dir)
            seconds += time.perf_counter() - started
            runs.setdefault(variant, []).append({"seed": seed, **metrics})
            write_json(json_path, {"seeds": args.seeds, "epochs": args.epochs, "seconds": seconds, "runs": runs})

    runs = {variant: [run for run in runs[variant] if run["seed"] in args.seeds] for variant in args.variants}
    summary = summarise(runs)
    table = markdown_table(summary, len(args.seeds))
    table += (
        f"\nTrained in {seconds / 60:.1f} min on {os.cpu_count()} CPU cores ({len(args.variants)} variants x "
        f"{len(args.seeds)} seeds, {args.epochs:g} epochs of the demo's data per run, "
        f"{seconds / sum(map(len, runs.values())) / 60:.1f} min per run).\n"
    )
    with atomic_path(os.path.join(args.output, "ablation_temporal.md")) as temporary:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(table)
    plot(summary, os.path.join(args.output, "ablation_temporal.png"))
    print("\n" + table)
    print(f"Written to {args.output}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
