"""EPIC-Kitchens-100 multi-instance retrieval (MIR) relevancy: the soft labels of docs/relevancy.md.

For a clip ``i`` and a caption ``p``::

    R[i, p] = 0.5 * [verb_class(i) == verb_class(p)] + 0.5 * |nouns(i) & nouns(p)| / |nouns(i) | nouns(p)|

where ``nouns`` are the ``all_noun_classes`` sets. A caption is a row of the sentence CSV; its classes are those of
the retrieval-CSV row with the **same narration_id** (never matched by text: the last rows of the official test
sentence CSV have texts shifted against their ids).

What this module provides:

* :func:`read_retrieval_csv` / :func:`read_sentence_csv` read the official annotation files.
* :func:`build_relevancy` builds ``R`` (float32, ``(num_clips, num_sentences)``) from them, vectorised: identical
  (verb, noun set) pairs are merged first, noun intersections come from a 0/1 matrix product, and unions from
  ``|a| + |b| - |a & b|``.
* :func:`load_relevancy_pickle` reads the official ``caption_relevancy_EPIC_100_retrieval_{train,test}.pkl``
  through a restricted unpickler that only resolves the numpy (and pandas) reconstruction globals such a file
  needs, so that a tampered file cannot run code.
* :func:`positive_sentences` lists, per clip, the sentences with ``R > threshold`` (EgoVLP hard mining).
"""

from __future__ import annotations

import ast
import importlib
import io
import os
import pickle
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..utils.files import read_text_csv


RETRIEVAL_REQUIRED_COLUMNS = ("narration_id", "verb_class", "all_noun_classes")
"""Columns of EPIC_100_retrieval_{train,test}.csv that :func:`build_relevancy` needs."""

SENTENCE_REQUIRED_COLUMNS = ("narration_id", "narration")
"""Columns every EPIC_100_retrieval_*_sentence.csv has."""

POSITIVE_THRESHOLD = 0.1
"""EgoVLP / AVION hard mining: a sentence is a training positive of a clip when ``R > 0.1``."""

# Rows processed at once when expanding or scanning big matrices (the train split is 67k clips): bounds the
# temporaries to a few tens of MB without costing speed.
_ROW_CHUNK = 2048

_INT_COLUMNS = ("uid", "verb_class", "noun_class", "start_frame", "stop_frame")


# ---------------------------------------------------------------------------------------------------------------
# CSV readers
# ---------------------------------------------------------------------------------------------------------------


def _parse_literal_list(text: str, *, column: str, narration_id: str, path, item_type: type) -> list:
    """Parse one Python-literal list cell (``"[2, 11]"``, ``"['plate', 'tap']"``) safely.

    ``ast.literal_eval`` only accepts literals, so a malformed or malicious cell cannot run code.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as error:
        raise ValueError(
            f"{path}: column {column!r} of narration_id {narration_id!r} is not a Python-literal list: {text!r}"
        ) from error
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, item_type) for item in value):
        raise ValueError(
            f"{path}: column {column!r} of narration_id {narration_id!r} must be a list of {item_type.__name__}, "
            f"got {text!r}"
        )
    return list(value)


def _check_columns(frame: pd.DataFrame, required, what: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {missing}; it has {list(frame.columns)}")


def _check_unique_ids(frame: pd.DataFrame, what: str) -> None:
    duplicated = frame["narration_id"][frame["narration_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"{what}: narration_id must be unique, {len(duplicated)} duplicate(s) such as "
            f"{duplicated.iloc[:5].tolist()}"
        )


def _to_int_column(frame: pd.DataFrame, column: str, path) -> None:
    try:
        frame[column] = frame[column].astype(np.int64)
    except ValueError as error:
        raise ValueError(f"{path}: column {column!r} must hold integers ({error})") from error


def _parse_list_column(frame: pd.DataFrame, column: str, path, item_type: type) -> None:
    frame[column] = pd.Series(
        [
            _parse_literal_list(text, column=column, narration_id=nid, path=path, item_type=item_type)
            for text, nid in zip(frame[column], frame["narration_id"])
        ],
        index=frame.index,
        dtype=object,
    )


def read_retrieval_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``EPIC_100_retrieval_{train,test}.csv``.

    Args:
        path: the CSV file. Copies with a leading ``uid`` column (named ``uid`` or left unnamed) are accepted; the
            column is kept as ``uid``.

    Returns:
        A DataFrame with one row per clip, in file order, with the file's columns. ``verb_class``, ``noun_class``,
        ``start_frame``, ``stop_frame`` (and ``uid``) are int64; ``all_noun_classes`` holds lists of int and
        ``all_nouns`` lists of str (both parsed with ``ast.literal_eval``); the others are strings.

    Raises:
        ValueError: a required column (``narration_id``, ``verb_class``, ``all_noun_classes``) is missing, a cell
            does not parse, or a narration_id appears twice.
    """
    frame = read_text_csv(path, "retrieval CSV")
    first = frame.columns[0]
    if first == "" or first.startswith("Unnamed:"):
        frame = frame.rename(columns={first: "uid"})
    _check_columns(frame, RETRIEVAL_REQUIRED_COLUMNS, f"retrieval CSV {path}")
    _check_unique_ids(frame, f"retrieval CSV {path}")
    for column in _INT_COLUMNS:
        if column in frame.columns:
            _to_int_column(frame, column, path)
    _parse_list_column(frame, "all_noun_classes", path, int)
    if "all_nouns" in frame.columns:
        _parse_list_column(frame, "all_nouns", path, str)
    return frame


