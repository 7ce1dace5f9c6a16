"""Tests of modeling_eva02at.training.losses against direct Python-loop transcriptions of docs/losses.md and
docs/relevancy.md.

The references below read the *full* relevancy matrix R with the documents' indices (R[i_b, p_a], R[i_a, p_b]) and
loop over ordered pairs, so they share no code and no layout convention with the vectorised implementation. Every
`sim` here is the losses' `sim_text_video`: sim[a, b] = similarity of text a and video b. `scale` is the
exponentiated multiplier, `logit_scale` its log.
"""

import inspect
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modeling_eva02at.training.arguments import LOSS_NAMES
from modeling_eva02at.training.batch_relevancy import BatchRelevancy, is_hard_labels, quantize_relevancy
from modeling_eva02at.training.losses import (
    LOSSES,
    SMS_EDGE_CODE,
    SMS_EDGE_PAPER,
    adaptive_max_margin_loss,
    egonce_loss,
    get_loss,
    infonce_loss,
    max_margin_loss,
    sms_hard_loss,
    sms_loss,
)


# ----------------------------------------------------------------------------------------------------------------
# Direct references (plain Python floats)
# ----------------------------------------------------------------------------------------------------------------


def q240(x):
    """uint8(240 x) / 240, written out."""
    return math.trunc(x * 240) / 240


def ref_sms(sim, R, vid, sent, r_pos, quantize=True, gamma=0.6, tau=0.1, lam=1.1 / 240):
    """docs/losses.md, literally. Returns (loss, {(direction, branch): count})."""
    sim = sim.tolist()
    look = q240 if quantize else (lambda x: x)
    n = len(vid)
    terms, branches = [], {}
    for a in range(n):
        for b in range(n):
            if a == b:
                continue
            for direction in ("t2v", "v2t"):
                if direction == "t2v":
                    delta = r_pos[a] - look(R[vid[b]][sent[a]])
                    d = sim[a][a] - sim[a][b]
                else:
                    delta = r_pos[a] - look(R[vid[a]][sent[b]])
                    d = sim[a][a] - sim[b][a]
                if delta > lam:
                    term, branch = max(0.0, gamma * delta - d), "more"
                elif abs(delta) < lam:
                    term, branch = max(0.0, abs(gamma * delta - d) - tau), "equal"
                else:
                    term, branch = max(0.0, d - gamma * delta), "otherwise"
                terms.append(term)
                branches[(direction, branch)] = branches.get((direction, branch), 0) + 1
    assert len(terms) == 2 * n * (n - 1)
    return sum(terms) / len(terms), branches


def ref_max_margin(sim, margins):
    """relu(m_a - (s_aa - s_ab)) + relu(m_a - (s_aa - s_ba)) over a != b, mean over 2N(N-1) terms."""
    sim = sim.tolist()
    n = len(sim)
    terms = []
    for a in range(n):
        for b in range(n):
            if a != b:
                terms.append(max(0.0, margins[a] - (sim[a][a] - sim[a][b])))
                terms.append(max(0.0, margins[a] - (sim[a][a] - sim[b][a])))
    return sum(terms) / (2 * n * (n - 1))


def ref_nce(sim, scale, positive):
    """0.5 * sum over directions of -mean_a log(sum_{b in P(a)} exp(l_ab) / sum_b exp(l_ab)); positive(a, b)."""
    sim = sim.tolist()
    n = len(sim)

    def direction(logit):
        total = 0.0
        for a in range(n):
            num = sum(math.exp(logit(a, b)) for b in range(n) if positive(a, b))
            den = sum(math.exp(logit(a, b)) for b in range(n))
            total += -math.log(num / den)
        return total / n

    return 0.5 * (direction(lambda a, b: scale * sim[a][b]) + direction(lambda a, b: scale * sim[b][a]))


def random_sim(n, dim=8, dtype=torch.float64):
    """A text x video cosine-similarity matrix of n random pairs."""
    text = F.normalize(torch.randn(n, dim, dtype=dtype), dim=-1)
    video = F.normalize(torch.randn(n, dim, dtype=dtype), dim=-1)
    return text @ video.T


# A hand-built batch of 4 samples (video i_a = a, sentence p_a = a) whose relevancies hit every SMS branch in both
# directions (see test_sms_handbuilt_batch_hits_every_branch). Rows = videos, columns = sentences.
R_HAND = [
    [1.00, 0.50, 1.00, 0.25, 0.10],
    [0.50, 0.66, 0.66, 0.00, 0.30],
    [0.75, 0.66, 0.50, 0.66, 0.90],
    [0.00, 0.50, 0.25, 0.75, 0.20],
]
VID_HAND = [0, 1, 2, 3]
SENT_HAND = [0, 1, 2, 3]
R_POS_HAND = [R_HAND[i][p] for i, p in zip(VID_HAND, SENT_HAND)]  # unquantised, like the data loader

# sim for the N = 2 hand calculations: rows texts, columns videos.
SIM_2 = torch.tensor([[0.8, 0.3], [0.2, 0.6]], dtype=torch.float64)
# d values: t2v (0,1) = 0.8-0.3 = 0.5, t2v (1,0) = 0.6-0.2 = 0.4, v2t (0,1) = 0.8-0.2 = 0.6, v2t (1,0) = 0.6-0.3 = 0.3


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


@pytest.fixture
def debug_checks(monkeypatch):
    """EVA02AT_DEBUG_CHECKS=1: the losses' checks of tensor values, which read from the device, run."""
    monkeypatch.setenv("EVA02AT_DEBUG_CHECKS", "1")


