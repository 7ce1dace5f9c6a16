"""The scenes of the demo datasets: motion verbs, object nouns, clips planned into videos, and their rendering.

Every demo set (EK-100 MIR, EgoClip, Charades-Ego) shows the same world: coloured shapes (the nouns, recognisable from
any one frame) moving left, right, up or down, or growing or shrinking (the verbs, which only the change over frames
tells apart). A trajectory is centred on a random point, so the middle frame looks the same whatever the direction.
See docs/demo.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


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
IDLE_GAP_SECONDS = (0.0, 0.5)  # object-free frames between two clips of a video


# ---------------------------------------------------------------------------------------------------------------
# Annotations
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DemoClip:
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


def balanced_choices(rng: np.random.Generator, num_classes: int, count: int) -> np.ndarray:
    """`count` class ids where every class appears floor or ceil of count / num_classes times, in random order."""
    repeats = np.tile(np.arange(num_classes), math.ceil(count / num_classes))
    # The partial last cycle is drawn at random so that the surplus does not always go to the first classes.
    tail = count - (len(repeats) - num_classes)
    choices = np.concatenate([repeats[: len(repeats) - num_classes], rng.permutation(num_classes)[:tail]])
    return rng.permutation(choices)


def plan_videos(
    rng: np.random.Generator,
    num_clips: int,
    *,
    fps: float,
    clip_seconds: float,
    clips_per_video: int,
    video_ids: list[tuple[str, str]],
) -> list[list[DemoClip]]:
    """Draw the annotations of one split: a list of videos, each a list of clips in time order."""
    verbs = balanced_choices(rng, len(DEMO_VERBS), num_clips)
    nouns = balanced_choices(rng, len(DEMO_NOUNS), num_clips)
    has_second = rng.random(num_clips) < TWO_OBJECT_FRACTION
    # Clip lengths vary around clip_seconds as EK-100 segments do, so loaders cannot assume a fixed length.
    mean_frames = max(4, round(clip_seconds * fps))
    low, high = max(4, round(0.75 * mean_frames)), max(4, round(1.25 * mean_frames))
    gap_low, gap_high = (round(seconds * fps) for seconds in IDLE_GAP_SECONDS)

    videos: list[list[DemoClip]] = []
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
            DemoClip(
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


def ek100_video_ids(num_videos: int, num_participants: int, first_number: list[int]) -> list[tuple[str, str]]:
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


def trajectory(
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


def _clip_objects(rng: np.random.Generator, clip: DemoClip, height: int, width: int) -> list[tuple]:
    """(noun, xs, ys, radii) of every object in a clip; two objects move together without overlapping."""
    verb = DEMO_VERBS[clip.verb_class]
    num_frames = clip.stop_frame - clip.start_frame
    # Shared by both objects: "move cup and bowl left" moves them by the same amount.
    travel = rng.uniform(*_TRAVEL) * min(height, width)
    objects = [(clip.noun_classes[0], *trajectory(rng, verb, num_frames, height, width, travel))]
    for noun in clip.noun_classes[1:]:
        # Rejection sampling: keep the two shapes apart at all times (good enough after a few tries at 64x48;
        # the last draw is kept if none fits, a touching pair is still a valid clip).
        for _ in range(50):
            candidate = trajectory(rng, verb, num_frames, height, width, travel)
            xs, ys, radii = objects[0][1:]
            gap = np.hypot(candidate[0] - xs, candidate[1] - ys) - 1.1 * (candidate[2] + radii)
            if gap.min() > 1.0:
                break
        objects.append((noun, *candidate))
    return objects


def render_video(
    rng: np.random.Generator, clips: list[DemoClip], num_frames: int, height: int, width: int
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
