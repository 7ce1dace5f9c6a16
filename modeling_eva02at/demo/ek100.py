"""A small synthetic dataset in the exact EPIC-Kitchens-100 multi-instance retrieval (MIR) file formats.

The real EK-100 videos are hundreds of gigabytes, so the training demo and the tests run on this stand-in instead.
It keeps everything the data pipeline sees identical to the real thing (docs/data_formats.md):

* full videos ``<video_root>/<participant>/<video_id>.MP4`` (H.264), each holding several annotated clips back to
  back with short idle gaps, so that clips are cut out EK-100-style by their start / stop timestamps;
* ``EPIC_100_retrieval_{train,test}.csv`` with the real header, ``HH:MM:SS.ff`` timestamps and Python-literal noun
  lists, and ``EPIC_100_retrieval_{train,test}_sentence.csv`` holding one row per unique caption (the first
  narration_id carrying that text), the train file with the real file's extra columns;
* the relevancy matrix is not written: :func:`modeling_eva02at.data.relevancy.build_relevancy` builds it from the CSVs;
* ``DEMO_DATA.json`` (:data:`DEMO_DATA_MARKER`) lists the CSVs with their SHA-256: the evaluation reports record that
  numbers measured on them are the demo's, and the Hub card never publishes them under EPIC-Kitchens-100's name.

What the clips show is chosen so that a model must use time to score well:

* **verbs are motions** (``move <noun> left / right / up / down``, ``enlarge <noun>``, ``shrink <noun>``). Each
  trajectory is centred on a random point, so the middle frame looks the same whatever the direction; only the
  change over frames tells the verbs apart;
* **nouns are objects** with a fixed colour and shape each (a ``cup`` is always a red square, a ``plate`` a white
  disc, ...), recognisable from any single frame;
* a fraction of clips show two objects moving together (``move cup and bowl left``; ``all_nouns`` has 2 entries),
  so that the relevancy ``0.5 * verb match + 0.5 * noun IoU`` takes graded values (0.25, 0.5, 0.75, ...);
* a random low-contrast background texture and per-frame noise keep it from being trivial.

Generation is done once: :func:`make_demo_dataset` writes into a temporary sibling folder and moves it into place
with ``os.replace`` only when complete, together with a ``manifest.json`` of the generator version and parameters.
A later call with the same parameters finds the manifest and returns immediately.

Example:

```python
>>> from modeling_eva02at.demo.ek100 import make_demo_dataset
>>> from modeling_eva02at.data.relevancy import build_relevancy, read_retrieval_csv, read_sentence_csv
>>> paths = make_demo_dataset("data/ek100_demo")
>>> clips, captions = read_retrieval_csv(paths.train_csv), read_sentence_csv(paths.train_sentence_csv)
>>> relevancy = build_relevancy(clips, captions)  # (num_clips, num_captions) float32
```
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..utils.files import staged_folder, write_json
from ..utils.video_writer import write_video
from .scene import DEMO_NOUNS, DEMO_VERBS, IDLE_GAP_SECONDS, DemoClip, ek100_video_ids, plan_videos, render_video


GENERATOR_VERSION = 3
"""Bumped whenever the generated content changes, so that an existing dataset of an older version is regenerated.
3: the demo-data marker (:data:`DEMO_DATA_MARKER`)."""

MANIFEST_NAME = "manifest.json"
DEMO_DATA_MARKER = "DEMO_DATA.json"
"""Written by every demo generator next to the annotation files it makes: ``{"generator", "synthetic": true,
"files": {name: SHA-256}}``. `modeling_eva02at.evaluation.results.is_demo_annotation` reads it (the same name is
defined there: the layers keep the two packages apart), so that an evaluation report says its numbers are the demo's
and the Hub card keeps them out of the model-index. Keyed on the files' content, it travels with a copied folder and
never marks a real file put in its place."""
VIDEO_DIR_NAME = "videos"
TRAIN_CSV_NAME = "EPIC_100_retrieval_train.csv"
TEST_CSV_NAME = "EPIC_100_retrieval_test.csv"
TRAIN_SENTENCE_CSV_NAME = "EPIC_100_retrieval_train_sentence.csv"
TEST_SENTENCE_CSV_NAME = "EPIC_100_retrieval_test_sentence.csv"

RETRIEVAL_COLUMNS = (
    "narration_id",
    "participant_id",
    "video_id",
    "narration_timestamp",
    "start_timestamp",
    "stop_timestamp",
    "start_frame",
    "stop_frame",
    "narration",
    "verb",
    "verb_class",
    "noun",
    "noun_class",
    "all_nouns",
    "all_noun_classes",
)
"""Header of the real EPIC_100_retrieval_{train,test}.csv, in order."""

TEST_SENTENCE_COLUMNS = ("narration_id", "narration")
"""Header of the real EPIC_100_retrieval_test_sentence.csv."""

TRAIN_SENTENCE_COLUMNS = ("narration_id", "narration", "verb_class", "noun_classes", "verb", "nouns")
"""Header of the real EPIC_100_retrieval_train_sentence.csv."""


@dataclass(frozen=True)
class DemoPaths:
    """Where :func:`make_demo_dataset` put the dataset (all absolute paths)."""

    train_csv: str
    test_csv: str
    train_sentence_csv: str
    test_sentence_csv: str
    video_root: str


# ---------------------------------------------------------------------------------------------------------------
# Formatting helpers (EK-100 conventions)
# ---------------------------------------------------------------------------------------------------------------


def format_timestamp(seconds: float, decimals: int = 2) -> str:
    """``HH:MM:SS.ff`` as in EK-100 (``decimals=2`` for start / stop, 3 for ``narration_timestamp``)."""
    # Work in integer units of the last digit, so that e.g. 59.999 s carries into the minutes instead of
    # printing "00:00:60.00".
    scale = 10**decimals
    units = int(round(seconds * scale))
    whole, fraction = divmod(units, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:0{decimals}d}"


def _format_list(values) -> str:
    """Python-literal list as in the EK-100 CSVs: ``['cup', 'bowl']`` / ``[0, 2]``."""
    return repr(list(values))


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def _write_csv(path: str, header, rows) -> None:
    # Plain csv module with "\n" line ends: it quotes exactly the cells that contain a comma ("['cup', 'bowl']",
    # "[0, 2]") and leaves one-element lists bare, as the official files do.
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _retrieval_rows(clips: list[DemoClip], fps: float):
    for clip in clips:
        verb = DEMO_VERBS[clip.verb_class]
        start, stop = clip.start_frame / fps, clip.stop_frame / fps
        yield (
            clip.narration_id,
            clip.participant_id,
            clip.video_id,
            # The narrator speaks during the action; EK-100 gives this time in milliseconds.
            format_timestamp(start + 0.3 * (stop - start), decimals=3),
            format_timestamp(start),
            format_timestamp(stop),
            # EK-100 frame numbers are 1-based (frame_0000000001.jpg): the clip is frames
            # [start_frame, stop_frame] inclusive, i.e. 0-based [round(start * fps), round(stop * fps)).
            clip.start_frame + 1,
            clip.stop_frame,
            clip.narration,
            verb.key,
            clip.verb_class,
            DEMO_NOUNS[clip.noun_classes[0]].key,
            clip.noun_classes[0],
            _format_list(DEMO_NOUNS[noun].key for noun in clip.noun_classes),
            _format_list(clip.noun_classes),
        )


def _unique_captions(clips: list[DemoClip]) -> list[DemoClip]:
    """One clip per distinct caption text, the first in file order (how the EK-100 sentence CSVs are built)."""
    seen: dict[str, DemoClip] = {}
    for clip in clips:
        seen.setdefault(clip.narration, clip)
    return list(seen.values())


def _sentence_rows(clips: list[DemoClip], *, train: bool):
    for clip in _unique_captions(clips):
        if not train:
            yield (clip.narration_id, clip.narration)
            continue
        yield (
            clip.narration_id,
            clip.narration,
            clip.verb_class,
            _format_list(clip.noun_classes),
            DEMO_VERBS[clip.verb_class].key,
            _format_list(DEMO_NOUNS[noun].key for noun in clip.noun_classes),
        )


def _write_split(
    folder: str, videos: list[list[DemoClip]], *, split: str, seed: int, height: int, width: int, fps: float
) -> None:
    video_root = os.path.join(folder, VIDEO_DIR_NAME)
    for video_index, clips in enumerate(tqdm(videos, desc=f"Rendering the demo's {split} videos", unit="video")):
        # One generator per video, derived from (seed, split, video index): a video's pixels depend only on its own
        # clips, not on the order in which videos are rendered.
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, video_index])
        trailing_idle = int(rng.integers(0, round(IDLE_GAP_SECONDS[1] * fps) + 1))
        frames = render_video(rng, clips, clips[-1].stop_frame + trailing_idle, height, width)
        participant_dir = os.path.join(video_root, clips[0].participant_id)
        os.makedirs(participant_dir, exist_ok=True)
        # A keyframe every second keeps seeking to a clip cheap for decord / PyAV.
        write_video(os.path.join(participant_dir, f"{clips[0].video_id}.MP4"), frames, fps, gop_size=max(1, round(fps)))

    clips = [clip for video in videos for clip in video]
    names = (TRAIN_CSV_NAME, TRAIN_SENTENCE_CSV_NAME) if split == "train" else (TEST_CSV_NAME, TEST_SENTENCE_CSV_NAME)
    _write_csv(os.path.join(folder, names[0]), RETRIEVAL_COLUMNS, _retrieval_rows(clips, fps))
    sentence_header = TRAIN_SENTENCE_COLUMNS if split == "train" else TEST_SENTENCE_COLUMNS
    _write_csv(os.path.join(folder, names[1]), sentence_header, _sentence_rows(clips, train=split == "train"))


# ---------------------------------------------------------------------------------------------------------------
# Generate-once logic
# ---------------------------------------------------------------------------------------------------------------


def _paths(root: str) -> DemoPaths:
    return DemoPaths(
        train_csv=os.path.join(root, TRAIN_CSV_NAME),
        test_csv=os.path.join(root, TEST_CSV_NAME),
        train_sentence_csv=os.path.join(root, TRAIN_SENTENCE_CSV_NAME),
        test_sentence_csv=os.path.join(root, TEST_SENTENCE_CSV_NAME),
        video_root=os.path.join(root, VIDEO_DIR_NAME),
    )


def _list_files(folder: str) -> dict[str, int]:
    """{relative path: size in bytes} of every file under `folder` except the manifest, with "/" separators."""
    files = {}
    for directory, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if relative != MANIFEST_NAME:
                files[relative] = os.path.getsize(path)
    return dict(sorted(files.items()))


def _is_complete(root: str, parameters: dict) -> bool:
    """True when `root` holds a dataset of this generator version and parameters with all its files intact."""
    try:
        with open(os.path.join(root, MANIFEST_NAME), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return False
    if manifest.get("generator") != __name__ or manifest.get("version") != GENERATOR_VERSION:
        return False
    if manifest.get("parameters") != parameters or not isinstance(manifest.get("files"), dict):
        return False
    # Sizes, not only names: a truncated video (disk full, killed copy) must not pass.
    for relative, size in manifest["files"].items():
        path = os.path.join(root, *relative.split("/"))
        if not os.path.isfile(path) or os.path.getsize(path) != size:
            return False
    return True


def parameters_manifest_matches(path: str, parameters: dict) -> bool:
    """True when the JSON manifest at `path` (see :func:`write_parameters_manifest`) holds exactly `parameters`: the
    generate-once check of the demo sets that build on this one (EgoClip, Charades-Ego)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle) == parameters
    except (OSError, ValueError):
        return False


