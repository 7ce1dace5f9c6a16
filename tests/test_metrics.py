"""Evaluation metrics (docs/metrics.md): EK-100 MIR mAP / nDCG, EgoMCQ accuracy, Charades-Ego mAP, and the
evaluate modules that wrap them."""

import math
import os
import warnings

import numpy as np
import pytest
import torch

from modeling_eva02at.data.relevancy import build_relevancy, read_retrieval_csv, read_sentence_csv
from modeling_eva02at.evaluation import metrics as metrics_module
from modeling_eva02at.evaluation.metrics import (
    EGOMCQ_INTER_VIDEO,
    EGOMCQ_INTRA_VIDEO,
    charades_ego_map,
    egomcq_accuracy,
    ek100_mir_metrics,
    metric_path,
)


MIR_KEYS = ("vis2txt_mAP", "txt2vis_mAP", "avg_mAP", "vis2txt_nDCG", "txt2vis_nDCG", "avg_nDCG")


# ---------------------------------------------------------------------------------------------------------------
# Reference: the official EPIC-Kitchens-100 evaluation written out with full argsorts, one query at a time where
# that is clearer. `stable=True` ranks ties by ascending index (the documented tie rule of ek100_mir_metrics);
# `stable=False` uses the official calls, np.argsort(-S) for mAP and np.argsort(S)[::-1] for nDCG.
# ---------------------------------------------------------------------------------------------------------------


def reference_ap(scores, relevancy, stable):
    order = np.argsort(-scores, kind="stable") if stable else np.argsort(-scores)
    ranked = relevancy[order].astype(np.float64)
    cumulative = np.cumsum(ranked)
    hits = np.flatnonzero(ranked == 1)
    return np.sum(cumulative[hits] / (hits + 1)) / len(hits) if len(hits) else np.nan


def reference_ndcg(scores, relevancy, stable):
    order = np.argsort(-scores, kind="stable") if stable else np.argsort(scores)[::-1]
    n_q = np.count_nonzero(relevancy)
    discount = np.log2(np.arange(n_q) + 2)
    dcg = np.sum(relevancy[order][:n_q] / discount)
    idcg = np.sum(np.sort(relevancy)[::-1][:n_q] / discount)
    return dcg / idcg if idcg > 0 else np.nan


def reference_mir(scores, relevancy, stable=True):
    out = {}
    for prefix, s, r in (("vis2txt", scores, relevancy), ("txt2vis", scores.T, relevancy.T)):
        out[f"{prefix}_mAP"] = np.nanmean([reference_ap(a, b, stable) for a, b in zip(s, r)])
        out[f"{prefix}_nDCG"] = np.nanmean([reference_ndcg(a, b, stable) for a, b in zip(s, r)])
    out["avg_mAP"] = (out["vis2txt_mAP"] + out["txt2vis_mAP"]) / 2
    out["avg_nDCG"] = (out["vis2txt_nDCG"] + out["txt2vis_nDCG"]) / 2
    return out


def graded_relevancy(rng, shape):
    """Relevancy like EK-100's: many zeros, a few exact ones, graded values in between; >= one 1 per row/column."""
    values = rng.choice([0.0, 0.0, 0.0, 0.25, 0.5, 1 / 3, 0.75, 5 / 6, 1.0], size=shape).astype(np.float32)
    values[np.arange(shape[0]), rng.integers(0, shape[1], shape[0])] = 1.0
    values[rng.integers(0, shape[0], shape[1]), np.arange(shape[1])] = 1.0
    return values


def distinct_scores(rng, shape):
    """float32 scores without repeated values anywhere, so every tie rule ranks identically."""
    flat = rng.permutation(shape[0] * shape[1]).astype(np.float32) / np.float32(shape[0] * shape[1])
    return flat.reshape(shape) - np.float32(0.5)


def assert_metrics_close(actual, expected, tol=1e-12):
    assert list(actual) == list(MIR_KEYS)
    for key in MIR_KEYS:
        assert actual[key] == pytest.approx(expected[key], rel=tol, abs=tol), key


@pytest.fixture(scope="module")
def ek100_relevancy(data_dir):
    folder = os.path.join(data_dir, "ek100")
    return build_relevancy(
        read_retrieval_csv(os.path.join(folder, "EPIC_100_retrieval_test.csv")),
        read_sentence_csv(os.path.join(folder, "EPIC_100_retrieval_test_sentence.csv")),
    )


# ---------------------------------------------------------------------------------------------------------------
# EK-100 MIR: hand-computed cases
# ---------------------------------------------------------------------------------------------------------------


