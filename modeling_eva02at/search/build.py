"""Building and querying a video index: incremental, resumable encoding of a source's clips, copies that travel with
their videos, and text queries.

Building is incremental and resumable. A source (`modeling_eva02at.search.sources`) plans the clips it wants; clips
already in the index (same file, size, mtime and times) are kept, the rest are encoded with
:func:`~modeling_eva02at.evaluation.encoding.encode_videos` one shard at a time (one batch per DataLoader worker), and
each shard is saved before the next starts (`modeling_eva02at.search.store`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from tqdm.auto import tqdm

from ..data.layouts import load_clip
from ..evaluation.encoding import EncodeSettings, encode_texts, encode_videos
from .sources import Clip, Ek100Clips, Skipped, VideoFolder
from .store import MAX_SHARD_CLIPS, Hit, VideoIndex, index_header, writable_index


logger = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What :func:`update_index` did. `seconds` is the time spent encoding the `encoded` clips."""

    index: str
    total: int
    encoded: int
    unchanged: int
    removed: int
    skipped: list[Skipped]
    seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.encoded / self.seconds if self.seconds > 0 else float("nan")


def _encode_shard(clips: list[Clip], model, processor, settings: EncodeSettings):
    """Embeddings of the readable clips: (kept clips, embeddings, skipped)."""
    quiet = replace(settings, progress=False)

    try:
        embeddings = encode_videos(
            model, processor, [c.path for c in clips], [c.start for c in clips], [c.end for c in clips], quiet
        )
        return clips, embeddings, []
    except (OSError, ValueError):  # FileNotFoundError, VideoDecodeError
        pass
    # A clip of this shard cannot be decoded: decode them one by one here to tell which, then encode the frames of
    # the others (an error that is not the decoder's is raised by this second encode).
    kept, frames, skipped = [], [], []
    for clip in clips:
        try:
            frames.append(load_clip(processor.image_processor, clip.path, clip.start, clip.end))
        except (OSError, ValueError) as error:
            logger.warning(f"skipping unreadable clip [{clip.start}, {clip.end}) s: {error}")
            skipped.append(Skipped(clip.path, str(error)))
            continue
        kept.append(clip)
    embeddings = encode_videos(model, processor, frames, settings=replace(quiet, num_workers=0)) if frames else None
    return kept, embeddings, skipped


def _merge_skipped(skipped: Sequence[Skipped]) -> list[Skipped]:
    """One entry per video: the first reason, the clips counted."""
    merged: dict[str, Skipped] = {}
    for entry in skipped:
        if entry.path in merged:
            previous = merged[entry.path]
            merged[entry.path] = Skipped(entry.path, previous.reason, previous.clips + entry.clips)
        else:
            merged[entry.path] = entry
    return list(merged.values())