def write_parameters_manifest(path: str, parameters: dict) -> None:
    """Write the manifest last, atomically: its presence marks a generated set complete."""
    write_json(path, parameters)


def write_demo_marker(folder: str, names, generator: str) -> None:
    """Mark the annotation files `names` of `folder` as the demo's synthetic data (:data:`DEMO_DATA_MARKER`)."""
    files = {}
    for name in sorted(names):
        with open(os.path.join(folder, name), "rb") as handle:
            files[name] = hashlib.sha256(handle.read()).hexdigest()
    marker = {
        "generator": generator,
        "synthetic": True,
        "note": "synthetic data of modeling_eva02at.demo in a benchmark's file format: numbers measured on it are "
        "not benchmark results",
        "files": files,
    }
    write_json(os.path.join(folder, DEMO_DATA_MARKER), marker)


_CSV_NAMES = (TRAIN_CSV_NAME, TEST_CSV_NAME, TRAIN_SENTENCE_CSV_NAME, TEST_SENTENCE_CSV_NAME)
_OWN_ENTRIES = frozenset({MANIFEST_NAME, DEMO_DATA_MARKER, VIDEO_DIR_NAME, *_CSV_NAMES})


def _check_replaceable(root: str) -> None:
    """Refuse to delete a folder that is not (a stale copy of) a demo dataset: `root` may be a user's typo."""
    if not os.path.lexists(root):
        return
    if not os.path.isdir(root) or os.path.islink(root):
        raise FileExistsError(f"{root} exists and is not a folder; pass another root for the demo dataset")
    foreign = sorted(set(os.listdir(root)) - _OWN_ENTRIES)
    if foreign:
        raise FileExistsError(
            f"{root} is not a demo dataset folder (it holds {foreign[:5]}); refusing to replace it. Pass an empty "
            f"or new folder as root."
        )


