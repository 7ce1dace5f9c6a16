"""Training losses of EVA02-AT (docs/losses.md); the batch relevancy they read is `batch_relevancy.py`'s.

Conventions shared by every loss in this file:

* ``sim_text_video`` is the ``(N, N)`` cosine-similarity matrix of a batch of ``N`` (text, video) pairs with
  **rows = texts, columns = videos**: ``sim_text_video[a, b] = s_ab`` = similarity of text ``a`` and video ``b``.
  The trainer builds it as ``text_embeds @ video_embeds.T`` from L2-normalised embeddings. The diagonal holds the
  positive pairs.
* Every loss is a pure function of ``sim_text_video`` (plus the batch's relevancy / labels where it needs them). It
  does not care how the features were gathered: for multi-GPU training gather the embeddings *with gradients*
  (``torch.distributed.nn.functional.all_gather``) and the per-sample metadata (video / sentence indices, positive
  relevancies, verb / noun multi-hot rows) in the same rank order, then build ``sim_text_video`` and
  :class:`BatchRelevancy` from the gathered tensors.
* ``scale`` is the **exponentiated** multiplier of the contrastive losses, ``exp(logit_scale)`` (``model.scale()``,
  e.g. 1/0.07 ~= 14.3, or 20 for the paper's temperature 0.05), what open_clip / AVION's ``ClipLoss`` receive.
  ``logit_scale`` always means the log, as the model's parameter.
* Half-precision ``sim_text_video`` is up-cast to float32: the margins (tau = 0.1, relevancy steps of 1/240) are
  close to bfloat16's resolution.

Margin losses average over the ``2 N (N - 1)`` ordered off-diagonal terms (text->video and video->text); the
diagonal is excluded, as in EgoVLP / AVION's ``MaxMarginRankingLoss(fix_norm=True)``.

Shapes are checked on every call; tensor values (NaN, a scale tensor, 0/1 labels) only with EVA02AT_DEBUG_CHECKS=1
(:func:`debug_checks_enabled`), so that a training step never waits on the device and every loss compiles as one
graph.

SMS defaults follow the authors' code (docs/losses.md): candidates' relevancies quantised as ``uint8(240 R) / 240``
(:meth:`BatchRelevancy.from_matrix` with ``quantized=True``), edge ``lambda = 1.1 / 240`` (:data:`SMS_EDGE_CODE`),
positives' relevancies unquantised. The paper's variant is ``BatchRelevancy.from_matrix(..., quantized=False)`` with
``get_loss("sms", edge=SMS_EDGE_PAPER)``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling_eva02at import contrastive_loss
from .arguments import LOSS_NAMES  # written out there (tests check they match LOSSES): --help needs no torch
from .batch_relevancy import RELEVANCY_LEVELS, BatchRelevancy, is_hard_labels


SMS_EDGE_CODE = 1.1 / RELEVANCY_LEVELS
"""SMS edge lambda of the authors' code. It exceeds one quantisation step (1/240), so a candidate exactly as
relevant as the positive (``Delta = r_a - trunc(240 r_a) / 240`` in ``[0, 1/240)``) always lands in the
"equally relevant" branch."""

SMS_EDGE_PAPER = 0.1
"""SMS edge lambda as stated in the paper (equal to the positive threshold 0.1)."""


# ---------------------------------------------------------------------------------------------------------------
# Input checks. Every loss validates its inputs so that a trainer bug (a transposed or rank-local matrix, a
# relevancy vector of the wrong batch) fails loudly with the shapes instead of training on garbage.
#
# Shapes, dtypes and Python hyper-parameters are checked on every call: they are known on the host. Checks of tensor
# *values* (NaN, a non-positive scale tensor, labels that are not 0/1) would copy a value from the device on every
# step and make torch.compile break the graph there, so they run only with EVA02AT_DEBUG_CHECKS=1. The data they
# guard is validated where it enters instead: the relevancy matrix when it is loaded or handed to the trainer, class
# ids when the dataset reads them; a non-finite loss stops the trainer at its next logging step (docs/losses.md).
# ---------------------------------------------------------------------------------------------------------------

DEBUG_CHECKS_VARIABLE = "EVA02AT_DEBUG_CHECKS"
"""The environment variable that turns on the losses' and the trainer's per-step value checks (any value but empty
or 0)."""


def debug_checks_enabled() -> bool:
    """Whether EVA02AT_DEBUG_CHECKS asks for the value checks, read at each call so that it can be set at any time."""
    return os.environ.get(DEBUG_CHECKS_VARIABLE, "") not in ("", "0")


def _check_finite(x: torch.Tensor, name: str) -> None:
    """NaN / inf in `x` raise, only under EVA02AT_DEBUG_CHECKS (the check reads a value from the device)."""
    if debug_checks_enabled() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} of shape {tuple(x.shape)} contains NaN or infinite values")


def _check_sim(sim_text_video: torch.Tensor, min_size: int = 1) -> torch.Tensor:
    if not isinstance(sim_text_video, torch.Tensor):
        raise ValueError(f"sim_text_video must be a torch.Tensor, got {type(sim_text_video).__name__}")
    shape = tuple(sim_text_video.shape)
    if sim_text_video.dim() != 2 or shape[0] != shape[1]:
        raise ValueError(f"sim_text_video must be a square (N, N) text x video similarity matrix, got shape {shape}")
    if not sim_text_video.is_floating_point():
        raise ValueError(f"sim_text_video must be floating point, got dtype {sim_text_video.dtype} (shape {shape})")
    if shape[0] < min_size:
        raise ValueError(
            f"this loss needs at least {min_size} pairs per batch (it has no negatives otherwise), "
            f"got sim_text_video of shape {shape}"
        )
    _check_finite(sim_text_video, "sim_text_video")
    if sim_text_video.dtype in (torch.float16, torch.bfloat16):
        sim_text_video = sim_text_video.float()
    return sim_text_video


def _check_vector(x: torch.Tensor, n: int, name: str, sim_shape: tuple) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) to match sim_text_video of shape {sim_shape}, got {tuple(x.shape)}"
        )
    if x.is_floating_point():
        _check_finite(x, name)


def _check_pairwise(x: torch.Tensor, n: int, name: str, sim_shape: tuple) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != (n, n):
        raise ValueError(
            f"{name} must have shape ({n}, {n}) to match sim_text_video of shape {sim_shape}, got {tuple(x.shape)}"
        )
    _check_finite(x, name)


def _check_hyper(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite non-negative number, got {value!r}")


def _check_scale(scale, sim_text_video: torch.Tensor) -> torch.Tensor | float:
    """`scale` as a Python number, or as a 0-d tensor of sim_text_video's dtype keeping its autograd graph
    (`model.scale()`). A number is checked here; a tensor's value only under EVA02AT_DEBUG_CHECKS."""
    if scale is None:
        raise ValueError("this loss needs scale, the exponentiated logit scale (model.scale() = exp(logit_scale))")
    if not isinstance(scale, torch.Tensor):
        # A Python number stays one: the kernels take it as an argument, with no tensor to copy to the device.
        if not (isinstance(scale, numbers.Real) and math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"scale must be positive and finite: the exponentiated logit scale (e.g. 1/0.07), got {scale!r}"
            )
        return float(scale)
    if scale.numel() != 1:
        raise ValueError(f"scale must be a scalar, got shape {tuple(scale.shape)}")
    scale = scale.reshape(()).to(device=sim_text_video.device, dtype=sim_text_video.dtype)
    if debug_checks_enabled() and not bool(torch.isfinite(scale) & (scale > 0)):
        raise ValueError(
            f"scale must be positive and finite: the exponentiated logit scale (e.g. 1/0.07), got {float(scale)}"
        )
    return scale


