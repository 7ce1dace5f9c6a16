"""Evaluation metrics of EVA02-AT (docs/metrics.md) as plain numpy functions.

* :func:`ek100_mir_metrics`: EPIC-Kitchens-100 multi-instance retrieval mAP and nDCG, both directions. Same numbers
  as the official evaluation code for about 1/7 of its CPU time and 1/25 of its memory (see its docstring).
* :func:`egomcq_accuracy`: EgoMCQ inter-video / intra-video accuracy.
* :func:`charades_ego_map`: Charades-Ego per-class average precision, averaged over classes.

Every function returns fractions in ``[0, 1]`` (the papers print them x 100) as Python floats, so the results
can go straight into ``Trainer`` logs or JSON. The evaluate modules shipped in ``evaluate_modules/`` wrap these
functions; :func:`metric_path` gives their folder for ``evaluate.load``.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..data.egomcq import EGOMCQ_INTER_VIDEO, EGOMCQ_INTRA_VIDEO


EVALUATE_MODULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluate_modules")

# Elements per chunk of query rows in ek100_mir_metrics: ~2 MB of scores, so the per-chunk temporaries (sort keys,
# gathered relevancies, cumulative sums) stay in cache and the peak memory does not grow with the query count.
_MIR_CHUNK_ELEMENTS = 1 << 19

# Position of the low 32 bits (the column index) inside a uint64 sort key viewed as two uint32 words.
_LOW_WORD = 0 if sys.byteorder == "little" else 1


def metric_path(name: str) -> str:
    """Absolute folder of an evaluate module shipped with this package, for ``evaluate.load``.

    Example::

        import evaluate
        from modeling_eva02at.evaluation.metrics import metric_path

        mir = evaluate.load(metric_path("ek100_mir"))
        mir.compute(predictions=similarity, references=relevancy)

    Args:
        name: ``"ek100_mir"``, ``"egomcq"`` or ``"charades_ego_map"``.

    Raises:
        ValueError: no shipped module has that name (the available ones are listed).
    """
    available = sorted(
        entry
        for entry in os.listdir(EVALUATE_MODULES_DIR)
        if os.path.isfile(os.path.join(EVALUATE_MODULES_DIR, entry, f"{entry}.py"))
    )
    if name not in available:
        raise ValueError(f"unknown metric module {name!r}; shipped modules: {available}")
    return os.path.join(EVALUATE_MODULES_DIR, name)


# ---------------------------------------------------------------------------------------------------------------
# Input helpers
# ---------------------------------------------------------------------------------------------------------------


def _as_array(value, name: str) -> np.ndarray:
    """numpy view of an array-like; torch tensors are detached and moved to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch here
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    # min / max propagate NaN and expose infinities without a full-size boolean temporary (37 MB at EK-100 size).
    if not np.issubdtype(array.dtype, np.floating) or array.size == 0:
        return
    if not (np.isfinite(array.min()) and np.isfinite(array.max())):
        bad = array.size - int(np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} of shape {array.shape} has {bad} NaN or infinite value(s)")


def _worker_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------------------------
# EPIC-Kitchens-100 multi-instance retrieval
# ---------------------------------------------------------------------------------------------------------------


