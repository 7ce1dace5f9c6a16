"""EK-100 MIR relevancy (docs/relevancy.md): CSV readers, the relevancy matrix, safe pickle loading, hard mining."""

import os
import pickle

import numpy as np
import pandas as pd
import pytest

from modeling_eva02at.data import relevancy as rel
from modeling_eva02at.data.relevancy import (
    build_relevancy,
    load_relevancy_pickle,
    positive_sentences,
    read_retrieval_csv,
    read_sentence_csv,
)


RETRIEVAL_HEADER = (
    "narration_id,participant_id,video_id,narration_timestamp,start_timestamp,stop_timestamp,start_frame,"
    "stop_frame,narration,verb,verb_class,noun,noun_class,all_nouns,all_noun_classes"
)


def retrieval_row(nid, verb_class, noun_classes, narration="do thing"):
    nouns = [f"n{c}" for c in noun_classes]
    return (
        f"{nid},P01,P01_01,00:00:01.00,00:00:01.00,00:00:02.00,60,120,{narration},do,{verb_class},n,"
        f'{noun_classes[0] if noun_classes else 0},"{nouns}","{list(noun_classes)}"'
    )


def write_retrieval(path, rows, prefix=None):
    lines = [RETRIEVAL_HEADER] + [retrieval_row(*row) for row in rows]
    if prefix is not None:  # a leading uid column, named or not
        lines = [f"{prefix}," + lines[0]] + [f"{i}," + line for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(lines) + "\n")
    return path


def direct_relevancy(clip, sentence_clip):
    """docs/relevancy.md for one pair, straight from the two retrieval rows."""
    a, b = set(clip["all_noun_classes"]), set(sentence_clip["all_noun_classes"])
    return 0.5 * (clip["verb_class"] == sentence_clip["verb_class"]) + 0.5 * len(a & b) / len(a | b)


@pytest.fixture(scope="module")
def ek100(data_dir):
    folder = os.path.join(data_dir, "ek100")
    clips = read_retrieval_csv(os.path.join(folder, "EPIC_100_retrieval_test.csv"))
    sentences = read_sentence_csv(os.path.join(folder, "EPIC_100_retrieval_test_sentence.csv"))
    return clips, sentences, build_relevancy(clips, sentences)


# ---------------------------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------------------------


def test_read_retrieval_csv_real_test_split(ek100):
    clips, _, _ = ek100
    assert len(clips) == 9668
    assert clips["narration_id"].is_unique
    first = clips.iloc[0]
    assert first["narration_id"] == "P01_11_0"
    assert first["verb_class"] == 0 and first["all_noun_classes"] == [2] and first["all_nouns"] == ["plate"]
    assert clips["verb_class"].dtype == np.int64 and clips["start_frame"].dtype == np.int64
    assert all(isinstance(x, list) and all(isinstance(c, int) for c in x) for x in clips["all_noun_classes"])
    assert clips["all_noun_classes"].map(len).max() > 1  # multi-noun clips are parsed as lists, not strings


@pytest.mark.parametrize("prefix", ["uid", ""])
def test_read_retrieval_csv_leading_uid_column(tmp_path, prefix):
    rows = [("A_0", 1, [2, 3]), ("A_1", 4, [5])]
    plain = read_retrieval_csv(write_retrieval(tmp_path / "plain.csv", rows))
    with_uid = read_retrieval_csv(write_retrieval(tmp_path / "uid.csv", rows, prefix=prefix))
    assert with_uid.columns[0] == "uid" and with_uid["uid"].tolist() == [0, 1]
    pd.testing.assert_frame_equal(with_uid.drop(columns="uid"), plain)