def read_sentence_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``EPIC_100_retrieval_{train,test}_sentence.csv``.

    Args:
        path: the CSV file (``narration_id, narration``; the train file adds ``verb_class, noun_classes, verb,
            nouns``).

    Returns:
        A DataFrame with one row per caption, in file order (the column order of the relevancy matrix).
        ``verb_class`` (if present) is int64, ``noun_classes`` / ``nouns`` (if present) hold lists of int / str.

    Raises:
        ValueError: ``narration_id`` or ``narration`` is missing, a cell does not parse, or a narration_id appears
            twice.
    """
    frame = read_text_csv(path, "sentence CSV")
    _check_columns(frame, SENTENCE_REQUIRED_COLUMNS, f"sentence CSV {path}")
    _check_unique_ids(frame, f"sentence CSV {path}")
    if "verb_class" in frame.columns:
        _to_int_column(frame, "verb_class", path)
    if "noun_classes" in frame.columns:
        _parse_list_column(frame, "noun_classes", path, int)
    if "nouns" in frame.columns:
        _parse_list_column(frame, "nouns", path, str)
    return frame


# ---------------------------------------------------------------------------------------------------------------
# Relevancy matrix
# ---------------------------------------------------------------------------------------------------------------


def _clip_keys(retrieval_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Merge clips with the same (verb class, noun-class set).

    Returns ``key_of_clip`` (num_clips,), the verb of each key and the sorted noun classes of each key. EK-100 has
    far fewer distinct keys than clips, so the pairwise work is done on keys only.
    """
    key_ids: dict[tuple[int, tuple[int, ...]], int] = {}
    key_of_clip = np.empty(len(retrieval_df), dtype=np.int64)
    for row, (verb, nouns) in enumerate(zip(retrieval_df["verb_class"], retrieval_df["all_noun_classes"])):
        if isinstance(nouns, str):  # a DataFrame that did not come through read_retrieval_csv
            nouns = ast.literal_eval(nouns)
        key = (int(verb), tuple(sorted(set(int(noun) for noun in nouns))))
        key_of_clip[row] = key_ids.setdefault(key, len(key_ids))
    keys = list(key_ids)
    verbs = np.array([verb for verb, _ in keys], dtype=np.int64)
    nouns = [noun_set for _, noun_set in keys]
    return key_of_clip, verbs, nouns


def _noun_indicator(noun_sets: list[tuple[int, ...]], num_nouns: int) -> np.ndarray:
    """(num_sets, num_nouns) float32 0/1 matrix; a product of two of these counts shared nouns exactly."""
    indicator = np.zeros((len(noun_sets), num_nouns), dtype=np.float32)
    rows = np.repeat(np.arange(len(noun_sets)), [len(nouns) for nouns in noun_sets])
    cols = np.fromiter((noun for nouns in noun_sets for noun in nouns), dtype=np.int64, count=len(rows))
    indicator[rows, cols] = 1.0
    return indicator