# ----------------------------------------------------------------------------------------------------------------
# Relevancy quantisation and batch look-up
# ----------------------------------------------------------------------------------------------------------------


def test_quantize_relevancy_truncates_like_uint8():
    values = np.array([0.0, 0.5, 0.66, 0.75, 1.0, 0.999, 1 / 3])
    expected = np.array([0, 120, 158, 180, 240, 239, 80]) / 240  # 0.66 * 240 = 158.4 -> 158; 0.999 -> 239.76 -> 239
    np.testing.assert_array_equal(quantize_relevancy(values), expected)
    assert quantize_relevancy(np.array([0.66]))[0] == 158 / 240
    codes = quantize_relevancy(values, as_codes=True)
    assert codes.dtype == np.uint8 and codes.tolist() == [0, 120, 158, 180, 240, 239, 80]
    # torch in, torch out, same values
    torch_q = quantize_relevancy(torch.from_numpy(values))
    assert isinstance(torch_q, torch.Tensor) and torch_q.dtype == torch.float64
    torch.testing.assert_close(torch_q, torch.from_numpy(expected), rtol=0, atol=0)
    assert quantize_relevancy(torch.from_numpy(values), as_codes=True).dtype == torch.uint8
    # any level count works the same way
    assert quantize_relevancy(np.array([0.66]), levels=10)[0] == 0.6


@pytest.mark.parametrize("bad", [[0.5, 1.2], [-0.1, 0.5], [0.5, float("nan")]])
def test_quantize_relevancy_rejects_values_outside_unit_interval(bad):
    with pytest.raises(ValueError, match="shape"):
        quantize_relevancy(np.array(bad))
    with pytest.raises(ValueError):
        quantize_relevancy(torch.tensor(bad))
    with pytest.raises(ValueError, match="levels"):
        quantize_relevancy(np.array([0.5]), levels=256)


def test_batch_relevancy_layout_against_loop():
    R = np.random.default_rng(0).random((6, 7))
    vid, sent = [4, 0, 5, 2, 0], [1, 6, 3, 3, 0]
    rel = BatchRelevancy.from_matrix(R, vid, sent)
    n = len(vid)
    assert rel.pairwise.shape == (n, n) and rel.positive.shape == (n,)
    for t in range(n):
        for v in range(n):
            # pairwise[t, v] = R[i_v, p_t], quantised; laid out like sim[t, v]
            assert rel.pairwise[t, v].item() == q240(R[vid[v], sent[t]])
            # the two SMS directions
            assert rel.text_to_video[t, v].item() == q240(R[vid[v], sent[t]])  # anchor text t, candidate video v
            assert rel.video_to_text[t, v].item() == q240(R[vid[t], sent[v]])  # anchor video t, candidate text v
    for a in range(n):
        assert rel.positive[a].item() == R[vid[a], sent[a]]  # r_a: NOT quantised

    raw = BatchRelevancy.from_matrix(R, vid, sent, quantized=False)
    for t in range(n):
        for v in range(n):
            assert raw.pairwise[t, v].item() == R[vid[v], sent[t]]
    torch.testing.assert_close(raw.positive, rel.positive, rtol=0, atol=0)


def test_batch_relevancy_accepts_torch_and_uint8_codes():
    R = np.random.default_rng(1).random((5, 5))
    vid, sent = np.array([3, 1, 4]), torch.tensor([0, 2, 4])
    ref = BatchRelevancy.from_matrix(R, vid, sent)
    from_torch = BatchRelevancy.from_matrix(torch.from_numpy(R), torch.from_numpy(vid), sent)
    torch.testing.assert_close(from_torch.pairwise, ref.pairwise, rtol=0, atol=0)
    torch.testing.assert_close(from_torch.positive, ref.positive, rtol=0, atol=0)

    codes = quantize_relevancy(R, as_codes=True)
    from_codes = BatchRelevancy.from_matrix(codes, vid, sent, positive_relevancy=ref.positive)
    torch.testing.assert_close(from_codes.pairwise, ref.pairwise, rtol=0, atol=0)
    with pytest.raises(ValueError, match="unquantised"):
        BatchRelevancy.from_matrix(codes, vid, sent)
    with pytest.raises(ValueError, match="quantized=False"):
        BatchRelevancy.from_matrix(codes, vid, sent, quantized=False, positive_relevancy=ref.positive)

    as_float32 = BatchRelevancy.from_matrix(R, vid, sent, dtype=torch.float32)
    assert as_float32.pairwise.dtype == torch.float32 and as_float32.positive.dtype == torch.float32