def test_read_retrieval_csv_parses_literals_without_eval(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.csv"
    path.write_text(
        RETRIEVAL_HEADER
        + "\n"
        + retrieval_row("A_0", 1, [2]).rsplit(",", 1)[0]
        + f",\"__import__('pathlib').Path('{marker}').touch()\"\n"
    )
    with pytest.raises(ValueError, match="all_noun_classes.*A_0"):
        read_retrieval_csv(path)
    assert not marker.exists()


def test_read_retrieval_csv_errors(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("narration_id,verb_class\nA_0,1\n")
    with pytest.raises(ValueError, match="all_noun_classes"):
        read_retrieval_csv(path)
    path = write_retrieval(tmp_path / "dup.csv", [("A_0", 1, [2]), ("A_0", 1, [3])])
    with pytest.raises(ValueError, match="duplicate.*A_0"):
        read_retrieval_csv(path)
    path.write_text(RETRIEVAL_HEADER + "\n" + retrieval_row("A_0", 1, [2]).rsplit(",", 1)[0] + ",\"['x']\"\n")
    with pytest.raises(ValueError, match="list of int"):
        read_retrieval_csv(path)


@pytest.mark.parametrize(
    "content",
    [b"# EK-100\n\nnarration_id,verb_class\nA_0,1,2,3\n", b"", b"\xff\xfe\x00binary"],
    ids=["ragged", "empty", "not text"],
)
def test_a_file_that_is_no_csv_is_named(tmp_path, content):
    """A careless --test-csv (a README, an empty or binary file): one error naming the file, for every CSV reader."""
    from modeling_eva02at.data.charades_ego import read_charades_ego_csv

    path = tmp_path / "notes.csv"
    path.write_bytes(content)
    for read, what in (
        (read_retrieval_csv, "retrieval CSV"),
        (read_sentence_csv, "sentence CSV"),
        (read_charades_ego_csv, "Charades-Ego CSV"),
    ):
        with pytest.raises(ValueError, match=f"^{what} .*notes.csv is not a readable CSV file: "):
            read(path)


@pytest.mark.parametrize("content", [b"", b"# notes\n", b"\x80\x04\x95", b"\xff\xfe\x00binary"])
def test_a_file_that_is_no_pickle_is_named_as_a_value_error(tmp_path, content):
    """An empty, text, truncated or binary --relevancy / clip list: one error naming the file, and a ValueError, so
    the scripts print it as one line (pickle's own errors are neither)."""
    from modeling_eva02at.data.egoclip import read_clip_pickle

    path = tmp_path / "notes.pkl"
    path.write_bytes(content)
    for read, what in ((load_relevancy_pickle, "relevancy pickle"), (read_clip_pickle, "EgoClip metadata pickle")):
        with pytest.raises(ValueError, match=f"^{what} .*notes.pkl cannot be loaded: "):
            read(path)


@pytest.mark.parametrize("content", [b"\xff\xfe\x00binary", b"c000 Holding \xe9\n"])
def test_a_text_file_that_is_not_utf8_is_named(tmp_path, content):
    from modeling_eva02at.data.charades_ego import read_charades_classes
    from modeling_eva02at.data.egomcq import EgoMcqQuestions

    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    for read, what in ((read_charades_classes, "classes file"), (EgoMcqQuestions.from_json, "EgoMCQ file")):
        with pytest.raises(ValueError, match=f"^{what} .*notes.txt is not a UTF-8 text file: "):
            read(str(path))


def test_read_sentence_csvs(data_dir):
    folder = os.path.join(data_dir, "ek100")
    test = read_sentence_csv(os.path.join(folder, "EPIC_100_retrieval_test_sentence.csv"))
    assert len(test) == 3842 and list(test.columns) == ["narration_id", "narration"]
    assert test["narration_id"].iloc[-1] == "P12_03_90"
    train = read_sentence_csv(os.path.join(folder, "EPIC_100_retrieval_train_sentence.csv"))
    assert len(train) == 15989
    assert train.iloc[0]["noun_classes"] == [3] and train.iloc[0]["nouns"] == ["door"]
    assert train["verb_class"].dtype == np.int64


# ---------------------------------------------------------------------------------------------------------------
# Relevancy matrix
# ---------------------------------------------------------------------------------------------------------------


def test_build_relevancy_real_test_split(ek100):
    clips, sentences, relevancy = ek100
    assert relevancy.shape == (9668, 3842) and relevancy.dtype == np.float32
    assert relevancy.min() >= 0 and relevancy.max() == 1
    assert (relevancy == 1).any(axis=1).all(), "every clip has an exactly relevant caption"
    assert (relevancy == 1).any(axis=0).all(), "every caption has an exactly relevant clip"


def test_build_relevancy_matches_direct_formula(ek100):
    clips, sentences, relevancy = ek100
    by_id = clips.set_index("narration_id")
    rng = np.random.default_rng(0)
    pairs = list(zip(rng.integers(0, len(clips), 300), rng.integers(0, len(sentences), 300)))
    # Pairs with partial relevancy (same verb or shared nouns), not only the frequent zeros.
    partial = np.argwhere((relevancy > 0) & (relevancy < 1))
    pairs += [tuple(p) for p in partial[rng.choice(len(partial), 300, replace=False)]]
    # The last 7 captions have texts shifted against their ids: they must take the classes of their own id.
    pairs += [
        (int(clips.index[clips["narration_id"] == sentences["narration_id"].iloc[p]][0]), p)
        for p in range(len(sentences) - 7, len(sentences))
    ]
    for i, p in pairs:
        expected = direct_relevancy(clips.iloc[i], by_id.loc[sentences["narration_id"].iloc[p]])
        assert relevancy[i, p] == np.float32(expected), (i, p)
    for i, p in pairs[-7:]:
        assert relevancy[i, p] == 1.0


def test_build_relevancy_small_hand_computed():
    clips = pd.DataFrame(
        {
            "narration_id": ["a", "b", "c"],
            "verb_class": [1, 1, 2],
            "all_noun_classes": [[1, 2], [2, 3], [2, 2]],  # duplicates count once
        }
    )
    sentences = pd.DataFrame({"narration_id": ["b", "c"], "narration": ["wrong text", "also wrong"]})
    expected = np.array(
        [
            [0.5 + 0.5 * 1 / 3, 0.0 + 0.5 * 1 / 2],  # a: same verb as b, nouns {1,2} vs {2,3} / {2}
            [1.0, 0.5 * 1 / 2],
            [0.5 * 1 / 2, 1.0],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(build_relevancy(clips, sentences), expected)


def test_build_relevancy_chunked_expansion_is_identical(ek100, monkeypatch):
    clips, sentences, relevancy = ek100
    monkeypatch.setattr(rel, "_ROW_CHUNK", 997)
    np.testing.assert_array_equal(build_relevancy(clips, sentences), relevancy)


def test_build_relevancy_unknown_sentence_id():
    clips = pd.DataFrame({"narration_id": ["a"], "verb_class": [1], "all_noun_classes": [[1]]})
    sentences = pd.DataFrame({"narration_id": ["a", "zz_9"]})
    with pytest.raises(ValueError, match=r"1 sentence narration_id.*zz_9"):
        build_relevancy(clips, sentences)


# ---------------------------------------------------------------------------------------------------------------
# Pickled official matrices
# ---------------------------------------------------------------------------------------------------------------


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _RunsEval:
    def __reduce__(self):
        return eval, ("1 + 1",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_load_relevancy_pickle_numpy_array(tmp_path, protocol):
    matrix = np.random.default_rng(protocol).random((7, 5))
    path = tmp_path / "relevancy.pkl"
    path.write_bytes(pickle.dumps(matrix, protocol=protocol))
    loaded = load_relevancy_pickle(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, matrix.astype(np.float32))
    np.testing.assert_array_equal(load_relevancy_pickle(path, dtype=None), matrix)


@pytest.mark.parametrize("protocol", [2, 5])
def test_load_relevancy_pickle_dataframe(tmp_path, protocol):
    matrix = np.random.default_rng(0).random((4, 3))
    path = tmp_path / "relevancy.pkl"
    path.write_bytes(pickle.dumps(pd.DataFrame(matrix), protocol=protocol))
    np.testing.assert_array_equal(load_relevancy_pickle(path, dtype=None), matrix)


def test_load_relevancy_pickle_refuses_code_execution(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsShell(marker)))
    with pytest.raises(
        pickle.UnpicklingError,
        match=r"^relevancy pickle .*evil.pkl cannot be loaded: forbidden global (posix|nt)\.system",
    ):
        load_relevancy_pickle(path)
    assert not marker.exists()
    # The same payload nested inside an otherwise valid structure is refused too.
    path.write_bytes(pickle.dumps([np.zeros((2, 2)), _RunsShell(marker)]))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_relevancy_pickle(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_RunsEval()))
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.eval"):
        load_relevancy_pickle(path)


def test_load_relevancy_pickle_wrong_content(tmp_path):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"not": "an array"}))
    with pytest.raises(ValueError, match="expected a pickled numpy array"):
        load_relevancy_pickle(path)
    path.write_bytes(pickle.dumps(np.zeros(3)))
    with pytest.raises(ValueError, match=r"2-D.*\(3,\)"):
        load_relevancy_pickle(path)
    path.write_bytes(pickle.dumps(np.array([["a", "b"]], dtype=object)))
    with pytest.raises(ValueError, match="real-valued"):
        load_relevancy_pickle(path)