def test_mir_hand_computed_row():
    relevancy = np.array([[1.0, 0.5, 0.0]])
    scores = np.array([[0.2, 0.9, 0.1]], dtype=np.float32)
    with pytest.warns(RuntimeWarning) as caught:
        result = ek100_mir_metrics(scores, relevancy)
    assert sorted(str(w.message) for w in caught) == [
        "txt2vis mAP: 2 of 3 queries have no item of relevancy exactly 1 and are left out of the mean",
        "txt2vis nDCG: 1 of 3 queries have an all-zero relevancy and are left out of the mean",
    ]
    # Ranking: item 1 (R 0.5), item 0 (R 1), item 2. The relevant item sits at rank 2 with graded cumsum 1.5.
    assert result["vis2txt_mAP"] == pytest.approx(1.5 / 2)
    # n_q = 2: DCG = 0.5 / log2(2) + 1 / log2(3); IDCG = 1 / log2(2) + 0.5 / log2(3).
    expected_ndcg = (0.5 + 1 / math.log2(3)) / (1 + 0.5 / math.log2(3))
    assert result["vis2txt_nDCG"] == pytest.approx(expected_ndcg)
    # Text->video: one clip per caption. Caption 0 finds its relevant clip first (AP 1); caption 1 has no relevant
    # clip (left out of the mAP, with the warning) but nDCG 1; caption 2 has no relevancy at all.
    assert result["txt2vis_mAP"] == 1.0 and result["txt2vis_nDCG"] == 1.0
    assert result["avg_mAP"] == pytest.approx((0.75 + 1.0) / 2)


def test_mir_graded_cumsum_quirk():
    # Two relevant items ranked 2nd and 4th behind partial ones: AP = ((0.5 + 1) / 2 + (0.5 + 1 + 0.5 + 1) / 4) / 2,
    # not the textbook (1/2 + 2/4) / 2.
    relevancy = np.array([[0.5, 1.0, 0.5, 1.0, 0.0]])
    scores = np.array([[5.0, 4.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ek100_mir_metrics(scores, relevancy)
    assert result["vis2txt_mAP"] == pytest.approx((1.5 / 2 + 3.0 / 4) / 2)


def test_mir_relevancy_as_scores_is_perfect():
    rng = np.random.default_rng(1)
    relevancy = graded_relevancy(rng, (40, 30))
    result = ek100_mir_metrics(relevancy, relevancy)
    assert all(result[key] == pytest.approx(1.0, abs=1e-12) for key in MIR_KEYS)


# ---------------------------------------------------------------------------------------------------------------
# EK-100 MIR: equality with the reference
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 7), (13, 5), (37, 61), (120, 45)])
def test_mir_matches_official_reference_without_ties(shape, monkeypatch):
    rng = np.random.default_rng(shape[0])
    relevancy = graded_relevancy(rng, shape)
    scores = distinct_scores(rng, shape)
    monkeypatch.setattr(metrics_module, "_MIR_CHUNK_ELEMENTS", 256)  # many query blocks, on two threads
    expected = reference_mir(scores, relevancy, stable=False)
    assert_metrics_close(ek100_mir_metrics(scores, relevancy, num_workers=2), expected)
    assert_metrics_close(ek100_mir_metrics(scores, relevancy, num_workers=1), expected)


def test_mir_ties_are_ranked_by_index():
    rng = np.random.default_rng(2)
    relevancy = graded_relevancy(rng, (50, 40))
    scores = rng.integers(0, 4, size=(50, 40)).astype(np.float32)  # many ties, and -0.0 == +0.0
    scores[0, :5] = [-0.0, 0.0, -0.0, 0.0, -0.0]
    assert_metrics_close(ek100_mir_metrics(scores, relevancy), reference_mir(scores, relevancy, stable=True))


def test_mir_ties_change_the_result_so_the_rule_matters():
    relevancy = np.array([[0.0, 1.0], [1.0, 0.0]])
    scores = np.zeros((2, 2), dtype=np.float32)
    result = ek100_mir_metrics(scores, relevancy)
    # Ties by index: row 0 ranks its relevant item 2nd (AP 0.5), row 1 first (AP 1).
    assert result["vis2txt_mAP"] == pytest.approx(0.75)