def test_batch_relevancy_bad_input():
    R = np.random.default_rng(2).random((4, 3))
    with pytest.raises(ValueError, match="same length"):
        BatchRelevancy.from_matrix(R, [0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match=r"out of range.*\(4, 3\)"):
        BatchRelevancy.from_matrix(R, [0, 1], [0, 3])
    with pytest.raises(ValueError, match="out of range"):
        BatchRelevancy.from_matrix(R, [-1, 1], [0, 1])
    with pytest.raises(ValueError, match="shape"):
        BatchRelevancy.from_matrix(R[0], [0], [0])
    with pytest.raises(ValueError, match="integer"):
        BatchRelevancy.from_matrix(R, [0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"\(2,\)"):
        BatchRelevancy(pairwise=torch.zeros(3, 3), positive=torch.zeros(2))


def test_code_edge_keeps_quantised_equals_in_the_equal_branch():
    """Why lambda = 1.1/240: for every EK-100 relevancy value v, v - quant(v) lies in [0, 1/240) < 1.1/240."""
    values = {0.5 * verb + 0.5 * k / m for verb in (0, 1) for m in range(1, 13) for k in range(m + 1)}
    values = np.array(sorted(values))
    residue = values - quantize_relevancy(values)
    assert residue.min() >= 0 and residue.max() < 1 / 240 < SMS_EDGE_CODE
    assert residue.max() > 0  # some values really are changed by the quantisation


# ----------------------------------------------------------------------------------------------------------------
# SMS
# ----------------------------------------------------------------------------------------------------------------


def test_sms_handbuilt_batch_hits_every_branch():
    """Every branch in both directions, default (quantised candidates, lambda = 1.1/240) against the loop."""
    sim = random_sim(4)
    expected, branches = ref_sms(sim, R_HAND, VID_HAND, SENT_HAND, R_POS_HAND)
    for direction in ("t2v", "v2t"):
        for branch in ("more", "equal", "otherwise"):
            assert branches.get((direction, branch), 0) > 0, (direction, branch, branches)
    rel = BatchRelevancy.from_matrix(np.array(R_HAND), VID_HAND, SENT_HAND)
    assert rel.positive.tolist() == R_POS_HAND
    loss = sms_loss(sim, rel.pairwise, rel.positive)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert get_loss("sms")(sim, batch_relevancy=rel).item() == pytest.approx(expected, abs=1e-12)


def test_sms_paper_option_differs_where_it_should():
    # d = 0.5 for every pair: for Delta ~ 0.09 the first branch gives relu(0.054 - 0.5) = 0 and the middle branch
    # relu(|0.054 - 0.5| - 0.1) = 0.346, so the branch change is visible in the loss
    sim = 0.5 * torch.eye(4, dtype=torch.float64) + 0.01 * random_sim(4)
    code_rel = BatchRelevancy.from_matrix(np.array(R_HAND), VID_HAND, SENT_HAND)
    paper_rel = BatchRelevancy.from_matrix(np.array(R_HAND), VID_HAND, SENT_HAND, quantized=False)
    code = sms_loss(sim, code_rel.pairwise, code_rel.positive)
    paper = sms_loss(sim, paper_rel.pairwise, paper_rel.positive, edge=SMS_EDGE_PAPER)
    code_ref, code_branches = ref_sms(sim, R_HAND, VID_HAND, SENT_HAND, R_POS_HAND)
    paper_ref, paper_branches = ref_sms(sim, R_HAND, VID_HAND, SENT_HAND, R_POS_HAND, quantize=False, lam=0.1)
    assert code.item() == pytest.approx(code_ref, abs=1e-12)
    assert paper.item() == pytest.approx(paper_ref, abs=1e-12)
    # 0.75 vs 0.66 (Delta ~ 0.09): "more relevant" for lambda = 1.1/240, "equally relevant" for lambda = 0.1
    assert paper_branches[("t2v", "equal")] > code_branches[("t2v", "equal")]
    assert abs(code.item() - paper.item()) > 1e-2


def test_sms_lambda_alone_changes_the_branch():
    """Delta = 0.05: first branch with the code's lambda, middle branch with the paper's."""
    pos, pw = t64([0.55, 0.55]), t64([[0.55, 0.5], [0.5, 0.55]])
    code = sms_loss(SIM_2, pw, pos, edge=SMS_EDGE_CODE).item()
    paper = sms_loss(SIM_2, pw, pos, edge=SMS_EDGE_PAPER).item()
    ds = [0.5, 0.4, 0.6, 0.3]
    assert code == pytest.approx(sum(max(0, 0.6 * 0.05 - d) for d in ds) / 4, abs=1e-12)
    assert paper == pytest.approx(sum(max(0, abs(0.6 * 0.05 - d) - 0.1) for d in ds) / 4, abs=1e-12)
    assert code != pytest.approx(paper)


def test_sms_quantisation_changes_delta():
    """r_a = 0.66 with a candidate of R = 0.66: Delta = 0.66 - 158/240 when quantised, 0 otherwise."""
    R = [[0.66, 0.66], [0.66, 0.66]]
    sim = random_sim(2)
    q = BatchRelevancy.from_matrix(np.array(R), [0, 1], [0, 1])
    raw = BatchRelevancy.from_matrix(np.array(R), [0, 1], [0, 1], quantized=False)
    assert q.pairwise[0, 1].item() == 158 / 240 and raw.pairwise[0, 1].item() == 0.66
    lq = sms_loss(sim, q.pairwise, q.positive).item()
    lraw = sms_loss(sim, raw.pairwise, raw.positive).item()
    assert lq == pytest.approx(ref_sms(sim, R, [0, 1], [0, 1], [0.66, 0.66])[0], abs=1e-12)
    assert lraw == pytest.approx(ref_sms(sim, R, [0, 1], [0, 1], [0.66, 0.66], quantize=False)[0], abs=1e-12)
    assert ref_sms(sim, R, [0, 1], [0, 1], [0.66, 0.66])[1] == {("t2v", "equal"): 2, ("v2t", "equal"): 2}


@pytest.mark.parametrize(
    "positive, pairwise, expected",
    [
        # Delta = 1 > lambda everywhere: relu(0.6 - d) for d = 0.5, 0.4, 0.6, 0.3
        ([1.0, 1.0], [[1.0, 0.0], [0.0, 1.0]], (0.1 + 0.2 + 0.0 + 0.3) / 4),
        # Delta = 0: relu(|0 - d| - 0.1)
        ([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], (0.4 + 0.3 + 0.5 + 0.2) / 4),
        # Delta = -0.5 < -lambda: relu(d - 0.6 * (-0.5)) = relu(d + 0.3)
        ([0.5, 0.5], [[0.5, 1.0], [1.0, 0.5]], (0.8 + 0.7 + 0.9 + 0.6) / 4),
    ],
    ids=["more", "equal", "less"],
)
def test_sms_single_branch_by_hand(positive, pairwise, expected):
    assert sms_loss(SIM_2, t64(pairwise), t64(positive)).item() == pytest.approx(expected, abs=1e-12)


def test_sms_directions_use_different_lookups_by_hand():
    """positive = [1, 0.5]; pairwise[t, v]: text 0 / video 1 irrelevant (0), text 1 / video 0 relevant (1).

    t2v(0,1): Delta = r_0 - R[i_1,p_0] = 1 - 0 = 1,      d = 0.8 - 0.4 = 0.4 -> relu(0.6 - 0.4)        = 0.2
    t2v(1,0): Delta = r_1 - R[i_0,p_1] = 0.5 - 1 = -0.5, d = 0.6 - 0.2 = 0.4 -> relu(0.4 + 0.3)        = 0.7
    v2t(0,1): Delta = r_0 - R[i_0,p_1] = 1 - 1 = 0,      d = 0.8 - 0.2 = 0.6 -> relu(|0 - 0.6| - 0.1)  = 0.5
    v2t(1,0): Delta = r_1 - R[i_1,p_0] = 0.5 - 0 = 0.5,  d = 0.6 - 0.4 = 0.2 -> relu(0.3 - 0.2)        = 0.1
    """
    sim = t64([[0.8, 0.4], [0.2, 0.6]])
    pairwise = t64([[1.0, 0.0], [1.0, 0.5]])  # diagonal unused
    loss = sms_loss(sim, pairwise, t64([1.0, 0.5]))
    assert loss.item() == pytest.approx((0.2 + 0.7 + 0.5 + 0.1) / 4, abs=1e-12)
    # the transposed (wrong) layout gives another value
    assert sms_loss(sim, pairwise.T.contiguous(), t64([1.0, 0.5])).item() != pytest.approx(loss.item())


def test_sms_boundary_delta_equal_to_edge_is_otherwise():
    """|Delta| == lambda exactly falls in the third branch relu(d - gamma * Delta), for +lambda and -lambda."""
    ds = [0.5, 0.4, 0.6, 0.3]
    pos = t64([0.75, 0.75])
    plus = t64([[0.75, 0.5], [0.5, 0.75]])  # Delta = +0.25 exactly (all values dyadic)
    minus = t64([[0.75, 1.0], [1.0, 0.75]])  # Delta = -0.25 exactly
    got_plus = sms_loss(SIM_2, plus, pos, edge=0.25).item()
    assert got_plus == pytest.approx(sum(max(0, d - 0.15) for d in ds) / 4, abs=1e-12)  # 0.3
    got_minus = sms_loss(SIM_2, minus, pos, edge=0.25).item()
    assert got_minus == pytest.approx(sum(max(0, d + 0.15) for d in ds) / 4, abs=1e-12)  # 0.6
    # the other branches would have given other values
    assert sms_loss(SIM_2, plus, pos, edge=0.25 - 1e-9).item() == pytest.approx(0.0, abs=1e-12)  # first branch
    middle = sum(max(0, abs(0.15 - d) - 0.1) for d in ds) / 4
    assert sms_loss(SIM_2, plus, pos, edge=0.25 + 1e-9).item() == pytest.approx(middle, abs=1e-12)
    assert middle != pytest.approx(got_plus)
    # and the loop reference agrees on the boundary
    R = [[0.75, 0.5], [0.5, 0.75]]
    assert got_plus == pytest.approx(ref_sms(SIM_2, R, [0, 1], [0, 1], [0.75, 0.75], quantize=False, lam=0.25)[0])


def test_sms_mean_is_over_off_diagonal_terms_only():
    """The diagonal's Delta = r_a - quant(r_a) and d = 0 must not enter the mean (2 N (N - 1) terms)."""
    sim = torch.eye(3, dtype=torch.float64)  # d = 1 for every off-diagonal pair, 0 on the diagonal
    pos = t64([1.0, 1.0, 1.0])
    pairwise = t64([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # diagonal (unused) would give Delta = 1
    # off-diagonal: Delta = 1, d = 1 -> relu(0.6 - 1) = 0; the diagonal would add relu(0.6 - 0) = 0.6
    assert sms_loss(sim, pairwise, pos).item() == 0.0


@pytest.mark.parametrize("n", [2, 5, 8])
def test_sms_random_batches_against_loop(n):
    rng = np.random.default_rng(n)
    # EK-100-like graded values, with repeated clips / sentences in the batch
    R = 0.5 * (rng.random((7, 9)) < 0.4) + 0.5 * rng.integers(0, 4, (7, 9)) / 3
    vid, sent = rng.integers(0, 7, n).tolist(), rng.integers(0, 9, n).tolist()
    r_pos = [R[i, p] for i, p in zip(vid, sent)]
    sim = random_sim(n)
    for quantized, edge in [(True, SMS_EDGE_CODE), (False, SMS_EDGE_PAPER), (True, SMS_EDGE_PAPER)]:
        rel = BatchRelevancy.from_matrix(R, vid, sent, quantized=quantized)
        for gamma, tau in [(0.6, 0.1), (0.3, 0.05)]:
            got = sms_loss(sim, rel.pairwise, rel.positive, margin=gamma, tau=tau, edge=edge).item()
            want, _ = ref_sms(sim, R.tolist(), vid, sent, r_pos, quantize=quantized, gamma=gamma, tau=tau, lam=edge)
            assert got == pytest.approx(want, abs=1e-12)


def test_sms_hard_by_hand_and_against_general_sms():
    # labels: samples 0 and 1 share a class, 2 is alone
    rel = BatchRelevancy.from_class_ids([5, 5, 2])
    assert rel.pairwise.tolist() == [[1, 1, 0], [1, 1, 0], [0, 0, 1]] and rel.positive.tolist() == [1, 1, 1]
    sim = random_sim(3)
    s = sim.tolist()
    terms = []
    for a in range(3):
        for b in range(3):
            if a == b:
                continue
            same = rel.pairwise[a, b].item() == 1  # symmetric for single labels
            for d in (s[a][a] - s[a][b], s[a][a] - s[b][a]):
                terms.append(max(0, abs(d) - 0.1) if same else max(0, 0.3 - d))  # Delta = 0 or Delta = 1
    want = sum(terms) / len(terms)
    assert sms_hard_loss(sim, rel.pairwise, rel.positive).item() == pytest.approx(want, abs=1e-12)
    assert get_loss("sms_hard")(sim, batch_relevancy=rel).item() == pytest.approx(want, abs=1e-12)
    # the general SMS on binary input, gamma = 0.3, gives the same for any edge in (0, 1)
    for edge in (SMS_EDGE_CODE, SMS_EDGE_PAPER, 0.5):
        assert sms_loss(sim, rel.pairwise, rel.positive, margin=0.3, edge=edge).item() == pytest.approx(want)
    # asymmetric binary relevancy too
    pw = (torch.rand(5, 5) < 0.5).double()
    sim5 = random_sim(5)
    torch.testing.assert_close(sms_hard_loss(sim5, pw), sms_loss(sim5, pw, torch.ones(5, dtype=torch.float64), 0.3))


def test_sms_hard_rejects_soft_labels_under_the_debug_switch(debug_checks):
    """The 0/1 labels are checked where they are made (from_class_ids, the trainer's matrix: tests/test_trainer.py);
    the loss itself reads them only under EVA02AT_DEBUG_CHECKS."""
    sim = random_sim(2)
    with pytest.raises(ValueError, match="0/1.*use sms_loss"):
        sms_hard_loss(sim, t64([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="be 1"):
        sms_hard_loss(sim, t64([[1.0, 0.0], [0.0, 1.0]]), t64([1.0, 0.5]))


def test_hard_labels_are_told_apart_from_graded_ones():
    assert is_hard_labels(np.array([[1.0, 0.0], [0.0, 1.0]])) and is_hard_labels(torch.eye(3))
    assert not is_hard_labels(np.array([[1.0, 0.5], [0.0, 1.0]])) and not is_hard_labels(torch.full((2,), 0.5))
    assert not is_hard_labels(np.array([[1.0, np.nan]]))
    big = np.zeros((10_000, 3), dtype=np.float32)  # read in row chunks: the bad value is in the last one
    assert is_hard_labels(big)
    big[-1, -1] = 0.25
    assert not is_hard_labels(big)
    rel = BatchRelevancy.from_class_ids(torch.tensor([4, 7, 4]))
    assert is_hard_labels(rel.pairwise) and rel.positive.tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="1-D sequence of integer ids"):
        BatchRelevancy.from_class_ids(torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------------------------------------------
# MI-MM and adaptive MI-MM
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 6])
def test_max_margin_against_loop(n):
    sim = random_sim(n)
    for m in (0.2, 0.5):
        assert max_margin_loss(sim, m).item() == pytest.approx(ref_max_margin(sim, [m] * n), abs=1e-12)
    assert get_loss("mimm")(sim).item() == pytest.approx(ref_max_margin(sim, [0.2] * n), abs=1e-12)


def test_max_margin_excludes_diagonal():
    # perfect separation: every off-diagonal term relu(0.2 - 1) = 0; the diagonal terms relu(0.2 - 0) would not be
    assert max_margin_loss(torch.eye(4, dtype=torch.float64)).item() == 0.0
    # all-equal similarities: every one of the 2N(N-1) terms equals the margin
    assert max_margin_loss(torch.zeros(4, 4, dtype=torch.float64), 0.2).item() == pytest.approx(0.2)
    # one pair violated by hand: s_01 = 1 above s_00 = 0.5 (N = 2, other terms 0)
    sim = t64([[0.5, 1.0], [-1.0, 1.0]])
    # t2v(0,1): relu(0.2 - (0.5 - 1)) = 0.7; t2v(1,0): relu(0.2 - 2) = 0; v2t(0,1): relu(0.2 - 1.5) = 0;
    # v2t(1,0): relu(0.2 - (1 - 1)) = 0.2
    assert max_margin_loss(sim).item() == pytest.approx((0.7 + 0.2) / 4)


@pytest.mark.parametrize("n", [2, 6])
def test_adaptive_max_margin_against_loop(n):
    sim = random_sim(n)
    r = torch.rand(n, dtype=torch.float64)
    want = ref_max_margin(sim, [0.4 * x for x in r.tolist()])
    assert adaptive_max_margin_loss(sim, r).item() == pytest.approx(want, abs=1e-12)
    rel = BatchRelevancy(pairwise=torch.zeros(n, n, dtype=torch.float64), positive=r)
    assert get_loss("adaptive_mimm")(sim, batch_relevancy=rel).item() == pytest.approx(want, abs=1e-12)
    # r_a = 1 everywhere is MI-MM with the same margin
    ones = torch.ones(n, dtype=torch.float64)
    torch.testing.assert_close(adaptive_max_margin_loss(sim, ones, 0.3), max_margin_loss(sim, 0.3))


# ----------------------------------------------------------------------------------------------------------------
# InfoNCE and EgoNCE
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1 / 0.07, 20.0])
def test_infonce_against_hand_written_cross_entropy(scale):
    sim = random_sim(5)
    want = ref_nce(sim, scale, lambda a, b: a == b)
    got = infonce_loss(sim, scale)
    assert got.item() == pytest.approx(want, abs=1e-10)
    # and against torch's cross entropy: CE(scale V T^T, I) and CE(scale T V^T, I)
    labels = torch.arange(5)
    torch_ce = 0.5 * (F.cross_entropy(scale * sim.T, labels) + F.cross_entropy(scale * sim, labels))
    torch.testing.assert_close(got, torch_ce)
    # a scalar tensor scale works the same
    torch.testing.assert_close(infonce_loss(sim, torch.tensor(scale)), got)


def one_hot(class_ids) -> torch.Tensor:
    """Multi-hot rows of one class each, as the datasets give EK-100's verb."""
    return F.one_hot(torch.tensor(class_ids)).to(torch.uint8)


def test_egonce_reduces_to_infonce_when_no_pairs_share_verb_and_noun():
    sim = random_sim(6)
    verbs = one_hot([0, 1, 2, 3, 4, 5])
    nouns = one_hot([0, 0, 1, 1, 2, 2])  # nouns shared, but never together with the verb
    torch.testing.assert_close(egonce_loss(sim, 20.0, verbs, nouns), infonce_loss(sim, 20.0))
    torch.testing.assert_close(egonce_loss(sim, 20.0, one_hot(range(6)), one_hot(range(6))), infonce_loss(sim, 20.0))


def test_egonce_takes_multi_hot_rows_and_says_how_to_make_them_from_class_ids():
    with pytest.raises(ValueError, match=r"verb_multi_hot must be \(3, num_classes\) multi-hot rows.*one_hot"):
        egonce_loss(random_sim(3), 20.0, torch.tensor([0, 1, 2]), one_hot([0, 1, 2]))


def test_egonce_with_shared_verb_and_noun_against_loop():
    sim = random_sim(6)
    verbs = [0, 0, 1, 1, 0, 2]
    nouns = [3, 3, 4, 5, 3, 4]  # positives: {0, 1, 4} share verb 0 and noun 3
    want = ref_nce(sim, 20.0, lambda a, b: a == b or (verbs[a] == verbs[b] and nouns[a] == nouns[b]))
    got = egonce_loss(sim, 20.0, one_hot(verbs), one_hot(nouns))
    assert got.item() == pytest.approx(want, abs=1e-10)
    assert got.item() != pytest.approx(infonce_loss(sim, 20.0).item())
    fn = get_loss("egonce")
    assert fn(sim, scale=20.0, verb_multi_hot=one_hot(verbs), noun_multi_hot=one_hot(nouns)).item() == (
        pytest.approx(want, abs=1e-10)
    )


def test_egonce_multi_hot_tags():
    sim = random_sim(4)
    verbs = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0]])
    nouns = torch.tensor([[1, 1], [0, 1], [1, 0], [0, 1]])
    v, nn_ = verbs.tolist(), nouns.tolist()

    def share(x, y):
        return any(i and j for i, j in zip(x, y))

    want = ref_nce(sim, 10.0, lambda a, b: a == b or (share(v[a], v[b]) and share(nn_[a], nn_[b])))
    assert egonce_loss(sim, 10.0, verbs, nouns).item() == pytest.approx(want, abs=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# Gradients, dtypes, registry
# ----------------------------------------------------------------------------------------------------------------


def _uniform_inputs(n):
    rng = np.random.default_rng(3)
    R = 0.5 * (rng.random((10, 10)) < 0.5) + 0.5 * rng.integers(0, 3, (10, 10)) / 2
    rel = BatchRelevancy.from_matrix(R, rng.integers(0, 10, n), rng.integers(0, 10, n))
    return dict(
        batch_relevancy=rel, verb_multi_hot=one_hot([0, 0, 1, 2, 3, 4]), noun_multi_hot=one_hot([1, 1, 2, 2, 3, 3])
    )


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_gradients_reach_text_and_video_embeddings(name):
    n = 6
    text = torch.randn(n, 16, requires_grad=True)
    video = torch.randn(n, 16, requires_grad=True)
    logit_scale = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    sim = F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).T
    inputs = _uniform_inputs(n)
    if name == "sms_hard":
        inputs["batch_relevancy"] = BatchRelevancy.from_class_ids([0, 0, 1, 1, 2, 3])
    fn = get_loss(name)
    loss = fn(sim, scale=logit_scale.exp(), **inputs)
    assert loss.dim() == 0 and loss.dtype == torch.float32 and loss.item() > 0
    loss.backward()
    for grad in (text.grad, video.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    if fn.needs_scale:
        assert logit_scale.grad is not None and torch.isfinite(logit_scale.grad) and logit_scale.grad != 0


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_half_precision_sim_is_upcast(name):
    sim = random_sim(6, dtype=torch.float32)
    inputs = _uniform_inputs(6)
    if name == "sms_hard":
        inputs["batch_relevancy"] = BatchRelevancy.from_class_ids([0, 0, 1, 1, 2, 3])
    fn = get_loss(name)
    full = fn(sim, scale=20.0, **inputs)
    half = fn(sim.bfloat16(), scale=20.0, **inputs)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, full, atol=0.05, rtol=0.05)