# ---------------------------------------------------------------------------------------------------------------
# Hard-mining positives
# ---------------------------------------------------------------------------------------------------------------


def test_positive_sentences_small(monkeypatch):
    matrix = np.array([[1.0, 0.1, 0.2, 0.0], [0.0, 0.5, 0.1000001, 0.75], [0.3, 0.0, 0.0, 1.0]])
    monkeypatch.setattr(rel, "_ROW_CHUNK", 2)  # a chunk boundary inside the matrix
    positives = positive_sentences(matrix)
    np.testing.assert_array_equal(positives.indptr, [0, 2, 5, 7])
    assert [positives.sentences_of(i).tolist() for i in range(3)] == [[0, 2], [1, 2, 3], [0, 3]]  # 0.1 excluded
    np.testing.assert_array_equal(positives.counts(), [2, 3, 2])
    assert positive_sentences(matrix, threshold=0.6).sentences_of(1).tolist() == [3]


def test_positive_sentences_reports_clips_without_positive():
    matrix = np.array([[1.0, 0.0], [0.05, 0.1], [0.0, 0.0], [0.2, 0.0]])
    with pytest.raises(ValueError, match=r"2 clip\(s\).*\[1, 2\]"):
        positive_sentences(matrix)
    with pytest.raises(ValueError, match="shape"):
        positive_sentences(np.zeros(3))


def test_positive_sentences_real(ek100):
    _, _, relevancy = ek100
    positives = positive_sentences(relevancy)
    np.testing.assert_array_equal(positives.counts(), (relevancy > 0.1).sum(axis=1))
    for clip in (0, 4321, 9667):
        np.testing.assert_array_equal(positives.sentences_of(clip), np.flatnonzero(relevancy[clip] > 0.1))