@pytest.mark.parametrize("exact_in_float32", [True, False])
def test_mir_float64_scores(exact_in_float32):
    rng = np.random.default_rng(3)
    relevancy = graded_relevancy(rng, (30, 20))
    scores = distinct_scores(rng, (30, 20)).astype(np.float64)
    if not exact_in_float32:  # differences below float32 resolution must still rank correctly
        scores = 1.0 + scores * 1e-9
        assert len(np.unique(scores.astype(np.float32))) < scores.size
    assert_metrics_close(ek100_mir_metrics(scores, relevancy), reference_mir(scores, relevancy, stable=False))


def test_mir_accepts_torch_and_other_layouts():
    rng = np.random.default_rng(4)
    relevancy = graded_relevancy(rng, (25, 35))
    scores = distinct_scores(rng, (25, 35))
    expected = ek100_mir_metrics(scores, relevancy)
    assert ek100_mir_metrics(torch.from_numpy(scores).requires_grad_(), torch.from_numpy(relevancy)) == expected
    fortran = ek100_mir_metrics(np.asfortranarray(scores), np.asfortranarray(relevancy.astype(np.float64)))
    assert_metrics_close(fortran, expected)


def test_mir_queries_without_relevant_items_are_left_out():
    rng = np.random.default_rng(5)
    relevancy = graded_relevancy(rng, (20, 15)).astype(np.float64)
    relevancy[3] = 0.0  # no relevancy at all: no AP, no nDCG
    relevancy[7] = np.where(relevancy[7] == 1, 0.5, relevancy[7])  # graded only: no AP, nDCG defined
    scores = distinct_scores(rng, (20, 15))
    with pytest.warns(RuntimeWarning) as caught:
        result = ek100_mir_metrics(scores, relevancy)
    messages = [str(w.message) for w in caught]
    assert any("vis2txt mAP: 2 of 20 queries" in m for m in messages)
    assert any("vis2txt nDCG: 1 of 20 queries" in m for m in messages)
    expected = reference_mir(scores, relevancy, stable=False)  # nanmean = the defined queries only
    assert_metrics_close(result, expected)
    keep = [q for q in range(20) if q not in (3, 7)]
    assert result["vis2txt_mAP"] == pytest.approx(np.mean([reference_ap(scores[q], relevancy[q], False) for q in keep]))


def test_mir_bad_input():
    good = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"similarity \(3, 4\) and relevancy \(4, 3\)"):
        ek100_mir_metrics(good, good.T)
    with pytest.raises(ValueError, match=r"similarity \(4,\)"):
        ek100_mir_metrics(np.ones(4), np.ones(4))
    bad = good.copy()
    bad[0, 1], bad[2, 2] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"similarity of shape \(3, 4\) has 2 NaN or infinite"):
        ek100_mir_metrics(bad, good)
    with pytest.raises(ValueError, match=r"relevancy .* has 3 value\(s\) outside \[0, 1\]"):
        ek100_mir_metrics(good, np.where(np.eye(3, 4) > 0, 1.5, 0.5))
    with pytest.raises(ValueError, match="relevancy .* 3 value"):
        ek100_mir_metrics(good, np.where(np.eye(3, 4) > 0, np.nan, 0.5))
    with pytest.raises(ValueError, match="must be numeric"):
        ek100_mir_metrics(np.array([["a"]]), good[:1, :1])


def test_mir_real_annotations_random_scores(ek100_relevancy):
    # Paper, Table III: random scores give about 5.7 mAP and 10.9 nDCG.
    scores = np.random.default_rng(0).standard_normal(ek100_relevancy.shape, dtype=np.float32)
    result = ek100_mir_metrics(scores, ek100_relevancy)
    assert 0.0555 < result["avg_mAP"] < 0.0575
    assert 0.1075 < result["avg_nDCG"] < 0.1100
    for direction in ("vis2txt", "txt2vis"):
        assert 0.05 < result[f"{direction}_mAP"] < 0.065 and 0.10 < result[f"{direction}_nDCG"] < 0.12
    # A slice of the real matrix (real sparsity pattern, graded values) agrees with the reference per query.
    rows = slice(0, 300)
    sub_scores, sub_relevancy = scores[rows, :600], ek100_relevancy[rows, :600]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_metrics_close(ek100_mir_metrics(sub_scores, sub_relevancy), reference_mir(sub_scores, sub_relevancy))


# ---------------------------------------------------------------------------------------------------------------
# EgoMCQ
# ---------------------------------------------------------------------------------------------------------------


