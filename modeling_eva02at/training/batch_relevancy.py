"""The relevancy a batch's loss needs (docs/relevancy.md), looked up in the split's relevancy matrix or built from class
labels, laid out like the batch's similarity matrix.

`relevancy` is always the split's ``(num_clips, num_sentences)`` matrix ``R``; a :class:`BatchRelevancy` holds the
``(N, N)`` block a batch of ``N`` (text, video) pairs reads from it and the ``(N,)`` relevancies of its positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


RELEVANCY_LEVELS = 240
"""Quantisation levels of the authors' uint8 relevancy copy: ``uint8(240 * R) / 240``."""

_TensorOrArray = torch.Tensor | np.ndarray
_ROW_CHUNK = 4096  # rows of a relevancy matrix checked at a time


def _check_unit_interval(relevancy: _TensorOrArray) -> None:
    # Written as "all inside" rather than "any outside" so that NaN fails too.
    inside = (relevancy >= 0) & (relevancy <= 1)
    if not bool(inside.all()):
        raise ValueError(
            f"relevancy values must lie in [0, 1] (and not be NaN) to be quantised, got an array of shape "
            f"{tuple(relevancy.shape)} with values outside"
        )


def is_hard_labels(relevancy: _TensorOrArray) -> bool:
    """Whether every value of `relevancy` (a numpy array or a tensor, any shape) is 0 or 1: the labels sms_hard takes.

    It reads every value (a numpy matrix in row chunks, so that a big one needs no boolean copy of itself): call it
    once where the labels enter, not on every training step."""
    if isinstance(relevancy, torch.Tensor):
        return bool(((relevancy == 0) | (relevancy == 1)).all())
    relevancy = np.asarray(relevancy)
    rows = relevancy.reshape(len(relevancy), -1) if relevancy.ndim > 1 else relevancy.reshape(1, -1)
    for start in range(0, len(rows), _ROW_CHUNK):
        block = rows[start : start + _ROW_CHUNK]
        if not ((block == 0) | (block == 1)).all():
            return False
    return True


def quantize_relevancy(relevancy: _TensorOrArray, levels: int = RELEVANCY_LEVELS, as_codes: bool = False):
    r"""Quantise relevancies like the authors' SMS code: ``uint8(levels * R)`` (truncation), then ``/ levels``.

    E.g. ``R = 0.66`` -> ``trunc(158.4) = 158`` -> ``158 / 240``. The product ``levels * R`` is computed in the
    input's own dtype before truncating, as numpy / torch do in the original code, so float round-off is reproduced
    (e.g. a product of 159.99999... truncates to 159).

    Args:
        relevancy: numpy array or torch tensor of floats in ``[0, 1]``, any shape.
        levels: number of quantisation levels, at most 255 (the codes are uint8).
        as_codes: return the uint8 codes themselves (a 8x smaller copy of a big relevancy matrix, which
            :meth:`BatchRelevancy.from_matrix` accepts) instead of ``codes / levels``.

    Returns:
        The same container type as the input: uint8 codes, or floats of the input's dtype equal to ``codes / levels``.
    """
    if not 1 <= levels <= 255:
        raise ValueError(f"levels must be in [1, 255] so that codes fit in uint8, got {levels}")
    _check_unit_interval(relevancy)
    if isinstance(relevancy, torch.Tensor):
        if not relevancy.is_floating_point():
            raise ValueError(f"relevancy to quantise must be floating point, got {relevancy.dtype}")
        codes = (relevancy * levels).to(torch.uint8)  # float -> uint8 truncates toward zero
        return codes if as_codes else codes.to(relevancy.dtype) / levels
    relevancy = np.asarray(relevancy)
    if not np.issubdtype(relevancy.dtype, np.floating):
        raise ValueError(f"relevancy to quantise must be floating point, got {relevancy.dtype}")
    codes = (relevancy * levels).astype(np.uint8)
    return codes if as_codes else codes.astype(relevancy.dtype) / relevancy.dtype.type(levels)


def _index_vector(indices, name: str) -> np.ndarray:
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
        raise ValueError(
            f"{name} must be a 1-D sequence of integer indices, got shape {indices.shape}, dtype {indices.dtype}"
        )
    return indices.astype(np.int64)


