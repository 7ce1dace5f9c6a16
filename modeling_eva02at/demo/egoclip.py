"""A small synthetic pretraining set in EgoClip's real file formats, with held-out zero-shot sets (docs/pretraining.md).

Built on the EK-100-format demo of :mod:`.ek100` (its moving-shape clips, captions and videos):

* its **train** split becomes Ego4D-style pretraining data: ``egoclip.csv`` (EgoVLP's tab-separated columns, captions
  written as narrations ``#C C move cup left``, ``tag_verb`` / ``tag_noun`` from the clip's classes), the same clips
  as a LaViLa-style pickled list ``egoclip.pkl`` (``(video_uid, start, end, [narration, rephrasing])``), and every
  video in the four Ego4D layouts: ``videos_full/<uid>.mp4``, ``videos_egovlp/<uid>/<k>.mp4``,
  ``videos_lavila/<uid>.mp4/<sec>.mp4`` and ``videos_avion/<uid>.mp4/<sec>.mp4``. Chunk lengths are the real ones
  (600, 300, 15 s) unless `chunk_seconds` says otherwise; the demo videos last about 18 s, so AVION's chunks cut
  clips in two;
* its **test** split is the held-out EK-100 MIR set (the EK-100 demo files as they are) and the source of a held-out
  ``egomcq.json`` (EgoVLP's format; types 1 = inter-video, 2 = intra-video) over ``videos_egomcq/<uid>.mp4``;
* ``DEMO_DATA.json`` marks ``egoclip.csv``, ``egoclip.pkl`` and ``egomcq.json`` as the demo's
  (``ek100.DEMO_DATA_MARKER``, as the EK-100 demo's own marks its CSVs), so that evaluation reports and the Hub card
  tell demo numbers apart.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import uuid
from dataclasses import dataclass

import numpy as np

from ..data.egoclip import EGOCLIP_COLUMNS
from ..data.layouts import VIDEO_LAYOUTS
from ..data.relevancy import read_retrieval_csv
from ..utils.video_writer import write_video
from ..video_reading_eva02at import open_video, time_to_seconds
from .ek100 import (
    DemoPaths,
    make_demo_dataset,
    parameters_manifest_matches,
    write_demo_marker,
    write_parameters_manifest,
)


EGOCLIP_DEMO_VERSION = 2
"""2: the demo-data marker next to egoclip.csv, egoclip.pkl and egomcq.json (`ek100.DEMO_DATA_MARKER`)."""


@dataclass(frozen=True)
class EgoClipDemoPaths:
    """Where :func:`make_egoclip_demo` put everything (absolute paths)."""

    egoclip_tsv: str
    egoclip_pickle: str
    video_roots: dict  # layout -> root
    chunk_seconds: dict  # layout -> chunk length in seconds (None for "full")
    ek100: DemoPaths  # the held-out EK-100 MIR set: test_csv, test_sentence_csv, video_root
    egomcq_json: str
    egomcq_video_root: str


def ego4d_uid(video_id: str) -> str:
    """A stable Ego4D-style UUID for a demo video id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"eva02at-demo/{video_id}"))


def narration(caption: str) -> str:
    """Ego4D narration style: ``#C C move cup left`` (C is the camera wearer)."""
    return f"#C C {caption}"


def _decode_all(path: str) -> tuple[np.ndarray, float]:
    """Every frame of a demo video and its frame rate, through the processor's decoder."""
    with open_video(path, path, "pyav", 0) as reader:
        return reader.get_frames(np.arange(reader.num_frames)), reader.fps


def _write_layouts(source: str, uid: str, roots: dict, chunk_seconds: dict) -> None:
    frames, fps = _decode_all(source)
    for layout, root in roots.items():
        if layout == "full":
            os.makedirs(root, exist_ok=True)
            shutil.copyfile(source, os.path.join(root, f"{uid}.mp4"))
            continue
        length = chunk_seconds[layout]
        folder = os.path.join(root, uid if layout == "egovlp" else f"{uid}.mp4")
        os.makedirs(folder, exist_ok=True)
        duration = len(frames) / fps
        for index in range(int(np.ceil(duration / length))):
            # chunk k holds frames [int(k L fps), int((k + 1) L fps)), as the readers number them
            piece = frames[int(index * length * fps) : int((index + 1) * length * fps)]
            name = f"{index}.mp4" if layout == "egovlp" else f"{index * length}.mp4"
            write_video(os.path.join(folder, name), piece, fps, gop_size=max(1, round(fps)))


def _egoclip_rows(clips, durations: dict) -> list[str]:
    lines = ["\t".join(EGOCLIP_COLUMNS)]
    for index, clip in enumerate(clips.itertuples(index=False)):
        start, end = time_to_seconds(clip.start_timestamp), time_to_seconds(clip.stop_timestamp)
        uid = ego4d_uid(clip.video_id)
        # quoted as in the real file: the narration and the multi-element noun list
        lines.append(
            "\t".join(
                [
                    str(index),
                    uid,
                    f"{durations[clip.video_id]:.6f}",
                    "narration_pass_1",
                    str(index),
                    f"{(start + end) / 2:.4f}",
                    f"{start:.6f}",
                    f"{end:.6f}",
                    f'"{narration(clip.narration)}"',
                    f"[{clip.verb_class}]",
                    f'"{list(clip.all_noun_classes)}"',
                ]
            )
        )
    return lines