def test_egomcq_types_mapping_and_accuracy():
    similarity = np.array(
        [
            [0.9, 0.1, 0.2, 0.3, 0.0],  # -> 0
            [0.1, 0.8, 0.2, 0.3, 0.0],  # -> 1
            [0.1, 0.2, 0.7, 0.3, 0.0],  # -> 2
            [0.1, 0.2, 0.3, 0.0, 0.6],  # -> 4
            [0.5, 0.5, 0.1, 0.1, 0.1],  # tie -> first, 0
        ]
    )
    answers = np.array([0, 1, 3, 4, 1])
    types = np.array([1, 1, 2, 2, 2])  # egomcq.json: 1 = inter-video, 2 = intra-video (EgoVLP's data loader)
    result = egomcq_accuracy(similarity, answers, types)
    assert result == {
        "inter_video_accuracy": 1.0,
        "intra_video_accuracy": pytest.approx(1 / 3),
        "accuracy": pytest.approx(3 / 5),
        "num_inter_video": 2,
        "num_intra_video": 3,
    }
    assert egomcq_accuracy(similarity.argmax(axis=1), answers, types) == result
    assert egomcq_accuracy(torch.from_numpy(similarity), torch.from_numpy(answers), torch.from_numpy(types)) == result


def test_egomcq_type_constants_follow_the_file_format():
    assert (EGOMCQ_INTER_VIDEO, EGOMCQ_INTRA_VIDEO) == (1, 2)


@pytest.mark.parametrize(
    "only, present, absent", [(1, "inter_video", "intra_video"), (2, "intra_video", "inter_video")]
)
def test_egomcq_single_type_gives_nan_for_the_other(only, present, absent):
    # A set with one type: the value decides the name, not its position among the values present.
    result = egomcq_accuracy(np.eye(5)[:3], np.array([0, 1, 0]), np.full(3, only))
    assert result[f"{present}_accuracy"] == pytest.approx(2 / 3) and result[f"num_{present}"] == 3
    assert math.isnan(result[f"{absent}_accuracy"]) and result[f"num_{absent}"] == 0
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_egomcq_accuracy_per_type_is_independent():
    """Each type's accuracy is the mean over its own questions, whatever the other type's questions hold."""
    rng = np.random.default_rng(0)
    similarity = rng.random((40, 5))
    answers = rng.integers(0, 5, 40)
    types = np.where(np.arange(40) % 3 == 0, 2, 1)
    mixed = egomcq_accuracy(similarity, answers, types)
    for label, value in (("inter_video", 1), ("intra_video", 2)):
        selected = types == value
        alone = egomcq_accuracy(similarity[selected], answers[selected], types[selected])
        assert mixed[f"{label}_accuracy"] == alone[f"{label}_accuracy"] == alone["accuracy"]
        assert mixed[f"{label}_accuracy"] == pytest.approx(np.mean(similarity[selected].argmax(1) == answers[selected]))
        assert mixed[f"num_{label}"] == alone[f"num_{label}"] == int(selected.sum())
    # Changing the answers of the intra-video questions leaves the inter-video accuracy alone.
    flipped = answers.copy()
    flipped[types == 2] = similarity[types == 2].argmax(1)
    changed = egomcq_accuracy(similarity, flipped, types)
    assert changed["intra_video_accuracy"] == 1.0 and changed["inter_video_accuracy"] == mixed["inter_video_accuracy"]


def test_egomcq_bad_input():
    similarity = np.random.default_rng(0).random((4, 5))
    types = np.array([1, 2, 1, 2])
    with pytest.raises(ValueError, match=r"answers must be integers in \[0, 5\), got \[5\]"):
        egomcq_accuracy(similarity, np.array([0, 5, 1, 2]), types)
    with pytest.raises(ValueError, match=r"answers .* got \[-1\]"):
        egomcq_accuracy(similarity, np.array([0, -1, 1, 2]), types)
    unknown = r"types must be 1 \(inter-video\) or 2 \(intra-video\), got unknown value\(s\) \[0, 3\]"
    with pytest.raises(ValueError, match=unknown):
        egomcq_accuracy(similarity, np.array([0, 1, 1, 2]), np.array([1, 3, 0, 2]))
    with pytest.raises(ValueError, match=r"types must have shape \(4,\)"):
        egomcq_accuracy(similarity, np.array([0, 1, 1, 2]), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"predictions must be integers in \[0, 5\)"):
        egomcq_accuracy(np.array([0, 7, 1, 2]), np.array([0, 1, 1, 2]), types)
    similarity[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        egomcq_accuracy(similarity, np.array([0, 1, 1, 2]), types)


# ---------------------------------------------------------------------------------------------------------------
# Charades-Ego
# ---------------------------------------------------------------------------------------------------------------


def reference_charades_ap(scores, labels):
    """Per class: mean over positives of (#positives ranked at or above / rank), by a plain loop."""
    aps = []
    for c in range(scores.shape[1]):
        order = sorted(range(len(scores)), key=lambda v: (-scores[v, c], v))
        hits, precisions = 0, []
        for rank, video in enumerate(order, start=1):
            if labels[video, c]:
                hits += 1
                precisions.append(hits / rank)
        if precisions:
            aps.append(np.mean(precisions))
    return np.mean(aps)


def test_charades_hand_computed():
    scores = np.array(
        [
            [0.9, 0.1, 0.5, 0.3],
            [0.8, 0.2, 0.5, 0.3],
            [0.7, 0.3, 0.5, 0.3],
            [0.1, 0.4, 0.5, 0.3],
            [1.0, 1.0, 1.0, 1.0],  # no label: left out, or it would rank first in every class
        ]
    )
    labels = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]])
    # class 0: positives at ranks 1 and 3 -> (1 + 2/3) / 2; class 1: positive at rank 1 -> 1;
    # class 2: all scores tie, the positive (video 1) is ranked 2nd by index -> 1/2; class 3: no positive, left out.
    assert charades_ego_map(scores, labels) == {"mAP": pytest.approx(((1 + 2 / 3) / 2 + 1 + 1 / 2) / 3)}