def test_registry():
    assert set(LOSS_NAMES) == {"sms", "sms_hard", "mimm", "adaptive_mimm", "infonce", "egonce"}
    assert tuple(LOSSES) == LOSS_NAMES  # the arguments' choices are written out (no torch for --help): the same
    sim = random_sim(6)
    inputs = _uniform_inputs(6)
    rel = inputs["batch_relevancy"]
    fn = get_loss("sms", margin=0.5, tau=0.05, edge=SMS_EDGE_PAPER)
    torch.testing.assert_close(
        fn(sim, scale=3.0, **inputs), sms_loss(sim, rel.pairwise, rel.positive, 0.5, 0.05, SMS_EDGE_PAPER)
    )
    assert "edge" in repr(fn)
    assert get_loss("sms").needs_relevancy and not get_loss("sms").needs_scale
    assert get_loss("infonce").needs_scale and not get_loss("infonce").needs_relevancy
    assert get_loss("egonce").needs_verb_noun
    torch.testing.assert_close(get_loss("mimm", margin=0.3)(sim, **inputs), max_margin_loss(sim, 0.3))
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("triplet")
    with pytest.raises(TypeError, match="unknown hyper-parameters"):
        get_loss("sms", gamma=0.6)
    with pytest.raises(TypeError, match="unknown hyper-parameters"):
        get_loss("sms", positive_relevancy=None)  # an input, not a hyper-parameter
    with pytest.raises(ValueError, match="batch_relevancy"):
        get_loss("sms")(sim)
    with pytest.raises(ValueError, match="verb_multi_hot"):
        get_loss("egonce")(sim, scale=20.0)
    with pytest.raises(ValueError, match=r"needs scale.*exp\(logit_scale\)"):
        get_loss("infonce")(sim)
    with pytest.raises(TypeError, match="logit_scale"):
        get_loss("infonce")(sim, logit_scale=20.0)  # the log is never what a loss takes
    # the names carry the orientation and the exponentiation
    for function in (infonce_loss, egonce_loss, max_margin_loss, adaptive_max_margin_loss, sms_loss, sms_hard_loss):
        assert next(iter(inspect.signature(function).parameters)) == "sim_text_video", function.__name__
    torch.testing.assert_close(infonce_loss(sim_text_video=sim, scale=20.0), infonce_loss(sim, 20.0))