def _egomcq_questions(clips, rng: np.random.Generator, num_questions: int) -> dict:
    """Half inter-video (types 1: the answer among clips of other videos), half intra-video (types 2: among other
    clips of the answer's own video); candidates never share the answer's caption."""
    rows = list(clips.itertuples(index=False))

    def clip_dict(clip) -> dict:
        return {
            "video_uid": ego4d_uid(clip.video_id),
            "clip_start": time_to_seconds(clip.start_timestamp),
            "clip_end": time_to_seconds(clip.stop_timestamp),
            "clip_text": narration(clip.narration),
        }

    questions = {}
    for number, answer_row in enumerate(rng.permutation(len(rows))[:num_questions]):
        answer = rows[answer_row]
        kind = 1 if number % 2 == 0 else 2
        others = [
            clip
            for clip in rows
            if clip.narration != answer.narration
            and (clip.video_id != answer.video_id if kind == 1 else clip.video_id == answer.video_id)
        ]
        if kind == 1:  # one clip per other video
            by_video = {others[i].video_id: others[i] for i in rng.permutation(len(others))}
            others = list(by_video.values())
        if len(others) < 4:
            continue
        picks = [others[i] for i in rng.choice(len(others), 4, replace=False)]
        position = int(rng.integers(5))
        picks.insert(position, answer)
        questions[str(len(questions))] = {
            "query": clip_dict(answer),
            "choices": {str(i): clip_dict(c) for i, c in enumerate(picks)},
            "answer": position,
            "types": kind,
        }
    return questions


def make_egoclip_demo(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    num_train: int = 192,
    num_test: int = 48,
    chunk_seconds: dict | None = None,
    num_egomcq: int = 24,
) -> EgoClipDemoPaths:
    """Generate (once per parameters) the demo of the module docstring into `root` and return its paths.

    Args:
        num_train / num_test: clips of the pretraining set and of the held-out split (8 clips per video).
        chunk_seconds: per-layout chunk lengths overriding 600 / 300 / 15 (e.g. to make clips straddle EgoVLP's
            chunks in a test).
        num_egomcq: EgoMCQ questions (about half of each type).
    """
    root = os.path.abspath(os.fspath(root))
    lengths = {layout: (chunk_seconds or {}).get(layout, seconds) for layout, seconds in VIDEO_LAYOUTS.items()}
    parameters = {
        "version": EGOCLIP_DEMO_VERSION,
        "seed": seed,
        "num_train": num_train,
        "num_test": num_test,
        "chunk_seconds": lengths,
        "num_egomcq": num_egomcq,
    }
    ek100 = make_demo_dataset(os.path.join(root, "ek100"), seed=seed, num_train=num_train, num_test=num_test)
    paths = EgoClipDemoPaths(
        egoclip_tsv=os.path.join(root, "egoclip.csv"),
        egoclip_pickle=os.path.join(root, "egoclip.pkl"),
        video_roots={layout: os.path.join(root, f"videos_{layout}") for layout in VIDEO_LAYOUTS},
        chunk_seconds=lengths,
        ek100=ek100,
        egomcq_json=os.path.join(root, "egomcq.json"),
        egomcq_video_root=os.path.join(root, "videos_egomcq"),
    )
    manifest = os.path.join(root, "egoclip_manifest.json")
    if parameters_manifest_matches(manifest, parameters):
        return paths
    for folder in (*paths.video_roots.values(), paths.egomcq_video_root):
        shutil.rmtree(folder, ignore_errors=True)

    train, test = read_retrieval_csv(ek100.train_csv), read_retrieval_csv(ek100.test_csv)
    durations = {}
    for clips, roots in ((train, paths.video_roots), (test, {"full": paths.egomcq_video_root})):
        for participant, video_id in clips[["participant_id", "video_id"]].drop_duplicates().itertuples(index=False):
            source = os.path.join(ek100.video_root, participant, f"{video_id}.MP4")
            _write_layouts(source, ego4d_uid(video_id), roots, lengths)
            with open_video(source, source, "pyav", 0) as reader:
                durations[video_id] = reader.num_frames / reader.fps

    with open(paths.egoclip_tsv, "w", encoding="utf-8") as handle:
        handle.write("\n".join(_egoclip_rows(train, durations)) + "\n")
    clip_list = [
        (
            ego4d_uid(clip.video_id),
            time_to_seconds(clip.start_timestamp),
            time_to_seconds(clip.stop_timestamp),
            [narration(clip.narration), f"The camera wearer does this: {clip.narration}."],
        )
        for clip in train.itertuples(index=False)
    ]
    with open(paths.egoclip_pickle, "wb") as handle:
        pickle.dump(clip_list, handle)
    questions = _egomcq_questions(test, np.random.default_rng(seed), num_egomcq)
    with open(paths.egomcq_json, "w", encoding="utf-8") as handle:
        json.dump(questions, handle, indent=1)
    names = [os.path.basename(path) for path in (paths.egoclip_tsv, paths.egoclip_pickle, paths.egomcq_json)]
    write_demo_marker(root, names, __name__)
    write_parameters_manifest(manifest, parameters)
    return paths


__all__ = ["EgoClipDemoPaths", "ego4d_uid", "make_egoclip_demo", "narration"]
