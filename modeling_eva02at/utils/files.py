"""File helpers: one way to report missing inputs, and one way each to write a file or a folder that is never seen
half-written."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator


def missing_paths(paths: Iterable[str], limit: int = 10) -> list[str]:
    """The first `limit` of `paths` (duplicates skipped) that do not exist."""
    missing = []
    for path in dict.fromkeys(paths):
        if not os.path.exists(path):
            missing.append(path)
            if len(missing) >= limit:
                break
    return missing


def require_paths(paths: Iterable[str], what: str, where: str) -> None:
    """Raise `FileNotFoundError` listing the first missing ones of `paths`, e.g. "videos missing under /data"."""
    missing = missing_paths(paths)
    if missing:
        raise FileNotFoundError(f"{what} missing under {where} (first {len(missing)}):\n  " + "\n  ".join(missing))


def give_default_permissions(path: str) -> None:
    """Give `path` the permissions a plain `open(path, "w")` or `os.mkdir(path)` would have: `tempfile` makes its
    files 0600 and its folders 0700, which would otherwise carry over to what is moved into place."""
    umask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_path(path: str, prefix: str = ".tmp-") -> Iterator[str]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one `os.replace`, on error it is
    removed. Readers therefore see the old file or the complete new one, never a truncated one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=os.path.splitext(path)[1], dir=directory)
    os.close(handle)
    try:
        yield temporary
        if os.path.exists(temporary):  # a writer may have replaced it with its own file (or a folder)
            give_default_permissions(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


@contextlib.contextmanager
def staged_folder(output_dir: str, *, keep_existing: Callable[[], bool] | None = None) -> Iterator[str]:
    """Yield a new folder beside `output_dir` to build in. When the block ends without an error the folder replaces
    `output_dir` (two renames: a reader sees the old folder or the new one, never a half-written one); on an error it
    is deleted and `output_dir` is left as it was.

    Args:
        keep_existing: called when the block has ended; True keeps `output_dir` as it is and deletes the new folder
            (e.g. another process has finished the same folder meanwhile).
    """
    parent = os.path.dirname(os.path.abspath(output_dir))
    created = _make_folders(parent)
    # Beside output_dir, on the same file system, so that moving it into place is a rename.
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-", dir=parent)
    give_default_permissions(staging)  # mkdtemp's 0700 would carry over to output_dir
    try:
        yield staging
        if keep_existing is None or not keep_existing():
            _swap_in(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(created):  # the parents made for output_dir, innermost first, if still empty
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
        raise
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging)


def _make_folders(path: str) -> list[str]:
    """os.makedirs that returns the folders it created, outermost first."""
    missing = []
    while path and not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        os.mkdir(folder)
    return list(reversed(missing))


def _swap_in(staging: str, output_dir: str) -> None:
    if not os.path.lexists(output_dir):
        os.rename(staging, output_dir)
        return
    # os.rename cannot replace a non-empty folder: move the old one aside first, then delete it.
    retired = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.old-", dir=os.path.dirname(staging))
    os.rename(output_dir, os.path.join(retired, "folder"))
    os.rename(staging, output_dir)
    shutil.rmtree(retired)


def read_text(path: str | os.PathLike, what: str) -> str:
    """A UTF-8 text file's content.

    Raises:
        ValueError: the file is not UTF-8 text (a binary or foreign file given by mistake), naming `what` and the file.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} {path} is not a UTF-8 text file: {error}") from error


def read_text_csv(path: str | os.PathLike, what: str):
    """A CSV file as a pandas DataFrame of strings: no type or NaN guessing (a narration such as "nan" stays text, an
    empty cell is ""), so callers convert their numeric and list columns themselves and name a malformed cell's column.

    Raises:
        ValueError: the file does not parse as CSV (ragged rows, not text, empty), naming `what` and the file.
    """
    import pandas as pd

    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} {path} is not a readable CSV file: {error}") from error


def _json_ready(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def write_json(path: str, data: dict) -> None:
    """Write `data` as indented JSON, atomically (NaN and infinities written as null)."""
    with atomic_path(path, prefix=".json-") as temporary, open(temporary, "w") as file:
        json.dump(_json_ready(data), file, indent=2, default=str)
        file.write("\n")


__all__ = [
    "atomic_path",
    "give_default_permissions",
    "missing_paths",
    "read_text",
    "read_text_csv",
    "require_paths",
    "staged_folder",
    "write_json",
]
