"""Bad rows of annotation files: one setting for what to do with them, one way to report them.

A row is bad when it cannot make a clip: a missing or malformed field, a missing video, or a video that cannot be
decoded. Bad input is never turned into a zero or black clip: with ``on_bad_row="raise"`` (the default) the first bad
rows are named in the error; with ``"skip"`` they are dropped and counted in the log.
"""

from __future__ import annotations

import logging
from collections import Counter


logger = logging.getLogger(__name__)

BAD_ROW_SETTINGS = ("raise", "skip")
"""The values of every `on_bad_row` argument (and of the training scripts' ``--on-bad-row``)."""


class BadClipError(ValueError):
    """A clip that cannot be loaded (missing video or chunk, undecodable, shorter than the clip), naming its
    annotation file and line."""


def check_bad_row_setting(on_bad_row: str) -> str:
    if on_bad_row not in BAD_ROW_SETTINGS:
        raise ValueError(f"on_bad_row must be one of {', '.join(BAD_ROW_SETTINGS)}, got {on_bad_row!r}")
    return on_bad_row


def report_bad_rows(path: str, bad: dict[str, list], on_bad_row: str, skipped: Counter) -> None:
    """Raise naming the first bad rows per reason, or count them in `skipped` and log them (the caller drops them).

    Args:
        path: the annotation file, named in the message.
        bad: reason -> the rows (or lines) that have it; empty lists are ignored.
    """
    bad = {reason: rows for reason, rows in bad.items() if rows}
    if not bad:
        return
    details = "; ".join(
        f"{len(rows)} with {reason} (first: {', '.join(map(str, rows[:3]))})" for reason, rows in bad.items()
    )
    if on_bad_row == "raise":
        raise ValueError(
            f"{path}: bad rows: {details}. Fix the file, or pass on_bad_row='skip' (--on-bad-row skip) to skip them"
        )
    for reason, rows in bad.items():
        skipped[reason] += len(rows)
    logger.warning(f"{path}: skipped {sum(len(rows) for rows in bad.values())} bad rows: {details}")


__all__ = ["BAD_ROW_SETTINGS", "BadClipError", "check_bad_row_setting", "report_bad_rows"]
