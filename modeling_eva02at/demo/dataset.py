"""A small synthetic dataset in the exact EPIC-Kitchens-100 multi-instance retrieval (MIR) file formats.

The real EK-100 videos are hundreds of gigabytes, so the training demo and the tests run on this stand-in instead.
It keeps everything the data pipeline sees identical to the real thing (docs/data_formats.md):

* full videos ``<video_root>/<participant>/<video_id>.MP4`` (H.264), each holding several annotated clips back to
  back with short idle gaps, so that clips are cut out EK-100-style by their start / stop timestamps;
* ``EPIC_100_retrieval_{train,test}.csv`` with the real header, ``HH:MM:SS.ff`` timestamps and Python-literal noun
  lists, and ``EPIC_100_retrieval_{train,test}_sentence.csv`` holding one row per unique caption (the first
  narration_id carrying that text), the train file with the real file's extra columns;
* the relevancy matrix is not written: :func:`modeling_eva02at.data.relevancy.build_relevancy` builds it from the CSVs.

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
>>> from modeling_eva02at.demo.dataset import make_demo_dataset
>>> from modeling_eva02at.data.relevancy import build_relevancy, read_retrieval_csv, read_sentence_csv
>>> paths = make_demo_dataset("data/ek100_demo")
>>> clips, captions = read_retrieval_csv(paths.train_csv), read_sentence_csv(paths.train_sentence_csv)
>>> relevancy = build_relevancy(clips, captions)  # (num_clips, num_captions) float32
```
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..utils.files import give_default_permissions, write_json
from .video import write_video


GENERATOR_VERSION = 2
"""Bumped whenever the generated content changes, so that an existing dataset of an older version is regenerated."""

MANIFEST_NAME = "manifest.json"
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


class DemoVerb(NamedTuple):
    """A verb class: ``key`` is the EK-style verb column (words joined by ``-``), ``motion`` what the clip shows."""

    key: str
    motion: str  # "translate" or "scale"
    # "translate": unit (dx, dy) in image coordinates (y points down); "scale": (+1, 0) grows, (-1, 0) shrinks.
    direction: tuple[float, float]
    template: str  # caption with "{nouns}" standing for "cup" or "cup and bowl"


class DemoNoun(NamedTuple):
    """A noun class: a single EK-like token drawn as a fixed shape in a fixed colour."""

    key: str
    shape: str
    color: tuple[int, int, int]


DEMO_VERBS = (
    DemoVerb("move-left", "translate", (-1.0, 0.0), "move {nouns} left"),
    DemoVerb("move-right", "translate", (1.0, 0.0), "move {nouns} right"),
    DemoVerb("move-up", "translate", (0.0, -1.0), "move {nouns} up"),
    DemoVerb("move-down", "translate", (0.0, 1.0), "move {nouns} down"),
    DemoVerb("enlarge", "scale", (1.0, 0.0), "enlarge {nouns}"),
    DemoVerb("shrink", "scale", (-1.0, 0.0), "shrink {nouns}"),
)
"""Verb classes; the index is ``verb_class``. Every caption names its verb (and direction) in words."""

DEMO_NOUNS = (
    DemoNoun("cup", "square", (220, 40, 40)),
    DemoNoun("plate", "disc", (235, 235, 235)),
    DemoNoun("bowl", "ring", (245, 140, 20)),
    DemoNoun("knife", "hbar", (40, 210, 220)),
    DemoNoun("bottle", "vbar", (40, 200, 60)),
    DemoNoun("sponge", "triangle", (235, 220, 40)),
    DemoNoun("pan", "disc", (40, 70, 230)),
    DemoNoun("lid", "cross", (220, 50, 210)),
)
"""Noun classes; the index is ``noun_class``. Saturated colours, far from the gray background texture."""

TWO_OBJECT_FRACTION = 0.25
"""Share of clips that show a second object (their ``all_nouns`` has two entries)."""

# Objects stay inside the frame's central square (side = the short side): the processor resizes the short side and
# center-crops a square, so anything outside it would be cut off. Object half-size and the travel of a "move" clip
# are fractions of that side: large enough to be seen at 64x48 and for a move to span ~2 patches of the demo model's
# 32-px input (8-px patches), small enough that start points still vary.
_OBJECT_RADIUS = 0.11
_TRAVEL = (0.5, 0.65)
_SCALE_RANGE = (0.5, 1.6)  # an "enlarge" clip goes from 0.5x to 1.6x the object's size, "shrink" the other way
_BACKGROUND_NOISE = 4.0  # per-frame Gaussian noise, in gray levels
_IDLE_GAP_SECONDS = (0.0, 0.5)  # object-free frames between two clips of a video


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
# Annotations
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Clip:
    narration_id: str
    participant_id: str
    video_id: str
    start_frame: int  # 0-based, inclusive
    stop_frame: int  # 0-based, exclusive
    verb_class: int
    noun_classes: tuple[int, ...]  # the first one is the clip's main noun

    @property
    def narration(self) -> str:
        nouns = " and ".join(DEMO_NOUNS[noun].key for noun in self.noun_classes)
        return DEMO_VERBS[self.verb_class].template.format(nouns=nouns)


def _balanced_choices(rng: np.random.Generator, num_classes: int, count: int) -> np.ndarray:
    """`count` class ids where every class appears floor or ceil of count / num_classes times, in random order."""
    repeats = np.tile(np.arange(num_classes), math.ceil(count / num_classes))
    # The partial last cycle is drawn at random so that the surplus does not always go to the first classes.
    tail = count - (len(repeats) - num_classes)
    choices = np.concatenate([repeats[: len(repeats) - num_classes], rng.permutation(num_classes)[:tail]])
    return rng.permutation(choices)


def _plan_split(
    rng: np.random.Generator,
    num_clips: int,
    *,
    fps: float,
    clip_seconds: float,
    clips_per_video: int,
    video_ids: list[tuple[str, str]],
) -> list[list[_Clip]]:
    """Draw the annotations of one split: a list of videos, each a list of clips in time order."""
    verbs = _balanced_choices(rng, len(DEMO_VERBS), num_clips)
    nouns = _balanced_choices(rng, len(DEMO_NOUNS), num_clips)
    has_second = rng.random(num_clips) < TWO_OBJECT_FRACTION
    # Clip lengths vary around clip_seconds as EK-100 segments do, so loaders cannot assume a fixed length.
    mean_frames = max(4, round(clip_seconds * fps))
    low, high = max(4, round(0.75 * mean_frames)), max(4, round(1.25 * mean_frames))
    gap_low, gap_high = (round(seconds * fps) for seconds in _IDLE_GAP_SECONDS)

    videos: list[list[_Clip]] = []
    for clip_index in range(num_clips):
        slot = clip_index % clips_per_video
        if slot == 0:
            videos.append([])
            cursor = int(rng.integers(gap_low, gap_high + 1))  # a video may start with idle frames, too
        participant_id, video_id = video_ids[len(videos) - 1]
        length = int(rng.integers(low, high + 1))
        noun_classes = (int(nouns[clip_index]),)
        if has_second[clip_index]:
            others = [noun for noun in range(len(DEMO_NOUNS)) if noun != noun_classes[0]]
            noun_classes += (int(rng.choice(others)),)
        videos[-1].append(
            _Clip(
                narration_id=f"{video_id}_{slot}",
                participant_id=participant_id,
                video_id=video_id,
                start_frame=cursor,
                stop_frame=cursor + length,
                verb_class=int(verbs[clip_index]),
                noun_classes=noun_classes,
            )
        )
        cursor += length + int(rng.integers(gap_low, gap_high + 1))
    return videos


def _video_ids(num_videos: int, num_participants: int, first_number: list[int]) -> list[tuple[str, str]]:
    """(participant_id, video_id) of `num_videos` videos dealt round-robin to participants P01..Pk.

    `first_number[p]` is participant p's next video number; it is updated, so the test split continues the
    numbering after the train split (EK-100 style: P01_01..P01_10 train, P01_11.. test), never reusing a video.
    """
    ids = []
    for index in range(num_videos):
        participant = index % num_participants
        ids.append((f"P{participant + 1:02d}", f"P{participant + 1:02d}_{first_number[participant]:02d}"))
        first_number[participant] += 1
    return ids


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------


def _signed_distance(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) from pixel offsets (dx, dy) to a shape of half-size `radius`.

    Drawing with a one-pixel soft edge from this distance anti-aliases the shapes, so that sub-pixel motion shows
    as a smooth change instead of one-pixel jumps.
    """
    # Strokes (bar / cross arms, the ring) keep a minimum width in pixels: thinner ones lose their colour to the
    # 2x2 chroma subsampling of yuv420p H.264 and the noun would no longer be recognisable at small sizes.
    thin = max(0.45 * radius, 1.5)
    if shape == "disc":
        return np.hypot(dx, dy) - radius
    if shape == "ring":
        distance = np.hypot(dx, dy)
        return np.maximum(distance - radius, min(0.5 * radius, radius - 2.5) - distance)
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) - 0.85 * radius
    if shape == "hbar":
        return np.maximum(np.abs(dx) - radius, np.abs(dy) - thin)
    if shape == "vbar":
        return np.maximum(np.abs(dx) - thin, np.abs(dy) - radius)
    if shape == "cross":
        horizontal = np.maximum(np.abs(dx) - radius, np.abs(dy) - thin)
        vertical = np.maximum(np.abs(dx) - thin, np.abs(dy) - radius)
        return np.minimum(horizontal, vertical)
    if shape == "triangle":
        # Upward-pointing isosceles triangle, apex (0, -r), base corners (+-r, r): below the apex's two slanted
        # sides (2|dx| <= dy + r) and above the base line (dy <= r). Shifted so that (0, 0) is its centroid, so that
        # an enlarging triangle grows about a fixed point like the other shapes.
        dy = dy + radius / 3.0
        slant = (2.0 * np.abs(dx) - dy - radius) / math.sqrt(5.0)
        return np.maximum(dy - radius, slant)
    raise ValueError(f"unknown shape {shape!r}")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (H, W, 3) float gray-ish texture: a few random low-frequency gratings around a random mid-dark level."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    base = rng.uniform(60, 110) + rng.uniform(-8, 8, size=3)  # slight tint, never saturated like the objects
    texture = np.zeros((height, width))
    for _ in range(3):
        angle, period, phase = rng.uniform(0, np.pi), rng.uniform(8, 40), rng.uniform(0, 2 * np.pi)
        texture += rng.uniform(4, 12) * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period + phase)
    return base[None, None, :] + texture[:, :, None]