def test_charades_matches_loop_reference():
    rng = np.random.default_rng(0)
    scores = rng.random((60, 12)).astype(np.float32)
    scores[:, 3] = np.round(scores[:, 3], 1)  # ties: ranked by video index
    labels = (rng.random((60, 12)) < 0.15).astype(np.int64)
    labels[:, 5] = 0
    result = charades_ego_map(scores, labels.astype(bool))
    labelled = labels.any(axis=1)
    assert result["mAP"] == pytest.approx(reference_charades_ap(scores[labelled], labels[labelled]), rel=1e-12)


def test_charades_bad_input():
    with pytest.raises(ValueError, match=r"scores \(3, 4\) and labels \(3, 5\)"):
        charades_ego_map(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="0/1"):
        charades_ego_map(np.zeros((2, 2)), np.array([[0, 2], [1, 0]]))
    with pytest.raises(ValueError, match="1 NaN"):
        charades_ego_map(np.array([[np.nan, 0.0]]), np.array([[1, 0]]))
    assert math.isnan(charades_ego_map(np.zeros((2, 2)), np.zeros((2, 2)))["mAP"])


# ---------------------------------------------------------------------------------------------------------------
# evaluate modules
# ---------------------------------------------------------------------------------------------------------------


def test_metric_path():
    for name in ("ek100_mir", "egomcq", "charades_ego_map"):
        folder = metric_path(name)
        assert os.path.isabs(folder) and os.path.isfile(os.path.join(folder, f"{name}.py"))
    with pytest.raises(ValueError, match="shipped modules.*ek100_mir"):
        metric_path("accuracy")


def test_evaluate_ek100_mir_module():
    import evaluate

    rng = np.random.default_rng(6)
    relevancy = graded_relevancy(rng, (64, 48))
    scores = distinct_scores(rng, (64, 48))
    expected = ek100_mir_metrics(scores, relevancy)
    module = evaluate.load(metric_path("ek100_mir"))
    assert module.compute(predictions=scores, references=relevancy) == expected
    for start in range(0, 64, 16):  # the Arrow path, as rows arrive batch by batch
        module.add_batch(predictions=scores[start : start + 16], references=relevancy[start : start + 16])
    assert module.compute() == expected
    assert module.compute(predictions=scores, references=relevancy) == expected  # usable again afterwards


def test_evaluate_egomcq_module():
    import evaluate

    rng = np.random.default_rng(7)
    similarity = rng.random((30, 5)).astype(np.float32)
    answers, types = rng.integers(0, 5, 30), rng.integers(1, 3, 30)
    module = evaluate.load(metric_path("egomcq"))
    expected = egomcq_accuracy(similarity, answers, types)
    assert module.compute(predictions=similarity, references=answers, types=types) == expected
    assert module.compute(predictions=similarity.argmax(axis=1), references=answers, types=types) == expected


def test_evaluate_charades_module():
    import evaluate

    rng = np.random.default_rng(8)
    scores = rng.random((25, 10)).astype(np.float32)
    labels = (rng.random((25, 10)) < 0.2).astype(np.int64)
    module = evaluate.load(metric_path("charades_ego_map"))
    assert module.compute(predictions=scores, references=labels) == charades_ego_map(scores, labels)
