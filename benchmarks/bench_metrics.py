"""Speed and memory of the EK-100 MIR metric at full size (9668 clips x 3842 captions), against the official code.

    python benchmarks/bench_metrics.py                      # real test relevancy from tests/data/ek100
    python benchmarks/bench_metrics.py --retrieval-csv A.csv --sentence-csv B.csv
    python benchmarks/bench_metrics.py --relevancy-pkl caption_relevancy_EPIC_100_retrieval_test.pkl

Implementations, each run in its own subprocess so that its memory numbers are not mixed with the others':

* ``ours``: ``modeling_eva02at.evaluation.metrics.ek100_mir_metrics``.
* ``official``: a straightforward numpy transcription of the official EPIC-Kitchens evaluation (full argsorts,
  fancy-indexed copies of the whole matrix), given the relevancy as float64 like the official pickle.
* ``evaluate``: the shipped evaluate module, ``compute(predictions=S, references=R)`` (``evaluate.load`` timed
  separately), and ``evaluate_batches``: the same module fed with ``add_batch`` in blocks of 1024 clips
  (the Arrow round trip).

The similarity is seeded random float32 without ties inside any row or column, so every implementation ranks
identically and the numbers must agree to float64 rounding.

Time: median wall-clock (and process CPU time) of ``--repeats`` calls; on a shared machine compare the CPU column.
Memory, beyond the loaded inputs: the growth of the peak RSS during the first call (the kernel's VmHWM mark is
reset just before it through /proc/self/clear_refs, so imports and loading do not mask it), and the peak of the
allocations tracemalloc sees during one extra call (numpy reports its buffers to tracemalloc).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEFAULT_DATA = os.path.join(REPO, "tests", "data", "ek100")
IMPLEMENTATIONS = ("ours", "official", "evaluate", "evaluate_batches")
KEYS = ("vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG")


# ---------------------------------------------------------------------------------------------------------------
# The official evaluation, transcribed as directly as possible (numpy, whole-matrix argsorts).
# ---------------------------------------------------------------------------------------------------------------


def official_map(similarity: np.ndarray, relevancy: np.ndarray) -> float:
    ranked_order = (-similarity).argsort()
    rows = np.arange(relevancy.shape[0])[:, None]
    ranked_rel = relevancy[rows, ranked_order]
    cumulative = np.cumsum(ranked_rel, axis=1)
    cumulative[ranked_rel != 1] = 0
    divisor = np.arange(ranked_rel.shape[1]) + 1
    number_rel = np.sum(ranked_rel == 1, axis=1)
    return float(np.mean(np.sum(cumulative / divisor, axis=1) / number_rel))


def official_dcg(similarity: np.ndarray, relevancy: np.ndarray, k_counts: np.ndarray) -> np.ndarray:
    x_size, y_size = similarity.shape
    ranks = np.argsort(similarity)[:, ::-1]
    divisors = np.repeat(np.log2(np.arange(y_size) + 2)[None, :], x_size, axis=0)
    columns = np.repeat(np.arange(x_size)[:, None], y_size, axis=1)
    return np.sum(relevancy[columns, ranks] * k_counts / divisors, axis=1)


def official_ndcg(similarity: np.ndarray, relevancy: np.ndarray) -> float:
    counts = (relevancy > 0).sum(axis=1)
    k_counts = (np.arange(relevancy.shape[1])[None, :] < counts[:, None]).astype(int)
    idcg = official_dcg(relevancy, relevancy, k_counts)
    return float(np.mean(official_dcg(similarity, relevancy, k_counts) / idcg))


def official_metrics(similarity: np.ndarray, relevancy: np.ndarray) -> dict:
    v2t_map, t2v_map = official_map(similarity, relevancy), official_map(similarity.T, relevancy.T)
    v2t_ndcg, t2v_ndcg = official_ndcg(similarity, relevancy), official_ndcg(similarity.T, relevancy.T)
    return {
        "vis2txt_mAP": v2t_map,
        "txt2vis_mAP": t2v_map,
        "avg_mAP": (v2t_map + t2v_map) / 2,
        "vis2txt_nDCG": v2t_ndcg,
        "txt2vis_nDCG": t2v_ndcg,
        "avg_nDCG": (v2t_ndcg + t2v_ndcg) / 2,
    }


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------


def _redraw_ties_along_rows(scores: np.ndarray, rng: np.random.Generator) -> int:
    """Re-draw every value that occurs twice in its row; returns the number of rows touched."""
    tied_rows = np.flatnonzero((np.diff(np.sort(scores, axis=1), axis=1) == 0).any(axis=1))
    for row in tied_rows:
        _, inverse, counts = np.unique(scores[row], return_inverse=True, return_counts=True)
        duplicated = counts[inverse] > 1
        scores[row, duplicated] = rng.standard_normal(int(duplicated.sum()), dtype=np.float32)
    return len(tied_rows)


def tie_free_scores(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Seeded standard-normal float32 scores with no repeated value inside any row or any column."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal(shape, dtype=np.float32)
    while _redraw_ties_along_rows(scores, rng) + _redraw_ties_along_rows(scores.T, rng):
        pass
    return scores


def load_relevancy(args) -> np.ndarray:
    from modeling_eva02at.data.relevancy import (
        build_relevancy,
        load_relevancy_pickle,
        read_retrieval_csv,
        read_sentence_csv,
    )

    if args.relevancy_pkl:
        return load_relevancy_pickle(args.relevancy_pkl)
    return build_relevancy(read_retrieval_csv(args.retrieval_csv), read_sentence_csv(args.sentence_csv))


# ---------------------------------------------------------------------------------------------------------------
# One implementation, in a fresh process
# ---------------------------------------------------------------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS, so that imports and input loading done
    before the measured call do not hide its peak. Linux >= 4.0; returns False where unavailable."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def worker(name: str, folder: str, repeats: int) -> dict:
    import warnings

    similarity = np.load(os.path.join(folder, "similarity.npy"))
    relevancy = np.load(os.path.join(folder, "relevancy.npy"))
    extra = {}
    if name == "official":
        relevancy = relevancy.astype(np.float64)  # the official pickle holds float64

        def call():
            return official_metrics(similarity, relevancy)

    elif name == "ours":
        from modeling_eva02at.evaluation.metrics import ek100_mir_metrics

        def call():
            return ek100_mir_metrics(similarity, relevancy)

    else:
        import evaluate

        from modeling_eva02at.evaluation.metrics import metric_path

        start = time.perf_counter()
        module = evaluate.load(metric_path("ek100_mir"))
        extra["load_s"] = time.perf_counter() - start

        if name == "evaluate":

            def call():
                return module.compute(predictions=similarity, references=relevancy)

        else:

            def call():
                for row in range(0, similarity.shape[0], 1024):
                    module.add_batch(predictions=similarity[row : row + 1024], references=relevancy[row : row + 1024])
                return module.compute()

    warnings.simplefilter("ignore")
    extra["peak_reset"] = _reset_peak_rss()
    baseline = _status_bytes("VmRSS") if extra["peak_reset"] else _peak_rss_bytes()
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        result = call()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if len(times) == 1:
            rss_growth = _peak_rss_bytes() - baseline
    tracemalloc.start()
    call()
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "name": name,
        "median_s": statistics.median(times),
        "times_s": times,
        "median_cpu_s": statistics.median(cpu_times),
        "peak_rss_growth_bytes": rss_growth,
        "traced_peak_bytes": traced_peak,
        "result": {key: float(result[key]) for key in KEYS},
        **extra,
    }


def run_in_subprocess(name: str, folder: str, repeats: int) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        name,
        "--folder",
        folder,
        "--repeats",
        str(repeats),
    ]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--retrieval-csv", default=os.path.join(DEFAULT_DATA, "EPIC_100_retrieval_test.csv"))
    parser.add_argument("--sentence-csv", default=os.path.join(DEFAULT_DATA, "EPIC_100_retrieval_test_sentence.csv"))
    parser.add_argument("--relevancy-pkl", default=None, help="official relevancy pickle (instead of the CSVs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS))
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.repeats)))
        return

    start = time.perf_counter()
    relevancy = load_relevancy(args)
    build_s = time.perf_counter() - start
    similarity = tie_free_scores(relevancy.shape, args.seed)
    print(
        f"relevancy {relevancy.shape} built in {build_s:.2f} s; similarity: seeded tie-free float32 "
        f"(seed {args.seed}); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
    )

    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as folder:
        np.save(os.path.join(folder, "similarity.npy"), similarity)
        np.save(os.path.join(folder, "relevancy.npy"), relevancy)
        reports = [run_in_subprocess(name, folder, args.repeats) for name in args.only]

    by_name = {report["name"]: report for report in reports}
    reference = by_name.get("official")
    print(
        f"\n{'implementation':18s} {'median s':>9s} {'CPU s':>7s} {'peak RSS +MB':>13s} {'traced MB':>10s} "
        f"{'x faster':>9s}"
    )
    for report in reports:
        speedup = reference["median_s"] / report["median_s"] if reference else float("nan")
        print(
            f"{report['name']:18s} {report['median_s']:9.2f} {report['median_cpu_s']:7.2f} "
            f"{report['peak_rss_growth_bytes'] / 2**20:13.0f} {report['traced_peak_bytes'] / 2**20:10.0f} "
            f"{speedup:9.1f}" + (f"   (evaluate.load {report['load_s']:.2f} s)" if "load_s" in report else "")
        )

    print("\nmetrics (%):")
    for report in reports:
        print(f"  {report['name']:18s} " + "  ".join(f"{k}={100 * report['result'][k]:.4f}" for k in KEYS))
    base = by_name.get("ours", reports[0])
    for report in reports:
        if report is base:
            continue
        diff = max(abs(report["result"][k] - base["result"][k]) for k in KEYS)
        verdict = "identical" if diff <= 1e-12 else "DIFFERENT"
        print(f"{report['name']} vs {base['name']}: max |difference| = {diff:.1e} -> {verdict}")

    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"build_s": build_s, "reports": reports}, handle, indent=2)


if __name__ == "__main__":
    main()