def _mean_off_diagonal(text_to_video: torch.Tensor, video_to_text: torch.Tensor) -> torch.Tensor:
    """Mean over the 2 N (N - 1) terms with a != b of two (N, N) term matrices indexed [anchor a, candidate b].

    The diagonal is zeroed rather than indexed out: a boolean-mask selection has a data-dependent size, which
    synchronises with the device and breaks a compiled graph."""
    n = text_to_video.shape[0]
    diagonal = torch.eye(n, dtype=torch.bool, device=text_to_video.device)
    return (text_to_video + video_to_text).masked_fill(diagonal, 0).sum() / (2 * n * (n - 1))


def _anchor_distances(sim_text_video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two (N, N) matrices of d = s_aa - s_(candidate), indexed [anchor a, candidate b].

    text->video (anchor text a, candidate video b): d = s_aa - s_ab.
    video->text (anchor video a, candidate text b): d = s_aa - s_ba.
    """
    positive = sim_text_video.diagonal().unsqueeze(1)
    return positive - sim_text_video, positive - sim_text_video.T


# ---------------------------------------------------------------------------------------------------------------
# Losses (docs/losses.md)
# ---------------------------------------------------------------------------------------------------------------


def infonce_loss(sim_text_video: torch.Tensor, scale) -> torch.Tensor:
    r"""Symmetric InfoNCE (CLIP): ``0.5 * [CE(scale * V T^T, I) + CE(scale * T V^T, I)]`` (docs/losses.md).

    With ``sim_text_video = T V^T`` the text->video logits are ``scale * sim_text_video`` and the video->text logits
    its transpose; the target of row ``a`` is column ``a``.

    Args:
        sim_text_video: ``(N, N)``, ``sim_text_video[a, b]`` = cosine similarity of text ``a`` and video ``b``.
        scale: ``exp(logit_scale)`` (``1 / temperature``, ``model.scale()``), a float or a scalar tensor (may need
            grad).
    """
    sim_text_video = _check_sim(sim_text_video)
    return contrastive_loss(_check_scale(scale, sim_text_video) * sim_text_video)


def _shares_a_class(multi_hot: torch.Tensor, n: int, name: str, sim_shape: tuple) -> torch.Tensor:
    """(N, N) bool: samples a and b share a class, from (N, num_classes) multi-hot rows (nonzero = has the class)."""
    if not isinstance(multi_hot, torch.Tensor):
        multi_hot = torch.as_tensor(np.asarray(multi_hot))
    if multi_hot.dim() != 2 or multi_hot.shape[0] != n:
        hint = " (class ids: torch.nn.functional.one_hot(ids, num_classes))" if multi_hot.dim() == 1 else ""
        raise ValueError(
            f"{name} must be ({n}, num_classes) multi-hot rows to match sim_text_video of shape {sim_shape}, got "
            f"{tuple(multi_hot.shape)}{hint}"
        )
    has_class = (multi_hot != 0).float()
    return (has_class @ has_class.T) > 0


def egonce_loss(sim_text_video: torch.Tensor, scale, verb_multi_hot, noun_multi_hot) -> torch.Tensor:
    r"""EgoNCE (EgoVLP; docs/losses.md, optional): InfoNCE whose positives are all pairs sharing a verb **and** a noun.

    ``P(a) = {b : verb(a) ~ verb(b) and noun(a) ~ noun(b)} | {a}`` where ``~`` means the two samples' multi-hot rows
    share a class. With ``l = scale * sim_text_video``:

        text->video:  -mean_a log( sum_{b in P(a)} exp(l_ab) / sum_b exp(l_ab) )
        video->text:  -mean_a log( sum_{b in P(a)} exp(l_ba) / sum_b exp(l_ba) )
        loss = 0.5 * (text->video + video->text)

    The two directions are averaged so that the loss equals :func:`infonce_loss` when no two samples share both
    verb and noun. (EgoVLP's ``EgoNCE`` returns their *sum*, i.e. twice this, with ``scale = 1 / 0.05``.)

    Args:
        sim_text_video: ``(N, N)``, ``sim_text_video[a, b]`` = cosine similarity of text ``a`` and video ``b``.
        scale: ``exp(logit_scale)``, as for :func:`infonce_loss`.
        verb_multi_hot, noun_multi_hot: ``(N, num_classes)`` multi-hot rows, one per sample: EgoClip's tags, or an
            EK-100 clip's ``verb_class`` (one-hot) and ``all_noun_classes``, as the datasets give them.
    """
    sim_text_video = _check_sim(sim_text_video)
    n, shape, device = sim_text_video.shape[0], tuple(sim_text_video.shape), sim_text_video.device
    scale = _check_scale(scale, sim_text_video)
    positives = _shares_a_class(verb_multi_hot, n, "verb_multi_hot", shape).to(device)
    positives = positives & _shares_a_class(noun_multi_hot, n, "noun_multi_hot", shape).to(device)
    positives = positives | torch.eye(n, dtype=torch.bool, device=device)

    def one_direction(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # -log(sum_pos exp / sum_all exp), in log space for stability
        log_positives = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
        return (torch.logsumexp(logits, dim=1) - log_positives).mean()

    logits = scale * sim_text_video
    return 0.5 * (one_direction(logits, positives) + one_direction(logits.T, positives.T))


def max_margin_loss(sim_text_video: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    r"""MI-MM, the max-margin ranking loss (docs/losses.md): for every ordered pair ``a != b``

        text->video:  relu(m - (s_aa - s_ab))
        video->text:  relu(m - (s_aa - s_ba))

    averaged over the ``2 N (N - 1)`` terms (the diagonal, where every term would be the constant ``m``, is excluded,
    as in EgoVLP / AVION's ``MaxMarginRankingLoss`` with ``fix_norm=True``).
    """
    sim_text_video = _check_sim(sim_text_video, min_size=2)
    _check_hyper(margin=margin)
    dist_t2v, dist_v2t = _anchor_distances(sim_text_video)
    return _mean_off_diagonal(F.relu(margin - dist_t2v), F.relu(margin - dist_v2t))


def adaptive_max_margin_loss(
    sim_text_video: torch.Tensor, positive_relevancy: torch.Tensor, margin: float = 0.4
) -> torch.Tensor:
    r"""Adaptive MI-MM (docs/losses.md): MI-MM whose margin is ``m * r_a``, ``r_a`` = relevancy of the anchor's
    positive pair (the same ``r_a`` for both directions of anchor ``a``):

        relu(m r_a - (s_aa - s_ab))  and  relu(m r_a - (s_aa - s_ba)),  mean over the 2 N (N - 1) terms a != b.
    """
    sim_text_video = _check_sim(sim_text_video, min_size=2)
    _check_hyper(margin=margin)
    _check_vector(positive_relevancy, sim_text_video.shape[0], "positive_relevancy", tuple(sim_text_video.shape))
    anchor_margin = (margin * positive_relevancy).to(device=sim_text_video.device, dtype=sim_text_video.dtype)
    anchor_margin = anchor_margin.unsqueeze(1)
    dist_t2v, dist_v2t = _anchor_distances(sim_text_video)
    return _mean_off_diagonal(F.relu(anchor_margin - dist_t2v), F.relu(anchor_margin - dist_v2t))


def _sms_terms(delta: torch.Tensor, dist: torch.Tensor, margin: float, tau: float, edge: float) -> torch.Tensor:
    """The three SMS branches, element-wise. ``delta`` keeps its own (float64) dtype for the branch tests."""
    target = (margin * delta).to(dist.dtype) - dist  # gamma * Delta - d
    more_relevant = delta > edge  # the positive is more relevant by Delta
    equally_relevant = delta.abs() < edge  # keep the two similarities within tau of gamma * Delta
    return torch.where(
        more_relevant,
        F.relu(target),
        # "otherwise" (Delta <= -edge, and also Delta == +edge exactly): the candidate is at least as relevant
        torch.where(equally_relevant, F.relu(target.abs() - tau), F.relu(-target)),
    )


def sms_loss(
    sim_text_video: torch.Tensor,
    pairwise_relevancy: torch.Tensor,
    positive_relevancy: torch.Tensor,
    margin: float = 0.6,
    tau: float = 0.1,
    edge: float = SMS_EDGE_CODE,
) -> torch.Tensor:
    r"""Symmetric Multi-Similarity loss (docs/losses.md; Wang et al., arXiv 2406.12256).

    Sample ``a`` = clip ``i_a`` with positive sentence ``p_a`` and ``r_a = R[i_a, p_a]``. For each ordered pair
    ``a != b``:

        text->video:  Delta = r_a - R[i_b, p_a],  d = s_aa - s_ab
        video->text:  Delta = r_a - R[i_a, p_b],  d = s_aa - s_ba

    and with margin ``gamma``, relaxation ``tau`` and edge ``lambda``:

        Delta >  lambda:   relu(gamma * Delta - d)             (the positive is more relevant)
        |Delta| < lambda:  relu(|gamma * Delta - d| - tau)     (equally relevant)
        otherwise:         relu(d - gamma * Delta)             (the candidate is at least as relevant)

    Loss = mean over the ``2 N (N - 1)`` terms. "Otherwise" is taken literally, so ``Delta == +lambda`` exactly
    falls in the third branch, as in the authors' code.

    Args:
        sim_text_video: ``(N, N)``, ``sim_text_video[a, b] = s_ab`` (text ``a``, video ``b``).
        pairwise_relevancy: ``(N, N)``, ``[t, v] = R[i_v, p_t]`` (:attr:`BatchRelevancy.pairwise`).
        positive_relevancy: ``(N,)``, ``r_a`` (:attr:`BatchRelevancy.positive`).
        margin: gamma (0.6 for EK-100 MIR).
        tau: relaxation of the equally-relevant branch (0.1).
        edge: lambda; :data:`SMS_EDGE_CODE` = 1.1/240 (authors' code, default, used with quantised candidates) or
            :data:`SMS_EDGE_PAPER` = 0.1.
    """
    sim_text_video = _check_sim(sim_text_video, min_size=2)
    _check_hyper(margin=margin, tau=tau, edge=edge)
    n, shape = sim_text_video.shape[0], tuple(sim_text_video.shape)
    _check_pairwise(pairwise_relevancy, n, "pairwise_relevancy", shape)
    _check_vector(positive_relevancy, n, "positive_relevancy", shape)
    pairwise = pairwise_relevancy.to(sim_text_video.device)
    positive = positive_relevancy.to(sim_text_video.device).unsqueeze(1)

    dist_t2v, dist_v2t = _anchor_distances(sim_text_video)
    delta_t2v = positive - pairwise  # [a, b] = r_a - R[i_b, p_a]
    delta_v2t = positive - pairwise.T  # [a, b] = r_a - R[i_a, p_b]
    return _mean_off_diagonal(
        _sms_terms(delta_t2v, dist_t2v, margin, tau, edge), _sms_terms(delta_v2t, dist_v2t, margin, tau, edge)
    )


def sms_hard_loss(
    sim_text_video: torch.Tensor,
    pairwise_relevancy: torch.Tensor,
    positive_relevancy: torch.Tensor | None = None,
    margin: float = 0.3,
    tau: float = 0.1,
) -> torch.Tensor:
    r"""SMS for hard 0/1 labels (Charades-Ego, docs/losses.md): every positive has ``r_a = 1`` and candidates are
    0 or 1, so only two cases exist:

        Delta = 1 (candidate irrelevant):        relu(gamma - d)
        Delta = 0 (candidate equally relevant):  relu(|d| - tau)

    with ``d`` as in :func:`sms_loss` (both directions, mean over the ``2 N (N - 1)`` terms). This equals
    :func:`sms_loss` on the same binary input for any edge in ``(0, 1)``.

    Args:
        pairwise_relevancy: ``(N, N)`` of 0/1, ``[t, v]`` = 1 iff text ``t`` describes video ``v``
            (:meth:`BatchRelevancy.from_class_ids`).
        positive_relevancy: ``(N,)``, all ones (default). Neither it nor the 0/1 values of ``pairwise_relevancy``
            are read here unless EVA02AT_DEBUG_CHECKS is set: they are checked where the labels are made.
        margin: gamma (0.3 for Charades-Ego).
        tau: relaxation of the equally-relevant case (the paper gives none for Charades-Ego; 0.1 as for EK-100).
    """
    sim_text_video = _check_sim(sim_text_video, min_size=2)
    _check_hyper(margin=margin, tau=tau)
    n, shape = sim_text_video.shape[0], tuple(sim_text_video.shape)
    _check_pairwise(pairwise_relevancy, n, "pairwise_relevancy", shape)
    if positive_relevancy is not None:
        _check_vector(positive_relevancy, n, "positive_relevancy", shape)
    # Hard labels are checked where they are made (BatchRelevancy.from_class_ids builds 0/1, the trainer checks a
    # relevancy matrix once); here only under EVA02AT_DEBUG_CHECKS, as it reads values from the device.
    if debug_checks_enabled():
        if positive_relevancy is not None and not bool((positive_relevancy == 1).all()):
            raise ValueError(
                "sms_hard_loss needs every positive relevancy to be 1 (hard labels: only Delta in {0, 1} exists); "
                "for graded relevancy such as EK-100's use sms_loss"
            )
        if not is_hard_labels(pairwise_relevancy):
            raise ValueError(
                f"sms_hard_loss needs 0/1 pairwise relevancies (hard labels, e.g. Charades-Ego's, see "
                f"BatchRelevancy.from_class_ids), got a {tuple(pairwise_relevancy.shape)} matrix with other values; "
                "for graded relevancy such as EK-100's use sms_loss"
            )
    irrelevant = pairwise_relevancy.to(sim_text_video.device) == 0  # [t, v]: Delta = 1 - R = 1

    dist_t2v, dist_v2t = _anchor_distances(sim_text_video)
    t2v = torch.where(irrelevant, F.relu(margin - dist_t2v), F.relu(dist_t2v.abs() - tau))
    v2t = torch.where(irrelevant.T, F.relu(margin - dist_v2t), F.relu(dist_v2t.abs() - tau))
    return _mean_off_diagonal(t2v, v2t)


# ---------------------------------------------------------------------------------------------------------------
# Registry with one call signature for the trainer
# ---------------------------------------------------------------------------------------------------------------

# name -> (function, inputs it takes from the uniform call). Everything else in the signature is a hyper-parameter.
LOSSES: dict[str, tuple[Callable[..., torch.Tensor], tuple[str, ...]]] = {
    "infonce": (infonce_loss, ("scale",)),
    "egonce": (egonce_loss, ("scale", "verb_multi_hot", "noun_multi_hot")),
    "mimm": (max_margin_loss, ()),
    "adaptive_mimm": (adaptive_max_margin_loss, ("positive_relevancy",)),
    "sms": (sms_loss, ("pairwise_relevancy", "positive_relevancy")),
    "sms_hard": (sms_hard_loss, ("pairwise_relevancy", "positive_relevancy")),
}


class RetrievalLoss:
    r"""A loss from :data:`LOSS_NAMES` bound to its hyper-parameters, called the same way whatever the loss::

        loss = loss_fn(sim_text_video, scale=model.scale(), batch_relevancy=..., verb_multi_hot=..., noun_multi_hot=...)

    Each loss takes what it needs and ignores the rest; a missing required input raises ``ValueError``. The flags
    :attr:`needs_scale`, :attr:`needs_relevancy` and :attr:`needs_verb_noun` tell the trainer what to prepare.
    """

    def __init__(self, name: str, **hyperparameters):
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
        self.name = name
        self.fn, self.inputs = LOSSES[name]
        allowed = [p for p in inspect.signature(self.fn).parameters if p != "sim_text_video" and p not in self.inputs]
        unknown = sorted(set(hyperparameters) - set(allowed))
        if unknown:
            raise TypeError(f"loss {name!r} got unknown hyper-parameters {unknown}; it accepts {allowed}")
        self.hyperparameters = hyperparameters

    @property
    def needs_scale(self) -> bool:
        return "scale" in self.inputs

    @property
    def needs_relevancy(self) -> bool:
        return "positive_relevancy" in self.inputs

    @property
    def needs_verb_noun(self) -> bool:
        return "verb_multi_hot" in self.inputs

    def __call__(
        self,
        sim_text_video: torch.Tensor,
        *,
        scale=None,
        batch_relevancy: BatchRelevancy | None = None,
        verb_multi_hot=None,
        noun_multi_hot=None,
    ) -> torch.Tensor:
        if self.needs_relevancy and batch_relevancy is None:
            raise ValueError(f"loss {self.name!r} needs batch_relevancy=BatchRelevancy(...)")
        if self.needs_verb_noun and (verb_multi_hot is None or noun_multi_hot is None):
            raise ValueError(f"loss {self.name!r} needs verb_multi_hot and noun_multi_hot (a multi-hot row per sample)")
        available = {
            "scale": scale,
            "verb_multi_hot": verb_multi_hot,
            "noun_multi_hot": noun_multi_hot,
            "pairwise_relevancy": batch_relevancy.pairwise if batch_relevancy is not None else None,
            "positive_relevancy": batch_relevancy.positive if batch_relevancy is not None else None,
        }
        return self.fn(sim_text_video, **{k: available[k] for k in self.inputs}, **self.hyperparameters)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters.items())
        return f"RetrievalLoss({self.name!r}{', ' + params if params else ''})"


def get_loss(name: str, **hyperparameters) -> RetrievalLoss:
    """Build a loss by name (``"sms"``, ``"sms_hard"``, ``"mimm"``, ``"adaptive_mimm"``, ``"infonce"``,
    ``"egonce"``) with optional hyper-parameters, e.g. ``get_loss("sms", edge=SMS_EDGE_PAPER)``."""
    return RetrievalLoss(name, **hyperparameters)


__all__ = [
    "DEBUG_CHECKS_VARIABLE",
    "SMS_EDGE_CODE",
    "SMS_EDGE_PAPER",
    "RetrievalLoss",
    "adaptive_max_margin_loss",
    "debug_checks_enabled",
    "egonce_loss",
    "get_loss",
    "infonce_loss",
    "max_margin_loss",
    "sms_hard_loss",
    "sms_loss",
]