def make_demo_dataset(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    num_train: int = 1600,
    num_test: int = 100,
    width: int = 64,
    height: int = 48,
    fps: float = 8,
    clip_seconds: float = 2.0,
    clips_per_video: int = 8,
    num_participants: int = 4,
    overwrite: bool = False,
) -> DemoPaths:
    """Generate (once) the synthetic EK-100 MIR dataset described in the module docstring into `root`.

    Args:
        root: the dataset folder. It is created; if it already holds a complete dataset made with the same
            parameters (checked through its ``manifest.json``), nothing is done. A stale or incomplete dataset
            folder is replaced; a folder holding anything else is refused.
        seed: the annotations (all CSVs, byte for byte) and the rendered frames are a deterministic function of the
            seed and the parameters. The MP4 bytes may differ slightly between runs: multi-threaded libx264 is not
            bit-exact (decoded frames differ by a few gray levels on a few percent of the pixels).
        num_train / num_test: number of clips (rows of EPIC_100_retrieval_{train,test}.csv). The two splits use
            different videos.
        width / height: frame size in pixels (even sizes give yuv420p, as real footage).
        fps: frame rate of the videos; must be below 100 so that two-decimal timestamps map back to exact frames.
        clip_seconds: mean clip length (lengths vary by +-25%); idle gaps of 0-0.5 s separate the clips.
        clips_per_video: annotated clips per video (the last video of a split may hold fewer).
        num_participants: videos are dealt round-robin to participants P01..P<k>.
        overwrite: regenerate even if a complete dataset exists.

    Returns:
        :class:`DemoPaths` of the four CSVs and the video root (``<video_root>/<participant>/<video_id>.MP4``).
    """
    if num_train < 1 or num_test < 1:
        raise ValueError(f"num_train and num_test must be positive, got {num_train} and {num_test}")
    if not 0 < fps < 100:
        raise ValueError(f"fps must be in (0, 100) so that HH:MM:SS.ff timestamps are frame-exact, got {fps}")
    if width < 16 or height < 16:
        raise ValueError(f"frames must be at least 16x16, got {width}x{height}")
    if clips_per_video < 1 or num_participants < 1 or clip_seconds <= 0:
        raise ValueError("clips_per_video, num_participants and clip_seconds must be positive")

    root = os.path.abspath(os.fspath(root))
    parameters = {
        "seed": int(seed),
        "num_train": int(num_train),
        "num_test": int(num_test),
        "width": int(width),
        "height": int(height),
        "fps": float(fps),
        "clip_seconds": float(clip_seconds),
        "clips_per_video": int(clips_per_video),
        "num_participants": int(num_participants),
    }
    if not overwrite and _is_complete(root, parameters):
        return _paths(root)
    _check_replaceable(root)

    # Built beside root and swapped in complete; if another process finished the same dataset meanwhile, its copy is
    # kept. An interrupted run leaves at most a hidden ".<name>.tmp-*" folder, never a root that looks complete.
    with staged_folder(root, keep_existing=lambda: not overwrite and _is_complete(root, parameters)) as staging:
        rng = np.random.default_rng(seed)
        next_video_number = [1] * num_participants
        for split, num_clips in (("train", num_train), ("test", num_test)):
            video_ids = ek100_video_ids(math.ceil(num_clips / clips_per_video), num_participants, next_video_number)
            videos = plan_videos(
                rng,
                num_clips,
                fps=fps,
                clip_seconds=clip_seconds,
                clips_per_video=clips_per_video,
                video_ids=video_ids,
            )
            _write_split(staging, videos, split=split, seed=seed, height=height, width=width, fps=fps)
        write_demo_marker(staging, _CSV_NAMES, __name__)

        manifest = {
            "generator": __name__,
            "version": GENERATOR_VERSION,
            "parameters": parameters,
            "verbs": [verb.key for verb in DEMO_VERBS],
            "nouns": [noun.key for noun in DEMO_NOUNS],
            "files": _list_files(staging),
        }
        # The manifest is written last: its presence (with matching files) is what marks the dataset complete.
        with open(os.path.join(staging, MANIFEST_NAME), "w", encoding="utf-8") as handle:
            json.dump(manifest, handle, indent=2)
        _check_replaceable(root)  # again: root may have changed while the dataset was generated
    return _paths(root)


__all__ = [
    "DEMO_DATA_MARKER",
    "DEMO_NOUNS",
    "DEMO_VERBS",
    "DemoPaths",
    "GENERATOR_VERSION",
    "RETRIEVAL_COLUMNS",
    "TEST_SENTENCE_COLUMNS",
    "TRAIN_SENTENCE_COLUMNS",
    "format_timestamp",
    "make_demo_dataset",
    "write_demo_marker",
]
