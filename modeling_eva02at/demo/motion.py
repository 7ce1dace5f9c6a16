"""Which motion verbs a model has learned on the demo dataset: per-verb top-1 and direction-pair accuracy.

Every demo clip is scored against the six captions that name its own objects with each verb ("move cup left", ...,
"shrink cup"), so only the verb can be wrong:

* **verb top-1**: the clip's own verb scores highest of the six (chance 1/6);
* **direction-pair accuracy**: for clips of one pair of opposite verbs (left / right, up / down, enlarge / shrink),
  the clip's verb scores above its opposite (chance 1/2). A model without temporal information (neither the
  temporal RoPE nor the temporal embedding) embeds a clip and its time reversal identically; a reversed "left" clip
  is a "right" clip, so such a model cannot beat chance on any pair.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .scene import DEMO_NOUNS, DEMO_VERBS


DIRECTION_PAIRS = {"left/right": (0, 1), "up/down": (2, 3), "enlarge/shrink": (4, 5)}
"""Opposite verbs, as indices of DEMO_VERBS."""


def verb_probe_captions(noun_classes: Sequence[Sequence[int]]) -> list[str]:
    """For each clip (its `all_noun_classes`), the caption of every verb with its nouns: len(DEMO_VERBS) per clip,
    clip-major."""
    captions = []
    for nouns in noun_classes:
        names = " and ".join(DEMO_NOUNS[noun].key for noun in nouns)
        captions.extend(verb.template.format(nouns=names) for verb in DEMO_VERBS)
    return captions


def motion_verb_accuracy(video_embeds, caption_embeds, verb_classes: Sequence[int]) -> dict[str, float]:
    """Per-verb top-1 and direction-pair accuracy (fractions) from embeddings.

    Args:
        video_embeds: (N, D) clip embeddings.
        caption_embeds: (N * len(DEMO_VERBS), D) embeddings of :func:`verb_probe_captions` of the same clips.
        verb_classes: (N,) each clip's verb class.

    Returns:
        ``{"verb_top1": ..., "top1/<verb>": ..., "pair/<pair>": ...}``; a verb or pair without clips is left out.
    """
    videos = np.asarray(video_embeds, dtype=np.float64)
    num_verbs = len(DEMO_VERBS)
    captions = np.asarray(caption_embeds, dtype=np.float64)
    if captions.shape != (len(videos) * num_verbs, videos.shape[1]):
        raise ValueError(
            f"caption_embeds has shape {captions.shape}; expected ({len(videos)} clips x {num_verbs} verbs, "
            f"{videos.shape[1]}) from verb_probe_captions of the same clips"
        )
    verbs = np.asarray(verb_classes)
    scores = np.einsum("nd,nkd->nk", videos, captions.reshape(len(videos), num_verbs, -1))
    correct = scores.argmax(axis=1) == verbs
    result = {"verb_top1": float(correct.mean())}
    for index, verb in enumerate(DEMO_VERBS):
        if (verbs == index).any():
            result[f"top1/{verb.key}"] = float(correct[verbs == index].mean())
    rows = np.arange(len(verbs))
    for name, (first, second) in DIRECTION_PAIRS.items():
        members = (verbs == first) | (verbs == second)
        if members.any():
            opposite = np.where(verbs == first, second, first)
            wins = scores[rows, verbs] > scores[rows, opposite]
            result[f"pair/{name}"] = float(wins[members].mean())
    return result


def format_motion_table(rows: dict[str, dict[str, float]]) -> str:
    """The accuracies of :func:`motion_verb_accuracy` for several models (e.g. before / after training), percent."""
    columns = ["verb_top1", *(f"top1/{verb.key}" for verb in DEMO_VERBS), *(f"pair/{p}" for p in DIRECTION_PAIRS)]
    columns = [c for c in columns if any(c in metrics for metrics in rows.values())]
    lines = [f"{'':<16}" + "".join(f"{c.split('/', 1)[-1]:>15}" for c in columns)]
    for name, metrics in rows.items():
        lines.append(
            f"{name:<16}" + "".join(f"{100 * metrics[c]:>15.1f}" if c in metrics else f"{'-':>15}" for c in columns)
        )
    return "\n".join(lines)


__all__ = ["DIRECTION_PAIRS", "format_motion_table", "motion_verb_accuracy", "verb_probe_captions"]