def update_index(
    path: str,
    source: VideoFolder | Ek100Clips,
    model,
    processor,
    settings: EncodeSettings,
    *,
    model_id,
    shard_size: int | None = None,
) -> IndexReport:
    """Bring the index at `path` up to date with `source`: encode its new clips, drop the index's clips of its
    videos that changed or are gone, keep the rest (and every clip of other sources).

    Args:
        model / processor: from :func:`~modeling_eva02at.evaluation.encoding.load_model_for_inference`.
        settings: batch size, DataLoader workers (decoding), flip, device, autocast dtype, progress bar.
        model_id: the model's fingerprint (:func:`~modeling_eva02at.evaluation.fingerprint.model_fingerprint`),
            stored in the index and compared on every later update and query.
        shard_size: clips encoded and saved together (default: one batch per DataLoader worker); a kill loses at
            most the shard in flight.

    Unreadable videos are skipped with a warning and listed in the report's `skipped`; they are tried again by the
    next run.

    Raises:
        IndexMismatchError: the index was built with another model or settings.
    """
    shard_size = shard_size or settings.batch_size * max(1, settings.num_workers)
    header = index_header(processor, settings, model_id)
    with writable_index(path, header) as index:
        plan = source.plan(
            index.clips,
            video_backend=processor.image_processor.video_backend,
            num_workers=settings.num_workers,
            progress=settings.progress,
        )
        wanted = {clip.identity for clip in plan.clips}
        # Clips of this source's videos that it no longer plans: the file changed, was deleted or is cut otherwise.
        keep = [not source.owns(clip.path) or clip.identity in wanted for clip in index.clips]
        removed = keep.count(False)
        if removed:
            logger.info(f"removing {removed} clips of changed or deleted videos from {path}")
            index.keep(keep)
        indexed = {clip.identity for clip in index.clips}
        todo = list({clip.identity: clip for clip in plan.clips if clip.identity not in indexed}.values())

        skipped, encoded, started = list(plan.skipped), 0, time.perf_counter()
        with tqdm(total=len(todo), desc="Indexing", unit="clip", disable=not settings.progress) as bar:
            for first in range(0, len(todo), shard_size):
                kept, embeddings, failed = _encode_shard(todo[first : first + shard_size], model, processor, settings)
                if kept:
                    index.add(kept, embeddings)
                skipped += failed
                encoded += len(kept)
                bar.update(len(kept) + len(failed))
        seconds = time.perf_counter() - started
        if len(index.shards) > 1:  # one file per run (or per MAX_SHARD_CLIPS) keeps loading fast
            index.keep([True] * len(index))
        return IndexReport(
            path, len(index), encoded, len(plan.clips) - len(todo), removed, _merge_skipped(skipped), seconds
        )


def copy_index_with_videos(index: VideoIndex, output: str, video_folder: str) -> list[str]:
    """Copy `index` to the new folder `output`, and each video it holds into `video_folder`, the copy's clips naming
    their videos relative to `output`: the two folders can then move together (to a Space, another machine) and the
    copy stays searchable, its hits pointing at the copied videos. Videos keep their layout under their common folder.

    Returns:
        The copied videos' paths, sorted.

    Raises:
        FileExistsError: `output` or `video_folder` exists and is not empty.
        FileNotFoundError: a video of the index is gone (it could not be shown in a search result).
    """
    import shutil

    for folder in (output, video_folder):
        if os.path.isdir(folder) and os.listdir(folder):
            raise FileExistsError(f"{folder} is not empty: give a new folder for the copy")
    sources = sorted({clip.path for clip in index.clips})
    missing = [path for path in sources if not os.path.exists(path)]
    if missing:
        raise FileNotFoundError(
            f"the index {index.path} holds clips of {len(missing)} videos that are gone (first: "
            f"{missing[0]}): update it with `index_videos.py` first"
        )
    root = os.path.commonpath(sources) if len(sources) > 1 else os.path.dirname(sources[0]) if sources else ""
    copies = {}
    for path in tqdm(sources, desc="Copying videos", disable=len(sources) < 20):
        target = os.path.join(video_folder, os.path.relpath(path, root))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(path):  # an AVION chunk folder
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)  # keeps the modification time, part of a clip's identity
        copies[path] = target
    output = os.path.abspath(output)
    clips = [replace(clip, path=os.path.relpath(copies[clip.path], output)) for clip in index.clips]
    embeddings = index.embeddings
    copy = VideoIndex.create(output, index.header)
    for start in range(0, len(clips), MAX_SHARD_CLIPS):
        copy.add(clips[start : start + MAX_SHARD_CLIPS], embeddings[start : start + MAX_SHARD_CLIPS])
    return sorted(copies.values())


def search_index(
    index: VideoIndex, model, processor, texts: Sequence[str], *, model_id, top_k: int = 5
) -> list[list[Hit]]:
    """The `top_k` clips of `index` for each text, encoded on the model's device; refuses a model other than the
    index's (`model_id`, a model fingerprint)."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts or any(not str(text).strip() for text in texts):
        raise ValueError(f"queries must be non-empty texts, got {list(texts)!r}")
    index.check_model(model_id)
    text_embeddings = encode_texts(model, processor, list(texts), EncodeSettings(device=model.device, progress=False))
    return index.search(text_embeddings, top_k)


__all__ = ["IndexReport", "copy_index_with_videos", "search_index", "update_index"]