class _Workspace(threading.local):
    """Scratch arrays reused from one query block to the next, one set per thread.

    Every block needs a handful of arrays of a few MB. Allocated afresh, glibc serves arrays that large from new
    ``mmap``-ed (or trimmed and re-grown) pages that the kernel must zero on first touch: measured, that doubled
    the time of the element-wise steps. Reusing the buffers avoids it.
    """

    def array(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """A C-contiguous array of ``shape``; its content is whatever the last user of ``name`` left."""
        dtype = np.dtype(dtype)
        size = int(np.prod(shape))
        buffers = self.__dict__.setdefault("buffers", {})
        buffer = buffers.get((name, dtype))
        if buffer is None or buffer.size < size:
            buffer = buffers[(name, dtype)] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


def _descending_order(scores: np.ndarray, workspace: _Workspace) -> np.ndarray:
    """Column order of every row by descending score, ties by ascending column: ``argsort(-s, kind="stable")``.

    For float32 scores, the score and its column are packed into one uint64 key per element: the float's bits are
    mapped to a uint32 that *decreases* as the score increases, then shifted above the column index. Sorting the
    keys as plain integers gives the stable descending order, and the column index is the key's low word. This
    costs about what numpy's (unstable, SIMD) float argsort costs and half of its stable argsort, and it defines
    the order among ties. Other dtypes fall back to a stable argsort.
    """
    if scores.dtype != np.float32:
        return np.argsort(-scores, axis=1, kind="stable")
    bits = workspace.array("bits", scores.shape, np.float32)
    np.add(scores, np.float32(0.0), out=bits)  # + 0.0 turns -0.0 into +0.0: equal scores, equal keys
    bits = bits.view(np.uint32)
    # Non-negative floats order like their bits; flipping all but the sign bit reverses them and keeps them below
    # the negative floats, whose bits already grow as the value decreases.
    descending = workspace.array("descending", scores.shape, np.uint32)
    np.right_shift(bits, np.uint32(31), out=descending)
    descending -= np.uint32(1)  # 0xFFFFFFFF for non-negative scores, 0 for negative ones
    descending &= np.uint32(0x7FFFFFFF)
    descending ^= bits
    keys = workspace.array("keys", scores.shape, np.uint64)
    np.left_shift(descending, np.uint64(32), out=keys)
    keys |= np.arange(scores.shape[1], dtype=np.uint64)
    keys.sort(axis=1)
    return keys.view(np.uint32)[:, _LOW_WORD::2]


def _mir_scores_as_float32(scores: np.ndarray) -> np.ndarray:
    """Keep float32 (fast path) when it represents the scores exactly; otherwise keep float64 (stable argsort)."""
    if scores.dtype == np.float32:
        return scores
    single = scores.astype(np.float32)
    return single if np.array_equal(single, scores) else scores.astype(np.float64, copy=False)


def _mir_chunk(scores: np.ndarray, relevancy: np.ndarray, workspace: _Workspace) -> tuple[np.ndarray, ...]:
    """Per-query AP and nDCG terms for a block of queries (rows); both inputs C-contiguous.

    Returns ``(ap, num_relevant, dcg, idcg)``; ``ap`` is NaN for rows without an item of relevancy exactly 1, the
    nDCG ratio is undefined (``idcg == 0``) for rows without a non-zero relevancy.
    """
    rows, cols = scores.shape
    order = _descending_order(_mir_scores_as_float32(scores), workspace)
    flat_index = workspace.array("flat_index", (rows, cols), np.intp)
    np.add(order, (np.arange(rows, dtype=np.intp) * cols)[:, None], out=flat_index)
    ranked = workspace.array("ranked", (rows, cols), relevancy.dtype)  # relevancy in ranking order
    np.take(relevancy.reshape(-1), flat_index, out=ranked, mode="clip")  # "clip": no bounds-check copy

    # mAP (official quirk kept): precision at a relevant item is the *graded* relevancy accumulated so far / rank.
    relevant = workspace.array("relevant", (rows, cols), bool)
    np.equal(ranked, 1, out=relevant)
    hit_row, hit_rank = np.nonzero(relevant)
    num_relevant = np.bincount(hit_row, minlength=rows)
    last_rank = int(hit_rank.max(initial=-1)) + 1  # ranks after the last relevant item do not contribute
    cumulative = workspace.array("float64", (rows, last_rank), np.float64)
    np.cumsum(ranked[:, :last_rank], axis=1, dtype=np.float64, out=cumulative)
    ap_sum = np.bincount(hit_row, weights=cumulative[hit_row, hit_rank] / (hit_rank + 1.0), minlength=rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = ap_sum / num_relevant

    # nDCG over the first n_q ranks, n_q = number of non-zero relevancies of the query.
    n_q = np.count_nonzero(relevancy, axis=1)
    depth = int(n_q.max(initial=0))
    log_divisor = np.log2(np.arange(depth, dtype=np.float64) + 2.0)
    beyond = np.arange(depth) >= n_q[:, None]
    terms = workspace.array("float64", (rows, depth), np.float64)
    np.divide(ranked[:, :depth], log_divisor, out=terms)
    np.putmask(terms, beyond, 0.0)
    dcg = terms.sum(axis=1)
    # Ideal ranking = relevancies in decreasing order; ties among them do not change the value.
    ideal = workspace.array("ideal", (rows, cols), relevancy.dtype)
    np.copyto(ideal, relevancy)
    ideal.sort(axis=1)
    np.divide(ideal[:, ::-1][:, :depth], log_divisor, out=terms)
    np.putmask(terms, beyond, 0.0)
    idcg = terms.sum(axis=1)
    return ap, num_relevant, dcg, idcg


def _transposed_columns(matrix: np.ndarray, start: int, stop: int, out: np.ndarray, tile: int = 1024) -> np.ndarray:
    """Write ``matrix[:, start:stop].T`` into the C-contiguous ``out`` and return it.

    Copied in tiles of ``tile`` rows: a single ``np.ascontiguousarray`` of the strided view walks the whole matrix
    per output row and is about 3x slower on the 9668 x 3842 test split.
    """
    for row in range(0, matrix.shape[0], tile):
        out[:, row : row + tile] = matrix[row : row + tile, start:stop].T
    return out


def _mir_direction(
    scores: np.ndarray, relevancy: np.ndarray, transpose: bool, pool: ThreadPoolExecutor | None
) -> tuple[np.ndarray, ...]:
    """AP and nDCG terms of every query of one direction; queries are rows, or columns when ``transpose``."""
    num_queries, num_items = (scores.shape[1], scores.shape[0]) if transpose else scores.shape
    step = max(1, _MIR_CHUNK_ELEMENTS // max(num_items, 1))
    workspace = _Workspace()

    def run(start: int) -> tuple[np.ndarray, ...]:
        stop = min(start + step, num_queries)
        if not transpose:
            return _mir_chunk(scores[start:stop], np.ascontiguousarray(relevancy[start:stop]), workspace)
        shape = (stop - start, num_items)
        return _mir_chunk(
            _transposed_columns(scores, start, stop, workspace.array("scores_t", shape, scores.dtype)),
            _transposed_columns(relevancy, start, stop, workspace.array("relevancy_t", shape, relevancy.dtype)),
            workspace,
        )

    starts = range(0, num_queries, step)
    # numpy releases the GIL in sort / take / cumsum, so threads over query blocks use all cores.
    parts = list(pool.map(run, starts)) if pool is not None and len(starts) > 1 else [run(i) for i in starts]
    return tuple(np.concatenate(column) for column in zip(*parts))


def _mean_over_defined(values: np.ndarray, defined: np.ndarray, what: str, reason: str) -> float:
    undefined = int(np.count_nonzero(~defined))
    if undefined:
        warnings.warn(
            f"{what}: {undefined} of {len(defined)} queries have {reason} and are left out of the mean",
            RuntimeWarning,
            stacklevel=3,
        )
    if not defined.any():
        return float("nan")
    return float(np.mean(values[defined]))


def ek100_mir_metrics(similarity, relevancy, num_workers: int | None = None) -> dict[str, float]:
    r"""EPIC-Kitchens-100 multi-instance retrieval mAP and nDCG (docs/metrics.md), as fractions in ``[0, 1]``.

    Video->text queries are the rows of ``similarity`` / ``relevancy``, text->video queries their columns.

    * **mAP** (official definition, quirk included): rank the items by descending score; the relevant items are
      those with ``R == 1`` exactly; ``AP_q = sum_k [rel_k] c_k / (k + 1) / #rel``, where ``c_k`` is the sum of the
      *graded* relevancies of the items ranked ``0..k``. So partially relevant items ranked early raise the
      precision; it is not the textbook AP.
    * **nDCG**: ``n_q`` = number of non-zero ``R`` of the query; ``DCG_q = sum_{r < n_q} R[q, rank_r] / log2(r + 2)``;
      ``IDCG_q`` is the same with the scores replaced by ``R``; nDCG = mean of ``DCG_q / IDCG_q``.

    Queries without any item of relevancy exactly 1 have no AP (the official code returns NaN for the whole mean);
    here they are left out of the mAP mean with a ``RuntimeWarning`` giving their number. Likewise queries whose
    relevancy row is all zero are left out of the nDCG mean. The EK-100 test split has none of either.

    Ties: items with equal scores are ranked by ascending index (a stable sort of the descending scores). The
    official code uses ``np.argsort(-S)`` for mAP and ``np.argsort(S)[:, ::-1]`` for nDCG, whose order among ties
    is unspecified / reversed; without ties the rankings, hence the numbers, are the same (up to float64 summation
    order, ~1e-16). Sums are accumulated in float64 whatever the input dtype.

    Cost: the official code argsorts and fancy-indexes the whole matrix twice per direction (9668 x 3842 test
    split, 2-core CPU: ~23 s of CPU time, 1.4 GB beyond the inputs). Here the queries are processed in blocks of
    about 0.5 M elements, on a thread per core, with scratch arrays reused between blocks; the ranking is an
    integer sort of packed (score, index) keys, and only the ranks up to the last relevant item (mAP) and the first
    ``n_q`` ranks (nDCG) are reduced: ~3 s of CPU time and ~60 MB (``benchmarks/bench_metrics.py``). float32 scores
    take this path; float64 scores too when float32 represents them exactly, otherwise a (slower) stable argsort.

    Args:
        similarity: ``(num_videos, num_texts)`` scores ``S = V T^T`` (numpy array, or a torch tensor).
        relevancy: ``(num_videos, num_texts)`` relevancy ``R`` in ``[0, 1]`` (e.g. from
            :func:`modeling_eva02at.data.relevancy.build_relevancy`).
        num_workers: threads over query blocks (default: the usable CPU cores).

    Returns:
        ``{"vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG"}``, Python floats;
        ``avg_*`` is the mean of the two directions.

    Raises:
        ValueError: the matrices are not 2-D of the same shape, ``similarity`` has NaN / infinite values, or
            ``relevancy`` has values outside ``[0, 1]`` (or NaN).
    """
    similarity = _as_array(similarity, "similarity")
    relevancy = _as_array(relevancy, "relevancy")
    if similarity.ndim != 2 or similarity.shape != relevancy.shape:
        raise ValueError(
            f"similarity and relevancy must be 2-D (num_videos, num_texts) matrices of the same shape, got "
            f"similarity {similarity.shape} and relevancy {relevancy.shape}"
        )
    if similarity.size == 0:
        raise ValueError(f"similarity and relevancy are empty (shape {similarity.shape})")
    _check_finite(similarity, "similarity")
    if not (relevancy.min() >= 0 and relevancy.max() <= 1):  # False for NaN too
        outside = relevancy.size - int(np.count_nonzero((relevancy >= 0) & (relevancy <= 1)))
        raise ValueError(f"relevancy of shape {relevancy.shape} has {outside} value(s) outside [0, 1] (or NaN)")
    if not np.issubdtype(similarity.dtype, np.floating) or similarity.dtype == np.float16:
        similarity = similarity.astype(np.float64 if similarity.dtype.itemsize > 2 else np.float32)
    if relevancy.dtype == bool:
        relevancy = relevancy.astype(np.float32)

    workers = num_workers or _worker_count()
    pool = ThreadPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        directions = {
            prefix: _mir_direction(similarity, relevancy, transpose, pool)
            for prefix, transpose in (("vis2txt", False), ("txt2vis", True))
        }
    finally:
        if pool is not None:
            pool.shutdown()
    results = {}
    for prefix, (ap, num_relevant, dcg, idcg) in directions.items():
        results[f"{prefix}_mAP"] = _mean_over_defined(
            ap, num_relevant > 0, f"{prefix} mAP", "no item of relevancy exactly 1"
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = dcg / idcg
        results[f"{prefix}_nDCG"] = _mean_over_defined(ratio, idcg > 0, f"{prefix} nDCG", "an all-zero relevancy")
    results["avg_mAP"] = (results["vis2txt_mAP"] + results["txt2vis_mAP"]) / 2
    results["avg_nDCG"] = (results["vis2txt_nDCG"] + results["txt2vis_nDCG"]) / 2
    order = ("vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG")
    return {key: results[key] for key in order}


# ---------------------------------------------------------------------------------------------------------------
# EgoMCQ
# ---------------------------------------------------------------------------------------------------------------


def egomcq_accuracy(similarity_or_predictions, answers, types, num_candidates: int | None = None) -> dict:
    """EgoMCQ accuracy, split by question type, as fractions in ``[0, 1]``.

    Each question has a text query and ``num_candidates`` (5) candidate clips; the prediction is the candidate
    with the highest similarity (the first one on ties, like ``torch.argmax``).

    ``types``: ``1`` = **inter-video** (candidates from different videos, the easier task: ~90-95 %), ``2`` =
    **intra-video** (candidates are neighbouring clips of the same video: ~60 %), as EgoVLP's data loader documents
    them (`EGOMCQ_INTER_VIDEO`, `EGOMCQ_INTRA_VIDEO`; the comment there gives the references on the swapped names
    printed by EgoVLP's and LaViLa's metric code). Each type's accuracy is computed over the questions of that value
    alone; `modeling_eva02at.data.egomcq.EgoMcqQuestions` checks a file's types against its candidates' videos
    and warns where they disagree.

    Args:
        similarity_or_predictions: ``(num_questions, num_candidates)`` similarities, or ``(num_questions,)``
            predicted candidate indices.
        answers: ``(num_questions,)`` index of the correct candidate.
        types: ``(num_questions,)`` question types, 1 (inter-video) or 2 (intra-video).
        num_candidates: candidates per question; default: the similarity's width, or 5 for predicted indices.

    Returns:
        ``{"inter_video_accuracy", "intra_video_accuracy", "accuracy", "num_inter_video", "num_intra_video"}``.
        ``accuracy`` is over all questions; an accuracy of a type without questions is NaN.

    Raises:
        ValueError: wrong shapes, NaN similarities, answers / predictions out of ``[0, num_candidates)``, or
            types other than 1 and 2 (the unknown values are named).
    """
    scores = _as_array(similarity_or_predictions, "similarity_or_predictions")
    answers = _as_array(answers, "answers")
    types = _as_array(types, "types")
    if scores.ndim == 2:
        _check_finite(scores, "similarity")
        if scores.shape[1] == 0:
            raise ValueError(f"similarity has no candidate column: shape {scores.shape}")
        if num_candidates is not None and num_candidates != scores.shape[1]:
            raise ValueError(f"num_candidates={num_candidates} but similarity has shape {scores.shape}")
        num_candidates = scores.shape[1]
        predictions = np.argmax(scores, axis=1)
    elif scores.ndim == 1:
        num_candidates = 5 if num_candidates is None else num_candidates
        predictions = scores
    else:
        raise ValueError(
            "similarity_or_predictions must be (num_questions, num_candidates) similarities or (num_questions,) "
            f"predictions, got shape {scores.shape}"
        )
    num_questions = predictions.shape[0]
    for name, values in (("answers", answers), ("types", types)):
        if values.shape != (num_questions,):
            raise ValueError(
                f"{name} must have shape ({num_questions},) to match similarity_or_predictions {scores.shape}, "
                f"got {values.shape}"
            )
    for name, values in (("answers", answers), ("predictions", predictions)):
        if not np.all(values == np.round(values)) or np.any((values < 0) | (values >= num_candidates)):
            bad = np.unique(values[(values < 0) | (values >= num_candidates) | (values != np.round(values))])
            raise ValueError(f"{name} must be integers in [0, {num_candidates}), got {bad[:10].tolist()}")
    unknown = np.setdiff1d(np.unique(types), [EGOMCQ_INTER_VIDEO, EGOMCQ_INTRA_VIDEO])
    if len(unknown):
        raise ValueError(
            f"types must be {EGOMCQ_INTER_VIDEO} (inter-video) or {EGOMCQ_INTRA_VIDEO} (intra-video), "
            f"got unknown value(s) {unknown.tolist()}"
        )
    if num_questions == 0:
        raise ValueError("no question given")

    correct = predictions.astype(np.int64) == answers.astype(np.int64)
    results = {}
    for label, value in (("inter_video", EGOMCQ_INTER_VIDEO), ("intra_video", EGOMCQ_INTRA_VIDEO)):
        selected = types == value
        count = int(np.count_nonzero(selected))
        results[f"{label}_accuracy"] = float(np.mean(correct[selected])) if count else float("nan")
        results[f"num_{label}"] = count
    results["accuracy"] = float(np.mean(correct))
    order = ("inter_video_accuracy", "intra_video_accuracy", "accuracy", "num_inter_video", "num_intra_video")
    return {key: results[key] for key in order}


# ---------------------------------------------------------------------------------------------------------------
# Charades-Ego
# ---------------------------------------------------------------------------------------------------------------


def charades_ego_map(scores, labels) -> dict[str, float]:
    """Charades-Ego action recognition mAP, a fraction in ``[0, 1]``.

    Per class, the videos are ranked by descending score (ties: ascending video index); the class's average
    precision is the mean, over its positive videos, of the precision at each positive's rank
    (``#positives ranked at or above it / its 1-based rank``). mAP is the mean over the classes with at least one
    positive. Videos without any label are left out first (the official ``charades_map`` pushes them to the
    bottom of every ranking, which is the same without ties).

    Args:
        scores: ``(num_videos, num_classes)`` scores (e.g. video-to-class-text similarities).
        labels: ``(num_videos, num_classes)`` multi-hot labels, 0/1 (bool, int or float).

    Returns:
        ``{"mAP": float}`` (NaN if no class has a positive).

    Raises:
        ValueError: shapes differ or are not 2-D, labels other than 0/1, NaN / infinite scores.
    """
    scores = _as_array(scores, "scores")
    labels = _as_array(labels, "labels")
    if scores.ndim != 2 or scores.shape != labels.shape:
        raise ValueError(
            "scores and labels must be 2-D (num_videos, num_classes) arrays of the same shape, got "
            f"scores {scores.shape} and labels {labels.shape}"
        )
    _check_finite(scores, "scores")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f"labels must be 0/1, got values {np.unique(labels[(labels != 0) & (labels != 1)])[:10]}")
    labelled = labels.any(axis=1)
    scores, positive = scores[labelled].astype(np.float64), labels[labelled].astype(bool)

    order = np.argsort(-scores, axis=0, kind="stable")
    ranked_positive = np.take_along_axis(positive, order, axis=0)
    hits = np.cumsum(ranked_positive, axis=0)
    precision = hits / np.arange(1, len(scores) + 1, dtype=np.float64)[:, None]
    num_positive = positive.sum(axis=0)
    has_positive = num_positive > 0
    if not has_positive.any():
        return {"mAP": float("nan")}
    average_precision = (precision * ranked_positive).sum(axis=0)[has_positive] / num_positive[has_positive]
    return {"mAP": float(np.mean(average_precision))}