@dataclass
class BatchRelevancy:
    r"""The relevancy information of one (gathered) batch, laid out like ``sim_text_video``.

    Attributes:
        pairwise: ``(N, N)``; ``pairwise[t, v]`` = relevancy of the batch's text ``t`` (sentence ``p_t``) to the
            batch's video ``v`` (clip ``i_v``) = ``R[i_v, p_t]``, i.e. the layout of ``sim_text_video[t, v]``.
            With the authors' defaults these values are quantised (see :func:`quantize_relevancy`). The diagonal
            is never used by the losses.
        positive: ``(N,)``; ``r_a = R[i_a, p_a]``, the relevancy of each sample's own (text, video) pair,
            unquantised (it comes straight from the data loader in the authors' code).

    One matrix serves both SMS directions (docs/losses.md), because both index the same ``R``:

    * text->video, anchor text ``a``, candidate video ``b``: ``R[i_b, p_a] = pairwise[a, b]``
      (:attr:`text_to_video`);
    * video->text, anchor video ``a``, candidate text ``b``: ``R[i_a, p_b] = pairwise[b, a]``
      (:attr:`video_to_text`, the transpose).

    Storing the two directions separately could only let them drift apart.
    """

    pairwise: torch.Tensor
    positive: torch.Tensor

    def __post_init__(self):
        if not isinstance(self.pairwise, torch.Tensor) or not isinstance(self.positive, torch.Tensor):
            raise ValueError("BatchRelevancy.pairwise and .positive must be torch tensors")
        if self.pairwise.dim() != 2 or self.pairwise.shape[0] != self.pairwise.shape[1]:
            raise ValueError(f"BatchRelevancy.pairwise must be (N, N), got shape {tuple(self.pairwise.shape)}")
        if tuple(self.positive.shape) != (self.pairwise.shape[0],):
            raise ValueError(
                f"BatchRelevancy.positive must be ({self.pairwise.shape[0]},) to match pairwise of shape "
                f"{tuple(self.pairwise.shape)}, got {tuple(self.positive.shape)}"
            )

    @property
    def text_to_video(self) -> torch.Tensor:
        """``[a, b] = R[i_b, p_a]``: relevancy of candidate video ``b`` to anchor text ``a``."""
        return self.pairwise

    @property
    def video_to_text(self) -> torch.Tensor:
        """``[a, b] = R[i_a, p_b]``: relevancy of candidate text ``b`` to anchor video ``a``."""
        return self.pairwise.T

    @classmethod
    def from_matrix(
        cls,
        relevancy: _TensorOrArray,
        video_index: Sequence[int] | _TensorOrArray,
        sentence_index: Sequence[int] | _TensorOrArray,
        *,
        quantized: bool = True,
        levels: int = RELEVANCY_LEVELS,
        positive_relevancy: torch.Tensor | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> BatchRelevancy:
        r"""Look up what the relevancy-aware losses need for one batch in a full relevancy matrix.

        ``R`` has shape ``(num_videos, num_sentences)`` (rows = clips, columns = sentences, docs/relevancy.md).
        Sample ``a`` of the batch is the clip ``i_a = video_index[a]`` paired with the sentence
        ``p_a = sentence_index[a]`` drawn as its positive. Returns :class:`BatchRelevancy` with

        * ``pairwise[t, v] = R[i_v, p_t]`` (the layout of ``sim_text_video[t, v]``), quantised when ``quantized``
          (authors' code),
        * ``positive[a] = r_a = R[i_a, p_a]``, never quantised.

        Only the ``N x N`` block is read and quantised, so ``R`` may be a huge numpy memmap.

        Args:
            relevancy: float ``R`` in ``[0, 1]`` (numpy array or torch tensor), or the uint8 codes returned by
                ``quantize_relevancy(R, as_codes=True)``; codes imply ``quantized=True`` and need
                ``positive_relevancy``.
            video_index, sentence_index: the batch's global clip and sentence indices, length ``N`` (gathered over
                ranks in the same order as the embeddings).
            quantized: look candidates up in the ``uint8(levels * R) / levels`` copy (authors' code, default) or use
                ``R`` as is (paper).
            levels: quantisation levels (240 in the authors' code).
            positive_relevancy: ``(N,)`` r_a from the data loader; default ``R[i_a, p_a]`` read from a float ``R``.
            device, dtype: where and how to return the tensors (float64 by default: exact for float64 ``R`` and cheap at
                batch sizes).
        """
        video_index = _index_vector(video_index, "video_index")
        sentence_index = _index_vector(sentence_index, "sentence_index")
        if video_index.shape != sentence_index.shape:
            raise ValueError(
                f"video_index and sentence_index must have the same length, got shapes {video_index.shape} and "
                f"{sentence_index.shape}"
            )
        if relevancy.ndim != 2:
            raise ValueError(
                f"relevancy must be a (num_videos, num_sentences) matrix, got shape {tuple(relevancy.shape)}"
            )
        for name, idx, size in (
            ("video_index", video_index, relevancy.shape[0]),
            ("sentence_index", sentence_index, relevancy.shape[1]),
        ):
            # negative indices would silently wrap around: they can only be a bug here
            if idx.size and (idx.min() < 0 or idx.max() >= size):
                raise ValueError(f"{name} out of range for relevancy of shape {tuple(relevancy.shape)}: {idx.tolist()}")

        # block[a, b] = R[i_a, p_b] is clip-major like R: pairwise, laid out text x video, is its transpose.
        if isinstance(relevancy, torch.Tensor):
            rows = torch.as_tensor(video_index, device=relevancy.device)
            cols = torch.as_tensor(sentence_index, device=relevancy.device)
            block = relevancy[rows[:, None], cols[None, :]]
            is_codes = block.dtype == torch.uint8
        else:
            block = np.asarray(relevancy)[np.ix_(video_index, sentence_index)]
            is_codes = block.dtype == np.uint8

        if is_codes:
            if not quantized:
                raise ValueError(
                    "relevancy holds uint8 codes, which are already quantised: pass a float matrix for quantized=False"
                )
            # divide in float64 so that code / levels is the nearest double, whatever `dtype` is asked for
            pairwise = torch.as_tensor(block.T).to(torch.float64) / levels
        else:
            pairwise = quantize_relevancy(block.T, levels) if quantized else block.T
        pairwise = torch.as_tensor(pairwise).to(device=device, dtype=dtype)

        positive = positive_relevancy
        if positive is None:
            if is_codes:
                raise ValueError(
                    "relevancy holds quantised uint8 codes; pass the unquantised positive relevancies "
                    "(r_a from the data loader) as `positive_relevancy`"
                )
            diagonal = block.diagonal()
            positive = torch.as_tensor(np.array(diagonal) if isinstance(diagonal, np.ndarray) else diagonal)
        elif not isinstance(positive, torch.Tensor):
            positive = torch.as_tensor(np.asarray(positive))
        positive = positive.to(device=device if device is not None else pairwise.device, dtype=dtype)
        return cls(pairwise=pairwise, positive=positive)

    @classmethod
    def from_class_ids(
        cls, class_ids: Sequence[int] | _TensorOrArray, device=None, dtype: torch.dtype = torch.float64
    ) -> BatchRelevancy:
        r"""Binary relevancy for hard-label data (Charades-Ego): text ``t`` is relevant to video ``v`` iff
        ``class_ids[t] == class_ids[v]``; every positive has ``r_a = 1``. For the ``sms_hard`` loss.

        A tensor stays where it is (``device`` defaults to its own) and its values are never read on the host: the
        comparison runs on the device, so a training step need not wait for it. The ids are the dataset's, checked
        when it read them."""
        if not isinstance(class_ids, torch.Tensor):
            class_ids = torch.as_tensor(_index_vector(class_ids, "class_ids"))
        elif class_ids.dim() != 1 or class_ids.is_floating_point() or class_ids.is_complex():
            raise ValueError(
                f"class_ids must be a 1-D sequence of integer ids, got shape {tuple(class_ids.shape)}, dtype "
                f"{class_ids.dtype}"
            )
        class_ids = class_ids.to(device) if device is not None else class_ids
        pairwise = (class_ids[:, None] == class_ids[None, :]).to(dtype)
        return cls(pairwise=pairwise, positive=torch.ones(class_ids.shape[0], dtype=dtype, device=class_ids.device))

    def to(self, *args, **kwargs) -> BatchRelevancy:
        """Move / cast both tensors like :meth:`torch.Tensor.to`."""
        return BatchRelevancy(self.pairwise.to(*args, **kwargs), self.positive.to(*args, **kwargs))


__all__ = ["RELEVANCY_LEVELS", "BatchRelevancy", "is_hard_labels", "quantize_relevancy"]
