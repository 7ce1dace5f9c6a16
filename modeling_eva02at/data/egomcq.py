"""EgoMCQ (EgoVLP's ``egomcq.json``): the multiple-choice questions and where their candidate clips are read from.

The accuracy task is `modeling_eva02at.evaluation.egomcq`; the metric `modeling_eva02at.evaluation.metrics`.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..utils.files import read_text, require_paths
from .layouts import VIDEO_LAYOUTS, EgoVlpChunks, chunk_paths


# EgoMCQ question types, as egomcq.json stores them (docs/metrics.md). EgoVLP's data loader documents them ("1 for
# inter; 2 for intra"); the metric code of EgoVLP and LaViLa prints the two names the other way round, a bug their
# maintainers confirmed (EgoVLP issue 19, EgoVLPv2 issue 11, fixed by EgoVLPv2 PR 14). The values decide the mapping,
# never the position of a value in a sorted list, so a set with one type only is read correctly too.
EGOMCQ_INTER_VIDEO = 1
"""EgoMCQ ``types`` value of inter-video questions (the 5 candidates come from different videos; ~90-95 %)."""

EGOMCQ_INTRA_VIDEO = 2
"""EgoMCQ ``types`` value of intra-video questions (the 5 candidates are neighbouring clips of one video; ~60 %)."""

EGOMCQ_VIDEO_LAYOUTS = ("auto", "full", "egovlp")
"""Where EgoMCQ's Ego4D clips are read: whole videos, EgoVLP's 600-second chunks, or per video whichever exists."""

_EGOMCQ_CLIP_FIELDS = ("video_uid", "clip_start", "clip_end")


def _check_egomcq_types(path: str, question_ids: list, clips: pd.DataFrame, choices: list, types: list) -> None:
    """Warn where a question's type disagrees with its candidates: the candidates of an inter-video question come
    from several videos, those of an intra-video question from one."""
    uids = clips["video_uid"].to_numpy()
    video_counts = [len(set(uids[row])) for row in choices]
    disagreeing = [
        f"question {key!r} has types {kind} and candidates from {count} video{'s' if count > 1 else ''}"
        for key, kind, count in zip(question_ids, types, video_counts)
        if (kind == EGOMCQ_INTER_VIDEO) != (count > 1)
    ]
    if disagreeing:
        more = ", ..." if len(disagreeing) > 3 else ""
        warnings.warn(
            f"{path}: {len(disagreeing)} of {len(types)} questions have a `types` value that disagrees with their "
            f"candidates ({EGOMCQ_INTER_VIDEO} = inter-video: candidates from several videos; {EGOMCQ_INTRA_VIDEO} = "
            f"intra-video: candidates from one video): {', '.join(disagreeing[:3])}{more}; accuracy is reported by "
            "the file's types",
            stacklevel=3,
        )


@dataclass
class EgoMcqQuestions:
    """EgoMCQ questions (EgoVLP's ``egomcq.json``): a text query and `num_choices` (5) candidate clips each.

    File format: ``{"0": {"query": {clip}, "choices": {"0": {clip}, ..., "4": {clip}}, "answer": int,
    "types": 1 | 2}, ...}`` where a clip is an EgoClip row as a dict: ``video_uid``, ``clip_start`` / ``clip_end``
    (seconds in the full Ego4D video), ``clip_text`` (the narration; the query's is the question's text) and other
    fields (``tag_verb``, ``tag_noun``, ...) that are ignored. ``types``: 1 = inter-video (candidates from several
    videos), 2 = intra-video (candidates from one video), see `metrics.egomcq_accuracy`; a warning names the
    questions whose candidates' videos disagree with their type. Choices are ordered by their integer keys;
    ``answer`` indexes them. Negative clip times are clamped to 0 (as EgoVLP).

    Attributes:
        path: the file read.
        question_ids: the top-level keys, in file order.
        query_texts: the query's ``clip_text`` per question.
        clips: the distinct candidate clips, columns ``video_uid``, ``start``, ``end``.
        choices: ``(num_questions, num_choices)`` row of `clips` of each candidate.
        answers / types: ``(num_questions,)`` ints.
    """

    path: str
    question_ids: list[str]
    query_texts: list[str]
    clips: pd.DataFrame
    choices: np.ndarray
    answers: np.ndarray
    types: np.ndarray

    @classmethod
    def from_json(cls, path: str) -> EgoMcqQuestions:
        """Read and validate ``egomcq.json``.

        Raises:
            ValueError: the JSON is not an object of questions, a question lacks a field, its choices are not keyed
                ``"0".."n-1"`` or not as many as the other questions', ``answer`` is not an integer in
                ``[0, n)``, ``types`` is not 1 or 2, or a clip lacks ``video_uid`` / ``clip_start`` / ``clip_end``
                or has non-numeric times. Messages name the file and the question key.
        """
        try:
            data = json.loads(read_text(path, "EgoMCQ file"))
        except json.JSONDecodeError as error:
            raise ValueError(f"EgoMCQ file {path} is not valid JSON: {error}") from None
        if not isinstance(data, dict) or not data:
            raise ValueError(f"EgoMCQ file {path}: expected a non-empty JSON object of questions keyed '0', '1', ...")
        clip_rows: dict[tuple, int] = {}
        query_texts, choices, answers, types = [], [], [], []
        num_choices = None
        for key, question in data.items():
            where = f"{path}: question {key!r}"
            if not isinstance(question, dict):
                raise ValueError(f"{where} is not an object")
            for name in ("query", "choices", "answer", "types"):
                if name not in question:
                    raise ValueError(f"{where} has no {name!r} field")
            query = question["query"]
            if not isinstance(query, dict) or not isinstance(query.get("clip_text"), str):
                raise ValueError(f"{where}: 'query' must be a clip object with a 'clip_text' string")
            options = question["choices"]
            if not isinstance(options, dict) or not options:
                raise ValueError(f"{where}: 'choices' must be a non-empty object keyed '0', '1', ...")
            expected_keys = [str(i) for i in range(len(options))]
            if sorted(options, key=lambda k: (len(k), k)) != expected_keys:
                raise ValueError(f"{where}: choices must be keyed {expected_keys}, got {list(options)}")
            if num_choices is None:
                num_choices = len(options)
            elif len(options) != num_choices:
                raise ValueError(f"{where} has {len(options)} choices where earlier questions have {num_choices}")
            answer = question["answer"]
            if not _is_integer(answer) or not 0 <= answer < num_choices:
                raise ValueError(f"{where}: answer {answer!r} is not an integer in [0, {num_choices})")
            if not _is_integer(question["types"]) or question["types"] not in (EGOMCQ_INTER_VIDEO, EGOMCQ_INTRA_VIDEO):
                raise ValueError(
                    f"{where}: types {question['types']!r} must be {EGOMCQ_INTER_VIDEO} (inter-video) or "
                    f"{EGOMCQ_INTRA_VIDEO} (intra-video)"
                )
            rows = []
            for choice_key in expected_keys:
                uid, start, end = _egomcq_clip(options[choice_key], f"{where}, choice {choice_key!r}")
                rows.append(clip_rows.setdefault((uid, start, end), len(clip_rows)))
            query_texts.append(query["clip_text"])
            choices.append(rows)
            answers.append(int(answer))
            types.append(int(question["types"]))
        clips = pd.DataFrame(list(clip_rows), columns=["video_uid", "start", "end"])
        _check_egomcq_types(path, list(data), clips, choices, types)
        return cls(
            path=path,
            question_ids=list(data),
            query_texts=query_texts,
            clips=clips,
            choices=np.array(choices, dtype=np.int64),
            answers=np.array(answers, dtype=np.int64),
            types=np.array(types, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.question_ids)

    def clip_videos(
        self,
        video_root: str,
        layout: str = "auto",
        *,
        video_ext: str = "mp4",
        chunk_seconds: int = VIDEO_LAYOUTS["egovlp"],
    ) -> tuple[list, list, list]:
        """`(videos, starts, ends)` of every clip of `clips`, for `modeling_eva02at.evaluation.encoding.encode_videos`
        (anything :func:`~.layouts.load_clip` reads; times are always the whole video's).

        Layouts (`layout="auto"` picks, per video, the full file if it exists, else the chunk folder):

        * ``"full"``: ``<root>/<video_uid>.<ext>``, the whole Ego4D video.
        * ``"egovlp"``: EgoVLP's ``<root>/<video_uid>/<k>.<ext>``, chunk ``k`` holding seconds
          ``[k L, (k + 1) L)`` with L = `chunk_seconds` (600), read as an :class:`~.layouts.EgoVlpChunks`: a clip
          crossing a boundary is sampled as one range over both chunks, so every clip gets the frames it gets from
          the full video.

        Raises:
            ValueError: unknown layout.
            FileNotFoundError: videos or chunk files that do not exist (the first ones are listed).
        """
        if layout not in EGOMCQ_VIDEO_LAYOUTS:
            raise ValueError(f"EgoMCQ video layout must be one of {EGOMCQ_VIDEO_LAYOUTS}, got {layout!r}")
        videos, needed = [], []
        for uid, start, end in self.clips.itertuples(index=False):
            full = os.path.join(video_root, f"{uid}.{video_ext}")
            folder = os.path.join(video_root, str(uid))
            if layout == "full" or (layout == "auto" and (os.path.isfile(full) or not os.path.isdir(folder))):
                needed.append(full)
                videos.append(full)
            else:
                needed += chunk_paths(
                    video_root, str(uid), start, end, "egovlp", chunk_seconds=chunk_seconds, video_ext=video_ext
                )
                videos.append(EgoVlpChunks(folder, chunk_seconds, video_ext))
        # Say where each clip was looked for: with "auto", a missing full video also means no chunk folder.
        what = {
            "full": f"EgoMCQ videos <video_uid>.{video_ext}",
            "egovlp": f"EgoMCQ video chunks <video_uid>/<k>.{video_ext}",
            "auto": f"EgoMCQ videos (<video_uid>.{video_ext}, or chunks <video_uid>/<k>.{video_ext} where that "
            "folder exists)",
        }[layout]
        require_paths(needed, what, video_root)
        return videos, self.clips["start"].tolist(), self.clips["end"].tolist()


def _is_integer(value) -> bool:
    """An int, or an integral float (JSON writers sometimes write 3.0); never a bool."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _egomcq_clip(clip, where: str) -> tuple[str, float, float]:
    if not isinstance(clip, dict):
        raise ValueError(f"{where} is not a clip object")
    for name in _EGOMCQ_CLIP_FIELDS:
        if name not in clip:
            raise ValueError(f"{where} has no {name!r} field")
    try:
        start, end = max(float(clip["clip_start"]), 0.0), max(float(clip["clip_end"]), 0.0)
    except (TypeError, ValueError):
        raise ValueError(
            f"{where}: clip_start / clip_end must be numbers, got {clip['clip_start']!r}, {clip['clip_end']!r}"
        ) from None
    if not (math.isfinite(start) and math.isfinite(end)) or end < start:
        raise ValueError(f"{where}: clip_end {end} is before clip_start {start}")
    if end == start:  # a zero-length clip shows its frame at `start`
        end = start + 1e-3
    return str(clip["video_uid"]), start, end


__all__ = ["EGOMCQ_INTER_VIDEO", "EGOMCQ_INTRA_VIDEO", "EGOMCQ_VIDEO_LAYOUTS", "EgoMcqQuestions"]