def _key_relevancy(verbs: np.ndarray, indicator: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Relevancy between every key and the keys ``columns``: float32 (num_keys, len(columns)).

    Computed in float64 and rounded once to float32, so each entry equals ``float32(0.5 * v + 0.5 * i / u)``
    evaluated in Python. Empty noun sets on both sides (union 0) give a noun term of 0.
    """
    sizes = indicator.sum(axis=1, dtype=np.float64)
    column_indicator = indicator[columns]
    out = np.empty((len(verbs), len(columns)), dtype=np.float32)
    for start in range(0, len(verbs), _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, len(verbs))
        # Counts are small integers, exact in float32 accumulation.
        intersection = (indicator[start:stop] @ column_indicator.T).astype(np.float64)
        union = sizes[start:stop, None] + sizes[columns][None, :] - intersection
        jaccard = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
        same_verb = (verbs[start:stop, None] == verbs[columns][None, :]).astype(np.float64)
        out[start:stop] = 0.5 * same_verb + 0.5 * jaccard
    return out


def build_relevancy(retrieval_df: pd.DataFrame, sentence_df: pd.DataFrame) -> np.ndarray:
    """Build the EK-100 MIR relevancy matrix of docs/relevancy.md.

    Args:
        retrieval_df: clips, as returned by :func:`read_retrieval_csv` (needs ``narration_id``, ``verb_class``,
            ``all_noun_classes``). Row order = row order of the result.
        sentence_df: captions, as returned by :func:`read_sentence_csv` (needs ``narration_id``). Row order =
            column order of the result. Each caption takes the classes of the ``retrieval_df`` row with its
            narration_id; its text is not used.

    Returns:
        float32 array ``R`` of shape ``(len(retrieval_df), len(sentence_df))`` with values in ``[0, 1]``.
        ``R[i, p] == 1`` exactly when clip ``i`` and caption ``p`` share the verb class and the noun-class set.
        A pair whose noun sets are both empty gets a noun term of 0 (EK-100 has no such clip).

    Raises:
        ValueError: a required column is missing, or a sentence's narration_id is not in ``retrieval_df``.
    """
    _check_columns(retrieval_df, RETRIEVAL_REQUIRED_COLUMNS, "retrieval_df")
    _check_columns(sentence_df, ("narration_id",), "sentence_df")
    clip_index = pd.Index(retrieval_df["narration_id"].astype(str))
    if not clip_index.is_unique:
        raise ValueError("retrieval_df: narration_id must be unique")
    sentence_ids = sentence_df["narration_id"].astype(str)
    sentence_rows = clip_index.get_indexer(sentence_ids)
    missing = sentence_ids[sentence_rows < 0]
    if len(missing):
        raise ValueError(
            f"{len(missing)} sentence narration_id(s) are not in the retrieval CSV, e.g. {missing.iloc[:10].tolist()}"
        )

    key_of_clip, verbs, noun_sets = _clip_keys(retrieval_df)
    all_nouns = [noun for nouns in noun_sets for noun in nouns]
    if all_nouns and min(all_nouns) < 0:
        raise ValueError(f"all_noun_classes must be non-negative class ids, got {min(all_nouns)}")
    indicator = _noun_indicator(noun_sets, (max(all_nouns) + 1) if all_nouns else 1)

    # Relevancy between every clip key and the distinct keys of the captions, then expanded to clips x captions.
    key_of_sentence = key_of_clip[sentence_rows]
    sentence_keys, column_of_sentence = np.unique(key_of_sentence, return_inverse=True)
    key_matrix = _key_relevancy(verbs, indicator, sentence_keys)

    relevancy = np.empty((len(key_of_clip), len(key_of_sentence)), dtype=np.float32)
    for start in range(0, len(key_of_clip), _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, len(key_of_clip))
        relevancy[start:stop] = key_matrix[np.ix_(key_of_clip[start:stop], column_of_sentence.ravel())]
    return relevancy


# ---------------------------------------------------------------------------------------------------------------
# Official pickled matrices, loaded without arbitrary code execution
# ---------------------------------------------------------------------------------------------------------------

# (module, name) a pickle may reference -> the (module, name) candidates to import for it, first found wins.
_NUMPY_GLOBALS = {
    ("numpy", "ndarray"): (("numpy", "ndarray"),),
    ("numpy", "dtype"): (("numpy", "dtype"),),
    # protocols 0-2 store bytes as _codecs.encode(text, "latin1"): a pure text -> bytes conversion
    ("_codecs", "encode"): (("_codecs", "encode"),),
}
# Array reconstruction (_frombuffer: protocol 5). Old pickles name numpy.core.*, numpy >= 2 moved it to
# numpy._core.*; both spellings resolve to whichever exists, without touching numpy.core's deprecation shim.
for _module, _name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")):
    for _core in ("core", "_core"):
        _NUMPY_GLOBALS[(f"numpy.{_core}.{_module}", _name)] = (
            (f"numpy._core.{_module}", _name),
            (f"numpy.core.{_module}", _name),
        )

# A DataFrame of floats with a default or plain index (what pandas writes for pd.DataFrame(array)).
_PANDAS_GLOBALS = {
    ("pandas", "DataFrame"): (("pandas", "DataFrame"),),
    ("pandas.core.frame", "DataFrame"): (("pandas", "DataFrame"),),
    ("pandas", "RangeIndex"): (("pandas", "RangeIndex"),),
    ("pandas.core.indexes.range", "RangeIndex"): (("pandas", "RangeIndex"),),
    ("pandas", "Index"): (("pandas", "Index"),),
    ("pandas.core.indexes.base", "Index"): (("pandas", "Index"),),
    ("pandas.core.indexes.base", "_new_Index"): (("pandas.core.indexes.base", "_new_Index"),),
    ("pandas.core.internals.managers", "BlockManager"): (("pandas.core.internals.managers", "BlockManager"),),
    ("pandas._libs.internals", "_unpickle_block"): (("pandas._libs.internals", "_unpickle_block"),),
    # block placements are pickled as slices
    ("builtins", "slice"): (("builtins", "slice"),),
    ("__builtin__", "slice"): (("builtins", "slice"),),
}

ALLOWED_PICKLE_GLOBALS = frozenset(_NUMPY_GLOBALS) | frozenset(_PANDAS_GLOBALS)
"""The ``(module, name)`` globals :func:`load_relevancy_pickle` resolves; any other one is refused."""


class PickleFileError(pickle.UnpicklingError, ValueError):
    """A pickle file that cannot be loaded safely, or at all; the message names the file. It is a ValueError too, so a
    script reports it as a user's mistake in one line."""


class RestrictedRelevancyUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the numpy / pandas globals needed to rebuild a numeric array or DataFrame.

    ``pickle`` runs whatever callable a file names (``os.system``, ``builtins.eval``, ...) while loading. Overriding
    :meth:`find_class` is the hook the standard library documents for restricting that: every global the file
    references goes through it, so anything outside :data:`ALLOWED_PICKLE_GLOBALS` raises
    ``pickle.UnpicklingError`` before it is called. Other numeric pickles (e.g. the EgoClip clip lists of
    ``data/egoclip.py``) reuse it through a subclass that names their file kind in :attr:`what`.
    """

    what = "relevancy pickle"
    """The kind of file, as error messages name it."""

    @classmethod
    def load_file(cls, path: str | os.PathLike):
        """The object pickled in `path`.

        Raises:
            PickleFileError: a forbidden global, or bytes that are no pickle (any error unpickling them raises: a
                truncated or foreign file fails in many ways), naming the kind of file and its path.
        """
        with open(path, "rb") as handle:
            data = handle.read()
        try:
            return cls(io.BytesIO(data)).load()
        except Exception as error:
            raise PickleFileError(f"{cls.what} {os.fspath(path)} cannot be loaded: {error}") from error

    def find_class(self, module: str, name: str):
        candidates = _NUMPY_GLOBALS.get((module, name)) or _PANDAS_GLOBALS.get((module, name))
        if candidates is None:
            raise pickle.UnpicklingError(
                f"forbidden global {module}.{name}: only numpy array / pandas DataFrame reconstruction is allowed"
            )
        for candidate_module, candidate_name in candidates:
            try:
                return getattr(importlib.import_module(candidate_module), candidate_name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot resolve {module}.{name} with the installed numpy / pandas")


def load_relevancy_pickle(path: str | os.PathLike, dtype=np.float32) -> np.ndarray:
    """Load an official ``caption_relevancy_EPIC_100_retrieval_{train,test}.pkl`` safely.

    The file is a pickled 2-D float array (some copies pickle a pandas DataFrame of it). It is read through
    :class:`RestrictedRelevancyUnpickler`, so a file that references any other global (e.g. one crafted to call
    ``os.system``) is refused before anything runs.

    Args:
        path: the ``.pkl`` file.
        dtype: dtype of the returned array (float32 by default, like :func:`build_relevancy`; pass ``None`` to
            keep the stored dtype).

    Returns:
        ``(num_clips, num_sentences)`` numpy array.

    Raises:
        PickleFileError: the file references a global outside :data:`ALLOWED_PICKLE_GLOBALS`, or is no pickle.
        ValueError: the unpickled object is not a 2-D real-valued array / DataFrame.
    """
    value = RestrictedRelevancyUnpickler.load_file(path)
    if isinstance(value, pd.DataFrame):
        value = value.to_numpy()
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{path}: expected a pickled numpy array or DataFrame, got {type(value).__name__}")
    if value.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D (num_clips, num_sentences) matrix, got shape {value.shape}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise ValueError(f"{path}: expected a real-valued matrix, got dtype {value.dtype}")
    # Checked once here, where the file enters, so that the losses need not read relevancies on every training step.
    for start in range(0, value.shape[0], _ROW_CHUNK):  # row chunks: no boolean copy of the whole train matrix
        rows = value[start : start + _ROW_CHUNK]
        outside = ~((rows >= 0) & (rows <= 1))  # NaN is outside too
        if outside.any():
            row, column = np.argwhere(outside)[0]
            raise ValueError(
                f"{path}: relevancy values must lie in [0, 1], got {rows[row, column]} at row {start + row}, column "
                f"{column}"
            )
    return value if dtype is None else value.astype(dtype, copy=False)


# ---------------------------------------------------------------------------------------------------------------
# Hard-mining positives
# ---------------------------------------------------------------------------------------------------------------


class PositiveSentences(NamedTuple):
    """Per-clip positive sentences in CSR layout: clip ``i``'s are ``indices[indptr[i]:indptr[i + 1]]``."""

    indptr: np.ndarray
    """int64 ``(num_clips + 1,)`` offsets into ``indices``."""
    indices: np.ndarray
    """int64 sentence (column) indices, ascending within each clip."""

    def sentences_of(self, clip: int) -> np.ndarray:
        """Positive sentence indices of one clip."""
        return self.indices[self.indptr[clip] : self.indptr[clip + 1]]

    def counts(self) -> np.ndarray:
        """Number of positives of every clip."""
        return np.diff(self.indptr)


def positive_sentences(relevancy, threshold: float = POSITIVE_THRESHOLD) -> PositiveSentences:
    """Sentences with ``R > threshold`` for every clip (EgoVLP hard mining draws the positive among these).

    Args:
        relevancy: ``(num_clips, num_sentences)`` array (numpy, or anything ``np.asarray`` accepts).
        threshold: strict lower bound on the relevancy of a positive (0.1 in EgoVLP / AVION / EVA02-AT).

    Returns:
        :class:`PositiveSentences` (CSR-like ``indptr``, ``indices``).

    Raises:
        ValueError: ``relevancy`` is not 2-D, or some clips have no sentence above the threshold (their indices
            are listed; a clip's own caption has ``R = 1``, so this means mismatched annotation files).
    """
    relevancy = np.asarray(relevancy)
    if relevancy.ndim != 2:
        raise ValueError(f"relevancy must be a (num_clips, num_sentences) matrix, got shape {relevancy.shape}")
    counts = np.zeros(relevancy.shape[0], dtype=np.int64)
    chunks = []
    # Row chunks: a boolean copy of the full train matrix (67k x 16k) would take 1 GB.
    for start in range(0, relevancy.shape[0], _ROW_CHUNK):
        rows, cols = np.nonzero(relevancy[start : start + _ROW_CHUNK] > threshold)
        counts[start : start + _ROW_CHUNK] = np.bincount(rows, minlength=min(_ROW_CHUNK, relevancy.shape[0] - start))
        chunks.append(cols.astype(np.int64, copy=False))
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        shown = ", ".join(str(i) for i in empty[:20]) + (", ..." if len(empty) > 20 else "")
        raise ValueError(f"{len(empty)} clip(s) have no sentence with relevancy > {threshold}: clip indices [{shown}]")
    indptr = np.zeros(relevancy.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return PositiveSentences(indptr=indptr, indices=indices)