# ----------------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------------


def _call_all(sim, n):
    pos = torch.rand(n, dtype=torch.float64)
    pw = torch.rand(n, n, dtype=torch.float64)
    classes = one_hot(range(n))
    return [
        lambda: infonce_loss(sim, 20.0),
        lambda: egonce_loss(sim, 20.0, classes, classes),
        lambda: max_margin_loss(sim),
        lambda: adaptive_max_margin_loss(sim, pos),
        lambda: sms_loss(sim, pw, pos),
        lambda: sms_hard_loss(sim, (pw > 0.5).double()),
    ]


def test_non_square_and_non_matrix_sim_rejected():
    for call in _call_all(torch.zeros(3, 4, dtype=torch.float64), 3):
        with pytest.raises(ValueError, match=r"\(3, 4\)"):
            call()
    for call in _call_all(torch.zeros(3, dtype=torch.float64), 3):
        with pytest.raises(ValueError, match=r"\(3,\)"):
            call()
    with pytest.raises(ValueError, match="floating"):
        max_margin_loss(torch.zeros(3, 3, dtype=torch.long))


def test_nan_sim_rejected_under_the_debug_switch(monkeypatch):
    sim = random_sim(3)
    sim[1, 2] = float("nan")
    monkeypatch.setenv("EVA02AT_DEBUG_CHECKS", "1")
    for call in _call_all(sim, 3):
        with pytest.raises(ValueError, match=r"\(3, 3\).*NaN"):
            call()
    # Without it no value is read: the NaN reaches the loss, and the trainer stops on it at its next logging step.
    for value in ("", "0"):
        monkeypatch.setenv("EVA02AT_DEBUG_CHECKS", value)
        assert all(math.isnan(call().item()) for call in _call_all(sim, 3))