def _trajectory(
    rng: np.random.Generator, verb: DemoVerb, num_frames: int, height: int, width: int, travel: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre x, centre y and half-size of one object for every frame of a clip.

    The trajectory's midpoint is drawn uniformly among the positions that keep the whole path inside the frame's
    central square; that range does not depend on the sense of the motion (left / right, enlarge / shrink), so the
    middle frame carries no hint of it.
    """
    side = min(height, width)
    radius = _OBJECT_RADIUS * side * rng.uniform(0.85, 1.15)
    progress = np.linspace(0.0, 1.0, num_frames)
    if verb.motion == "scale":
        start, stop = _SCALE_RANGE if verb.direction[0] > 0 else _SCALE_RANGE[::-1]
        radii = radius * (start + (stop - start) * progress)
        offset = np.zeros(num_frames)
        dx = dy = 0.0
    else:
        radii = np.full(num_frames, radius)
        offset = (progress - 0.5) * travel
        dx, dy = verb.direction
    low_x = (width - side) / 2 + radii.max() + 1.0 + abs(dx) * travel / 2
    low_y = (height - side) / 2 + radii.max() + 1.0 + abs(dy) * travel / 2
    mid_x = rng.uniform(low_x, max(low_x, width - low_x))
    mid_y = rng.uniform(low_y, max(low_y, height - low_y))
    return mid_x + dx * offset, mid_y + dy * offset, radii


def _clip_objects(rng: np.random.Generator, clip: _Clip, height: int, width: int) -> list[tuple]:
    """(noun, xs, ys, radii) of every object in a clip; two objects move together without overlapping."""
    verb = DEMO_VERBS[clip.verb_class]
    num_frames = clip.stop_frame - clip.start_frame
    # Shared by both objects: "move cup and bowl left" moves them by the same amount.
    travel = rng.uniform(*_TRAVEL) * min(height, width)
    objects = [(clip.noun_classes[0], *_trajectory(rng, verb, num_frames, height, width, travel))]
    for noun in clip.noun_classes[1:]:
        # Rejection sampling: keep the two shapes apart at all times (good enough after a few tries at 64x48;
        # the last draw is kept if none fits, a touching pair is still a valid clip).
        for _ in range(50):
            candidate = _trajectory(rng, verb, num_frames, height, width, travel)
            xs, ys, radii = objects[0][1:]
            gap = np.hypot(candidate[0] - xs, candidate[1] - ys) - 1.1 * (candidate[2] + radii)
            if gap.min() > 1.0:
                break
        objects.append((noun, *candidate))
    return objects


def _render_video(
    rng: np.random.Generator, clips: list[_Clip], num_frames: int, height: int, width: int
) -> np.ndarray:
    """All frames of one video, (T, H, W, 3) uint8: every clip's objects over its own background."""
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    # Idle frames (between clips) show the next clip's background, empty, so that clip boundaries are not hard cuts
    # from one texture to the next in the middle of an annotated segment.
    boundaries = [0] + [clip.stop_frame for clip in clips[:-1]] + [num_frames]
    for index, clip in enumerate(clips):
        background = _background(rng, height, width)
        objects = _clip_objects(rng, clip, height, width)
        for frame_index in range(boundaries[index], max(boundaries[index + 1], clip.stop_frame)):
            image = background.copy()
            t = frame_index - clip.start_frame
            if 0 <= t < clip.stop_frame - clip.start_frame:
                # Second object first, so the main noun is drawn on top if they ever touch.
                for noun, obj_x, obj_y, radii in reversed(objects):
                    noun_def = DEMO_NOUNS[noun]
                    distance = _signed_distance(noun_def.shape, xs - obj_x[t], ys - obj_y[t], radii[t])
                    alpha = np.clip(0.5 - distance, 0.0, 1.0)[:, :, None]
                    image = image * (1.0 - alpha) + np.asarray(noun_def.color, dtype=np.float64) * alpha
            image += rng.normal(0.0, _BACKGROUND_NOISE, size=image.shape)
            frames[frame_index] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return frames


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


def _retrieval_rows(clips: list[_Clip], fps: float):
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


def _unique_captions(clips: list[_Clip]) -> list[_Clip]:
    """One clip per distinct caption text, the first in file order (how the EK-100 sentence CSVs are built)."""
    seen: dict[str, _Clip] = {}
    for clip in clips:
        seen.setdefault(clip.narration, clip)
    return list(seen.values())


def _sentence_rows(clips: list[_Clip], *, train: bool):
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
    folder: str, videos: list[list[_Clip]], *, split: str, seed: int, height: int, width: int, fps: float
) -> None:
    video_root = os.path.join(folder, VIDEO_DIR_NAME)
    for video_index, clips in enumerate(videos):
        # One generator per video, derived from (seed, split, video index): a video's pixels depend only on its own
        # clips, not on the order in which videos are rendered.
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, video_index])
        trailing_idle = int(rng.integers(0, round(_IDLE_GAP_SECONDS[1] * fps) + 1))
        frames = _render_video(rng, clips, clips[-1].stop_frame + trailing_idle, height, width)
        participant_dir = os.path.join(video_root, clips[0].participant_id)
        os.makedirs(participant_dir, exist_ok=True)
        # A keyframe every second keeps seeking to a clip cheap for decord / PyAV.
        write_video(
            os.path.join(participant_dir, f"{clips[0].video_id}.MP4"), frames, fps, gop_size=max(1, round(fps))
        )

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


