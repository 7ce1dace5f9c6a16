"""A small synthetic Charades-Ego set in the real file formats, for the fine-tuning demo and its tests
(docs/pretraining.md).

It reuses the EK-100 demo's renderer (:mod:`.scene`: moving coloured shapes whose verb is a motion) and writes:

* ``Charades_v1_classes.txt`` with 157 classes ``c000 Move a cup left``, as the real file has 157: first every demo
  verb x noun combination, then the same verbs on objects that never appear, so that the metric's text side has the
  real size;
* ``CharadesEgo_v1_{train,test}_only1st.csv`` with every real column (id, subject, scene, quality, relevance,
  verified, script, objects, descriptions, actions, length, egocentric, charades_video), ``actions`` as
  ``"c000 0.38 2.50;c013 2.75 4.62"`` and, in each split, one video without any annotated action (empty
  ``actions``, as real rows can be);
* whole videos ``CharadesEgo_v1_480/<id>.mp4``, each showing one to three actions back to back;
* ``DEMO_DATA.json`` marking the CSVs and the class list as the demo's (``ek100.DEMO_DATA_MARKER``), so that evaluation
  reports and the Hub card tell demo numbers apart.

Only :data:`NUM_SHOWN_CLASSES` classes are shown; two objects appear in two classes each, with different motions,
so that telling those apart needs the frames' order and not only the colour.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..data.charades_ego import CHARADES_EGO_COLUMNS, CHARADES_NUM_CLASSES
from ..utils.video_writer import write_video
from .ek100 import parameters_manifest_matches, write_demo_marker, write_parameters_manifest
from .scene import DEMO_NOUNS, DEMO_VERBS, DemoClip, balanced_choices, render_video


CHARADES_DEMO_VERSION = 3
"""3: the demo-data marker next to the CSVs and the class list (`ek100.DEMO_DATA_MARKER`)."""
TRAIN_CSV_NAME = "CharadesEgo_v1_train_only1st.csv"
TEST_CSV_NAME = "CharadesEgo_v1_test_only1st.csv"
CLASSES_NAME = "Charades_v1_classes.txt"
VIDEO_DIR_NAME = "CharadesEgo_v1_480"
MANIFEST_NAME = "charades_ego_manifest.json"

NUM_SHOWN_CLASSES = 10
"""Classes that the demo videos show (the others are listed, never shown)."""

_UNSEEN_OBJECTS = (
    "towel",
    "book",
    "phone",
    "door",
    "shoe",
    "laptop",
    "pillow",
    "broom",
    "mirror",
    "blanket",
    "box",
    "chair",
    "table",
    "window",
    "sandwich",
    "medicine",
    "picture",
    "camera",
    "vacuum",
)
_SCENES = ("Kitchen", "Living room", "Bedroom", "Bathroom")


@dataclass(frozen=True)
class CharadesEgoDemoPaths:
    """Where :func:`make_charades_ego_demo` put everything (absolute paths)."""

    train_csv: str
    test_csv: str
    classes: str
    video_root: str


def class_name(verb: int, noun: str) -> str:
    """``Move a cup left``: the demo verb's caption on one object, capitalised like Charades' class names."""
    text = DEMO_VERBS[verb].template.format(nouns=f"a {noun}")
    return text[0].upper() + text[1:]


def demo_classes() -> tuple[list[str], list[int]]:
    """The 157 class names (class ``c{i:03d}`` is name ``i``) and the indices of the shown classes.

    Class ``verb * N + noun`` is a demo verb on a demo noun (N nouns); the rest are the verbs on unseen objects.
    Shown class ``i`` is verb ``i mod V`` on noun ``i mod N``: distinct while ``i`` stays below ``lcm(V, N)``, and
    with more shown classes than objects, some objects appear under two motions.
    """
    names = [class_name(verb, noun.key) for verb in range(len(DEMO_VERBS)) for noun in DEMO_NOUNS]
    names += [class_name(verb, obj) for obj in _UNSEEN_OBJECTS for verb in range(len(DEMO_VERBS))]
    if len(names) < CHARADES_NUM_CLASSES:
        raise ValueError(
            f"the demo verbs and objects give {len(names)} class names, fewer than Charades' {CHARADES_NUM_CLASSES}"
        )
    shown = [(i % len(DEMO_VERBS)) * len(DEMO_NOUNS) + i % len(DEMO_NOUNS) for i in range(NUM_SHOWN_CLASSES)]
    if len(set(shown)) != len(shown):
        raise ValueError(
            f"{NUM_SHOWN_CLASSES} shown classes repeat a (verb, noun) pair with {len(DEMO_VERBS)} verbs "
            f"and {len(DEMO_NOUNS)} nouns"
        )
    return names[:CHARADES_NUM_CLASSES], shown


def _plan_videos(rng, num_videos: int, shown: list[int], *, fps: float, clip_seconds: float, split: str) -> list:
    """Each video's id and clips: one to three shown actions (classes balanced over the split), idle gaps between
    them; the last video's single action is an unshown class and left out of ``actions`` (an unlabelled video)."""
    counts = rng.integers(1, 4, size=num_videos)
    draws = iter(balanced_choices(rng, len(shown), int(counts[:-1].sum())))  # the last video is unlabelled
    unshown = min(set(range(len(DEMO_VERBS) * len(DEMO_NOUNS))) - set(shown))
    low, high = round(0.75 * clip_seconds * fps), round(1.25 * clip_seconds * fps)
    videos = []
    for index, count in enumerate(counts):
        stem = f"{'T' if split == 'train' else 'V'}{index:04d}"  # the third-person video's id; "EGO" marks its pair
        labelled = index < num_videos - 1
        classes = [shown[next(draws)] for _ in range(count)] if labelled else [unshown]
        cursor, clips = int(rng.integers(0, fps // 2 + 1)), []
        for class_index in classes:
            verb, noun = divmod(class_index, len(DEMO_NOUNS))
            length = int(rng.integers(low, high + 1))
            clips.append(
                DemoClip(f"{stem}_{len(clips)}", f"DM{index % 4:02d}", stem, cursor, cursor + length, verb, (noun,))
            )
            cursor += length + int(rng.integers(1, fps // 2 + 1))
        videos.append({"stem": stem, "clips": clips, "classes": classes, "labelled": labelled, "num_frames": cursor})
    return videos


def _csv_row(video: dict, fps: float) -> list[str]:
    clips = video["clips"]
    actions = (
        ";".join(
            f"c{class_index:03d} {clip.start_frame / fps:.2f} {clip.stop_frame / fps:.2f}"
            for class_index, clip in zip(video["classes"], clips)
        )
        if video["labelled"]
        else ""
    )
    steps = [clip.narration for clip in clips]
    objects = sorted({DEMO_NOUNS[clip.noun_classes[0]].key for clip in clips})
    index = int(video["stem"][1:])
    return [
        f"{video['stem']}EGO",
        f"DM{index % 4:02d}",
        _SCENES[index % len(_SCENES)],
        "6",
        "7",
        "Yes",
        "A person will " + ", then ".join(steps) + ".",
        ";".join(objects),
        "Seen by the person: " + "; ".join(steps) + ".",
        actions,
        str(round(video["num_frames"] / fps)),
        "Yes",
        video["stem"],
    ]


def make_charades_ego_demo(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    num_train_videos: int = 48,
    num_test_videos: int = 24,
    width: int = 64,
    height: int = 48,
    fps: float = 8,
    clip_seconds: float = 2.0,
) -> CharadesEgoDemoPaths:
    """Generate (once per parameters) the demo of the module docstring into `root` and return its paths.

    Args:
        num_train_videos / num_test_videos: videos per split (each 1-3 actions; the last one unlabelled).
        width / height / fps / clip_seconds: as :func:`modeling_eva02at.demo.ek100.make_demo_dataset`.
    """
    root = os.path.abspath(os.fspath(root))
    parameters = {
        "version": CHARADES_DEMO_VERSION,
        "seed": seed,
        "num_train_videos": num_train_videos,
        "num_test_videos": num_test_videos,
        "width": width,
        "height": height,
        "fps": fps,
        "clip_seconds": clip_seconds,
    }
    paths = CharadesEgoDemoPaths(
        os.path.join(root, TRAIN_CSV_NAME),
        os.path.join(root, TEST_CSV_NAME),
        os.path.join(root, CLASSES_NAME),
        os.path.join(root, VIDEO_DIR_NAME),
    )
    manifest = os.path.join(root, MANIFEST_NAME)
    if parameters_manifest_matches(manifest, parameters):
        return paths
    if min(num_train_videos, num_test_videos) < 2:
        raise ValueError("each split needs at least 2 videos (one labelled, one unlabelled)")
    shutil.rmtree(paths.video_root, ignore_errors=True)
    os.makedirs(paths.video_root)

    names, shown = demo_classes()
    with open(paths.classes, "w", encoding="utf-8") as handle:
        handle.writelines(f"c{index:03d} {name}\n" for index, name in enumerate(names))
    rng = np.random.default_rng(seed)
    for split, num_videos, csv_path in (
        ("train", num_train_videos, paths.train_csv),
        ("test", num_test_videos, paths.test_csv),
    ):
        videos = _plan_videos(rng, num_videos, shown, fps=fps, clip_seconds=clip_seconds, split=split)
        for number, video in enumerate(tqdm(videos, desc=f"Rendering the demo's {split} videos", unit="video")):
            # a video's pixels depend only on (seed, split, its number)
            video_rng = np.random.default_rng([seed, 0 if split == "train" else 1, number])
            frames = render_video(video_rng, video["clips"], video["num_frames"], height, width)
            write_video(
                os.path.join(paths.video_root, f"{video['stem']}EGO.mp4"), frames, fps, gop_size=max(1, round(fps))
            )
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(CHARADES_EGO_COLUMNS)
            writer.writerows(_csv_row(video, fps) for video in videos)
    write_demo_marker(root, [TRAIN_CSV_NAME, TEST_CSV_NAME, CLASSES_NAME], __name__)
    write_parameters_manifest(manifest, parameters)
    return paths


__all__ = ["CharadesEgoDemoPaths", "NUM_SHOWN_CLASSES", "class_name", "demo_classes", "make_charades_ego_demo"]