def test_margin_losses_need_two_pairs():
    sim = torch.ones(1, 1, dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    for call in (
        lambda: max_margin_loss(sim),
        lambda: adaptive_max_margin_loss(sim, one),
        lambda: sms_loss(sim, one[:, None], one),
        lambda: sms_hard_loss(sim, one[:, None]),
    ):
        with pytest.raises(ValueError, match=r"at least 2.*\(1, 1\)"):
            call()
    assert infonce_loss(sim, 20.0).item() == 0.0  # a single pair is a (trivial) valid InfoNCE batch


def test_relevancy_shape_mismatch_rejected():
    sim = random_sim(3)
    pos3, pos4 = torch.ones(3, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    pw3, pw4 = torch.ones(3, 3, dtype=torch.float64), torch.ones(4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(4,\).*\(3, 3\)|\(3, 3\).*\(4,\)"):
        sms_loss(sim, pw3, pos4)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        sms_loss(sim, pw4, pos3)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        adaptive_max_margin_loss(sim, pos4)
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        sms_hard_loss(sim, pw4)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        egonce_loss(sim, 20.0, torch.arange(4), torch.arange(3))


def test_nan_relevancy_rejected_under_the_debug_switch(debug_checks):
    sim = random_sim(3)
    pos3, pw3 = torch.ones(3, dtype=torch.float64), torch.ones(3, 3, dtype=torch.float64)
    nan_pos = pos3.clone()
    nan_pos[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sms_loss(sim, pw3, nan_pos)
    nan_pw = pw3.clone()
    nan_pw[0, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        sms_loss(sim, nan_pw, pos3)


def test_bad_scale_and_hyperparameters_rejected(monkeypatch):
    sim = random_sim(3)
    for bad in (0.0, -1.0, float("nan"), torch.ones(2)):  # numbers are checked in Python, shapes always
        with pytest.raises(ValueError, match="scale must be"):
            infonce_loss(sim, bad)
    monkeypatch.setenv("EVA02AT_DEBUG_CHECKS", "1")  # a scale tensor's value is read only under the switch
    for bad in (torch.tensor(0.0), torch.tensor(float("inf"))):
        with pytest.raises(ValueError, match="scale must be"):
            infonce_loss(sim, bad)
    with pytest.raises(ValueError, match="margin"):
        max_margin_loss(sim, margin=-0.1)
    with pytest.raises(ValueError, match="tau"):
        sms_loss(sim, torch.ones(3, 3), torch.ones(3), tau=float("nan"))


def test_a_relevancy_pickle_outside_the_unit_interval_is_refused_when_loaded(tmp_path):
    """The losses no longer read relevancies on every step: a bad file is named where it enters."""
    import pickle

    from modeling_eva02at.data.relevancy import load_relevancy_pickle

    for bad in (1.5, -0.25, float("nan")):
        relevancy = np.zeros((3000, 4), dtype=np.float32)  # more rows than one checked chunk
        relevancy[2500, 3] = bad
        path = tmp_path / "relevancy.pkl"
        path.write_bytes(pickle.dumps(relevancy))
        with pytest.raises(ValueError, match=r"must lie in \[0, 1\], got .* at row 2500, column 3"):
            load_relevancy_pickle(path)
    relevancy[2500, 3] = 0.75
    path.write_bytes(pickle.dumps(relevancy))
    np.testing.assert_array_equal(load_relevancy_pickle(path), relevancy)


# ----------------------------------------------------------------------------------------------------------------
# Hyper-parameters from the command line
# ----------------------------------------------------------------------------------------------------------------


def ref_sms_hard(sim, class_ids, gamma, tau=0.1):
    """docs/losses.md's SMS-hard over the ordered pairs a != b, both directions: relu(gamma - d) for a candidate of
    another class (Delta = 1), relu(|d| - tau) for one of the same class (Delta = 0)."""
    s, n, terms = sim.tolist(), len(class_ids), []
    for a in range(n):
        for b in range(n):
            if a != b:
                for d in (s[a][a] - s[a][b], s[a][a] - s[b][a]):
                    terms.append(max(0.0, gamma - d) if class_ids[a] != class_ids[b] else max(0.0, abs(d) - tau))
    return sum(terms) / len(terms)


def test_margin_flag_reaches_sms_hard(tmp_path):
    """--margin of examples/finetune_charades_ego.py, through its parser, Eva02AtTrainingArguments and the trainer's
    get_loss, is the gamma of sms_hard's loss: the value equals the formula with gamma 0.5 and differs from the
    default 0.3's, so a margin the plumbing dropped fails here."""
    from modeling_eva02at.training.finetune_charades_ego import parse_fine_tuning_arguments
    from modeling_eva02at.training.trainer import Eva02AtTrainer

    from .conftest import tiny_mir_model

    argv = ["--margin", "0.5", "--output-dir", str(tmp_path), "--report-to", "none", "--use-cpu"]
    _, _, training_args = parse_fine_tuning_arguments(argv)
    assert training_args.loss == "sms_hard" and training_args.margin == 0.5  # the recipe's loss, the flag's margin
    trainer = Eva02AtTrainer(model=tiny_mir_model(), args=training_args)
    class_ids = [5, 5, 2, 7]
    # d = s_aa - s_ab = 0.3 for every pair: every other-class term is gamma - 0.3 (0.2 with gamma 0.5, 0 with 0.3)
    sim = torch.full((4, 4), 0.5, dtype=torch.float64).fill_diagonal_(0.8) + 0.01 * random_sim(4)
    loss = trainer.loss_fn(sim, batch_relevancy=BatchRelevancy.from_class_ids(class_ids)).item()
    assert loss == pytest.approx(ref_sms_hard(sim, class_ids, gamma=0.5), abs=1e-12)
    assert abs(loss - ref_sms_hard(sim, class_ids, gamma=0.3)) > 0.05
    # and the default, with no flag
    _, _, default_args = parse_fine_tuning_arguments(argv[2:])
    default = Eva02AtTrainer(model=tiny_mir_model(), args=default_args).loss_fn
    assert default(sim, batch_relevancy=BatchRelevancy.from_class_ids(class_ids)).item() == pytest.approx(
        ref_sms_hard(sim, class_ids, gamma=0.3), abs=1e-12
    )


@pytest.mark.parametrize("loss, margin", [("mimm", 0.35), ("adaptive_mimm", 0.7), ("sms", 0.45)])
def test_margin_argument_reaches_the_other_margin_losses(tmp_path, loss, margin):
    from modeling_eva02at.training.arguments import Eva02AtTrainingArguments

    args = Eva02AtTrainingArguments(output_dir=str(tmp_path), report_to="none", loss=loss, margin=margin)
    fn = get_loss(args.loss, **args.loss_hyperparameters())
    sim = random_sim(5)
    rel = BatchRelevancy(pairwise=torch.zeros(5, 5, dtype=torch.float64), positive=torch.ones(5, dtype=torch.float64))
    # with every r_a = 1 and every candidate irrelevant, each of the three is relu(margin - d) over the pairs
    assert fn(sim, batch_relevancy=rel).item() == pytest.approx(ref_max_margin(sim, [margin] * 5), abs=1e-12)