_OWN_ENTRIES = frozenset(
    {MANIFEST_NAME, VIDEO_DIR_NAME, TRAIN_CSV_NAME, TEST_CSV_NAME, TRAIN_SENTENCE_CSV_NAME, TEST_SENTENCE_CSV_NAME}
)


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

    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    # The temporary folder sits next to root (same file system), so the final os.replace is an atomic rename: an
    # interrupted run leaves at most a hidden ".<name>.tmp-*" folder, never a root that looks complete.
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(root)}.tmp-", dir=parent)
    give_default_permissions(staging)  # mkdtemp's 0700 would carry over to root
    try:
        rng = np.random.default_rng(seed)
        next_video_number = [1] * num_participants
        for split, num_clips in (("train", num_train), ("test", num_test)):
            video_ids = _video_ids(math.ceil(num_clips / clips_per_video), num_participants, next_video_number)
            videos = _plan_split(
                rng,
                num_clips,
                fps=fps,
                clip_seconds=clip_seconds,
                clips_per_video=clips_per_video,
                video_ids=video_ids,
            )
            _write_split(staging, videos, split=split, seed=seed, height=height, width=width, fps=fps)

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

        if not overwrite and _is_complete(root, parameters):
            # Another process finished the same dataset while this one was generating: keep theirs.
            return _paths(root)
        if os.path.lexists(root):
            # os.replace cannot rename onto a non-empty folder: move the old one aside first, then delete it.
            _check_replaceable(root)
            retired = staging + ".old"
            os.replace(root, retired)
            os.replace(staging, root)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, root)
    finally:
        # Only still there on failure (or when another process won the race).
        shutil.rmtree(staging, ignore_errors=True)
    return _paths(root)


__all__ = [
    "DEMO_NOUNS",
    "DEMO_VERBS",
    "DemoPaths",
    "GENERATOR_VERSION",
    "RETRIEVAL_COLUMNS",
    "TEST_SENTENCE_COLUMNS",
    "TRAIN_SENTENCE_COLUMNS",
    "format_timestamp",
    "make_demo_dataset",
]
