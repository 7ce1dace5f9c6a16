"""The evaluation pipelines end to end, against an independent computation on the same inputs.

Each test runs a real entry point (examples/eval_ek100_mir.py, `Eva02AtTrainer.evaluate`, examples/eval_egomcq.py,
examples/eval_charades_ego.py) on tiny videos and compares every reported metric, to 1e-6, with numbers computed
here without the package's evaluation code: the annotation files are read with pandas / json, each clip is decoded
by a plain processor call and encoded by one model call, the similarity is built by hand and the metrics follow
docs/metrics.md's formulas in plain loops. The inputs are chosen so that a misalignment changes the result (distinct
scores, graded relevancies, candidates whose order matters), and each test asserts that it does.
"""

import json
import os
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from modeling_eva02at.data.collate import VideoTextCollator
from modeling_eva02at.training.arguments import Eva02AtTrainingArguments
from modeling_eva02at.training.trainer import Eva02AtTrainer

from . import cli_runs
from .conftest import tiny_mir_model
from .video_helpers import make_frames, write_video


FPS = 10
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def model():
    # Seed 3: a random tiny model whose similarities are spread enough that no two candidates tie (checked below).
    return tiny_mir_model(seed=3).eval()


@pytest.fixture(scope="module")
def model_dir(model, mir_processor, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    mir_processor.save_pretrained(folder)
    return str(folder)


def script_args(model_dir, video_root, output, **flags):
    argv = [
        "--model",
        model_dir,
        "--video-root",
        str(video_root),
        "--batch-size",
        "3",
        "--num-workers",
        "0",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-progress",
        "--output-json",
        str(output),
    ]
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return argv


# ---------------------------------------------------------------------------------------------------------------------
# The independent computation
# ---------------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def clip_embedding(model, processor, video, start=None, end=None) -> np.ndarray:
    """One clip, one processor call, one model call: its unit-norm embedding in float64."""
    pixels = processor(videos=[video], start=[start], end=[end])["pixel_values_videos"]
    features = model.get_video_features(pixel_values_videos=pixels).pooler_output[0].double()
    return (features / features.norm()).numpy()


@torch.no_grad()
def text_embedding(model, processor, text: str) -> np.ndarray:
    inputs = processor(text=[text], return_tensors="pt")
    features = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    features = features.pooler_output[0].double()
    return (features / features.norm()).numpy()


def seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    return 3600 * int(hours) + 60 * int(minutes) + float(rest)


def mir_average_precision(scores: np.ndarray, relevancy: np.ndarray) -> float:
    """docs/metrics.md: AP_q = (1 / #rel) sum_k [R == 1 at rank k] * (graded R summed over ranks 0..k) / (k + 1)."""
    values = []
    for row_scores, row_relevancy in zip(scores, relevancy):
        ranked = row_relevancy[np.argsort(-row_scores, kind="stable")]
        total, ap = 0.0, 0.0
        for k, value in enumerate(ranked):
            total += value
            if value == 1:
                ap += total / (k + 1)
        values.append(ap / np.sum(ranked == 1))
    return float(np.mean(values))


def mir_ndcg(scores: np.ndarray, relevancy: np.ndarray) -> float:
    """docs/metrics.md: DCG over the first n_q (= non-zero relevancies) ranks, divided by the ideal DCG."""
    values = []
    for row_scores, row_relevancy in zip(scores, relevancy):
        n = int(np.count_nonzero(row_relevancy))
        gains = 1 / np.log2(np.arange(n) + 2)
        dcg = np.sum(row_relevancy[np.argsort(-row_scores, kind="stable")][:n] * gains)
        ideal = np.sum(np.sort(row_relevancy)[::-1][:n] * gains)
        values.append(dcg / ideal)
    return float(np.mean(values))


def mir_metrics_by_hand(similarity: np.ndarray, relevancy: np.ndarray) -> dict:
    metrics = {
        "vis2txt_mAP": mir_average_precision(similarity, relevancy),
        "txt2vis_mAP": mir_average_precision(similarity.T, relevancy.T),
        "vis2txt_nDCG": mir_ndcg(similarity, relevancy),
        "txt2vis_nDCG": mir_ndcg(similarity.T, relevancy.T),
    }
    metrics["avg_mAP"] = (metrics["vis2txt_mAP"] + metrics["txt2vis_mAP"]) / 2
    metrics["avg_nDCG"] = (metrics["vis2txt_nDCG"] + metrics["txt2vis_nDCG"]) / 2
    return metrics


def assert_no_near_ties(scores: np.ndarray, axis: int, gap: float = 1e-6):
    """Rankings that a float32 rounding cannot reorder: within each query, distinct scores at least `gap` apart.

    The scores of one clip computed alone here and in a batch by the package differ by about 1e-7 (unit float32
    vectors), so 1e-6 leaves a 10x margin. The demo videos' H.264 bytes are not the same from run to run (libx264 is
    not bit-exact here), so neither are the scores: one of the encodings seen puts two of them 2.8e-6 apart."""
    ordered = np.sort(scores, axis=axis)
    assert np.diff(ordered, axis=axis).min() > gap, "near-tied scores: pick another model seed"


def assert_metrics_equal(reported: dict, expected: dict):
    for key, value in expected.items():
        assert reported[key] == pytest.approx(value, abs=TOLERANCE), key


def assert_sensitive(metrics_of, misaligned, expected):
    """The inputs are discriminating: the misaligned similarity scores differently."""
    wrong = metrics_of(misaligned)
    assert any(abs(wrong[key] - value) > 1e-3 for key, value in expected.items() if not np.isnan(value)), wrong


# ---------------------------------------------------------------------------------------------------------------------
# EK-100 MIR: the script and the trainer
# ---------------------------------------------------------------------------------------------------------------------


def ek100_by_hand(model, processor, test_csv, sentence_csv, video_root):
    """Each clip against each clip's own narration (clips x clips), the sentence CSV's columns of it, and the CSVs."""
    clips = pd.read_csv(test_csv)
    sentences = pd.read_csv(sentence_csv)
    videos = np.stack(
        [
            clip_embedding(
                model,
                processor,
                os.path.join(video_root, row.participant_id, f"{row.video_id}.MP4"),
                seconds(row.start_timestamp),
                seconds(row.stop_timestamp),
            )
            for row in clips.itertuples()
        ]
    )
    texts = np.stack([text_embedding(model, processor, narration) for narration in clips["narration"]])
    row_of = {narration_id: row for row, narration_id in enumerate(clips["narration_id"])}
    columns = [row_of[narration_id] for narration_id in sentences["narration_id"]]
    return videos @ texts.T, columns, clips, sentences


def graded_relevancy(clips, sentences, seed=0):
    """Exact 1 for each clip's own narration, random graded values (0, 0.25, 0.5, 0.75) elsewhere."""
    rng = np.random.default_rng(seed)
    relevancy = rng.choice([0.0, 0.0, 0.25, 0.5, 0.75], size=(len(clips), len(sentences)))
    relevancy[clips["narration"].to_numpy()[:, None] == sentences["narration"].to_numpy()[None, :]] = 1.0
    return relevancy.astype(np.float32)


@pytest.fixture(scope="module")
def ek100_expected(model, mir_processor, demo):
    every_narration, columns, clips, sentences = ek100_by_hand(
        model, mir_processor, demo.test_csv, demo.test_sentence_csv, demo.video_root
    )
    similarity = every_narration[:, columns]
    assert_no_near_ties(similarity, axis=1)
    assert_no_near_ties(similarity, axis=0)
    assert columns != list(range(len(columns)))  # a caption's first clip is not always the clip of that row
    # What misaligned caption columns would score: the first len(sentences) narrations instead of the CSV's.
    misaligned = every_narration[:, : len(columns)]
    return similarity, misaligned, clips, sentences


def test_eval_ek100_mir_script_matches_the_computation_by_hand(model_dir, demo, ek100_expected, tmp_path):
    similarity, misaligned, clips, sentences = ek100_expected
    relevancy = graded_relevancy(clips, sentences)
    with open(tmp_path / "relevancy.pkl", "wb") as file:
        pickle.dump(relevancy, file)
    argv = script_args(
        model_dir,
        demo.video_root,
        tmp_path / "out.json",
        test_csv=demo.test_csv,
        sentence_csv=demo.test_sentence_csv,
        relevancy=tmp_path / "relevancy.pkl",
    )
    report = cli_runs.eval_ek100_mir(argv)
    expected = mir_metrics_by_hand(similarity, relevancy)
    assert_metrics_equal(report["metrics"], expected)
    assert json.loads((tmp_path / "out.json").read_text())["metrics"] == report["metrics"]
    assert_sensitive(lambda s: mir_metrics_by_hand(s, relevancy), misaligned, expected)


def test_trainer_evaluate_matches_the_computation_by_hand(model, mir_processor, splits, ek100_expected, tmp_path):
    _, test = splits
    similarity, misaligned, _, _ = ek100_expected
    args = Eva02AtTrainingArguments(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=5,
        use_cpu=True,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = Eva02AtTrainer(
        model=model,
        args=args,
        eval_dataset=test,
        data_collator=VideoTextCollator(mir_processor),
        processing_class=mir_processor,
        relevancy=test.relevancy,
    )
    reported = trainer.evaluate()
    # The relevancy is the dataset's, built from the CSVs (tests/test_relevancy.py checks it against the official
    # pickle); everything that turns embeddings into numbers is computed here.
    expected = mir_metrics_by_hand(similarity, test.relevancy)
    assert_metrics_equal({k.removeprefix("eval_"): v for k, v in reported.items()}, expected)
    assert_sensitive(lambda s: mir_metrics_by_hand(s, test.relevancy), misaligned, expected)


# ---------------------------------------------------------------------------------------------------------------------
# EgoMCQ
# ---------------------------------------------------------------------------------------------------------------------


def write_clip(path, num_frames, seed):
    """An H.264 video at FPS frames per second whose content changes over time and with the seed."""
    frames = np.roll(make_frames(num_frames, 48, 64, noise=6.0, seed=seed), shift=seed * 9, axis=2)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(str(path), frames, FPS)
    return frames


def egomcq_clip(uid, start, end, text=""):
    return {"video_uid": uid, "clip_start": start, "clip_end": end, "clip_text": text, "tag_verb": "[1]"}


@pytest.fixture(scope="module")
def egomcq_data(tmp_path_factory):
    """Full videos a-d (4 s) and video e in EgoVLP chunks of 2 s (run with --chunk-seconds 2); six questions, three
    of each type, whose candidates are listed in an order that matters."""
    root = tmp_path_factory.mktemp("ego4d")
    for seed, uid in enumerate("abcd"):
        write_clip(root / "videos" / f"{uid}.mp4", 4 * FPS, seed)
    frames = np.roll(make_frames(4 * FPS, 48, 64, noise=6.0, seed=7), shift=20, axis=2)
    for k in range(2):
        os.makedirs(root / "videos" / "e", exist_ok=True)
        write_video(str(root / "videos" / "e" / f"{k}.mp4"), frames[k * 2 * FPS : (k + 1) * 2 * FPS], FPS)
    inter = [("abcde", 0.5, 1.5), ("cadeb", 1.0, 3.0), ("edcba", 2.2, 3.6)]  # candidates from five videos
    intra = [("b", [0.0, 0.6, 1.2, 2.0, 3.0]), ("d", [3.1, 2.5, 0.4, 1.6, 0.9]), ("a", [1.0, 0.1, 2.9, 2.2, 1.5])]
    queries = [
        "#C C opens the door",
        "#C C cuts a tomato",
        "#C C washes a cup",
        "#C C picks up a knife",
        "#C C stirs the pot",
        "#C C opens the door",
    ]  # a repeated query text is encoded once
    questions = {}
    for number, (uids, start, end) in enumerate(inter):
        choices = {str(i): egomcq_clip(uid, start, end) for i, uid in enumerate(uids)}
        questions[str(number)] = {
            "query": egomcq_clip(uids[0], start, end, queries[number]),
            "choices": choices,
            "answer": number + 1,
            "types": 1,
        }
    for number, (uid, starts) in enumerate(intra, start=len(inter)):
        choices = {str(i): egomcq_clip(uid, start, start + 0.8) for i, start in enumerate(starts)}
        questions[str(number)] = {
            "query": egomcq_clip(uid, 0.0, 1.0, queries[number]),
            "choices": choices,
            "answer": (2 * number) % 5,
            "types": 2,
        }
    path = root / "egomcq.json"
    path.write_text(json.dumps(questions))
    return root / "videos", path


def egomcq_by_hand(model, processor, video_root, path, chunk_seconds=2):
    """(similarity questions x candidates, answers, types): the json read here, each candidate decoded on its own."""
    questions = json.loads(path.read_text())
    similarity, answers, types = [], [], []
    for key in sorted(questions, key=int):
        question = questions[key]
        query = text_embedding(model, processor, question["query"]["clip_text"])
        row = []
        for choice in sorted(question["choices"], key=int):
            clip = question["choices"][choice]
            full = os.path.join(video_root, f"{clip['video_uid']}.mp4")
            start, end = clip["clip_start"], clip["clip_end"]
            if not os.path.isfile(full):  # EgoVLP chunks; these test clips lie inside one chunk
                chunk = int(start // chunk_seconds)
                full = os.path.join(video_root, clip["video_uid"], f"{chunk}.mp4")
                start, end = start - chunk * chunk_seconds, end - chunk * chunk_seconds
            row.append(clip_embedding(model, processor, full, start, end) @ query)
        similarity.append(row)
        answers.append(question["answer"])
        types.append(question["types"])
    return np.array(similarity), np.array(answers), np.array(types)


def egomcq_accuracy_by_hand(similarity, answers, types) -> dict:
    correct = np.argmax(similarity, axis=1) == answers
    return {
        "inter_video_accuracy": float(np.mean(correct[types == 1])),
        "intra_video_accuracy": float(np.mean(correct[types == 2])),
        "accuracy": float(np.mean(correct)),
    }


def test_eval_egomcq_script_matches_the_computation_by_hand(model, model_dir, mir_processor, egomcq_data, tmp_path):
    video_root, path = egomcq_data
    similarity, answers, types = egomcq_by_hand(model, mir_processor, video_root, path)
    assert_no_near_ties(similarity, axis=1)
    argv = script_args(model_dir, video_root, tmp_path / "out.json", egomcq_json=path, chunk_seconds=2)
    report = cli_runs.eval_egomcq(argv)
    expected = egomcq_accuracy_by_hand(similarity, answers, types)
    assert_metrics_equal(report["metrics"], expected)
    assert (report["metrics"]["num_inter_video"], report["metrics"]["num_intra_video"]) == (3, 3)
    assert report["num_videos"] == 5 * 6 and report["num_texts"] == 5
    # Candidates in reversed order, or the two types swapped, would score otherwise.
    assert_sensitive(lambda s: egomcq_accuracy_by_hand(s, answers, types), similarity[:, ::-1], expected)
    assert_sensitive(lambda types: egomcq_accuracy_by_hand(similarity, answers, types), 3 - types, expected)


# ---------------------------------------------------------------------------------------------------------------------
# Charades-Ego
# ---------------------------------------------------------------------------------------------------------------------

CHARADES_COLUMNS = [
    "id",
    "subject",
    "scene",
    "quality",
    "relevance",
    "verified",
    "script",
    "objects",
    "descriptions",
    "actions",
    "length",
]
CLASSES = {
    "c000": "Holding some clothes",
    "c001": "Putting clothes somewhere",
    "c002": "Opening a door",
    "c003": "Throwing a towel somewhere",
    "c004": "Tidying some clothes, folding them",
}
# Labelled videos (one with no action: excluded by the metric, and never read), several positives per class.
CHARADES_ACTIONS = {
    "V1EGO": "c000 0.00 1.50;c004 1.00 2.90",
    "V2EGO": "c001 0.30 2.00;c000 0.1 0.9",
    "V3EGO": "",
    "V4EGO": "c002 0.00 3.00;c000 1.0 2.0",
    "V5EGO": "c003 0.5 1.0;c001 1.0 2.0",
    "V6EGO": "c004 0.0 1.0;c002 0.2 0.4;c003 1.0 3.0",
}
TEMPLATES = ["{}", "#C C {}"]


@pytest.fixture(scope="module")
def charades_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("charades")
    for seed, (video_id, actions) in enumerate(CHARADES_ACTIONS.items()):
        if actions:
            write_clip(root / "videos" / f"{video_id}.mp4", 3 * FPS, seed + 10)
    rows = [
        [video_id, "S1", "Kitchen", "6", "7", "Yes", "A person ...", "clothes", "A person.", actions, "3.00"]
        for video_id, actions in CHARADES_ACTIONS.items()
    ]
    pd.DataFrame(rows, columns=CHARADES_COLUMNS).to_csv(root / "test.csv", index=False)
    (root / "classes.txt").write_text("".join(f"{cid} {name}\n" for cid, name in CLASSES.items()))
    return root


def charades_by_hand(model, processor, video_root):
    """(scores videos x classes, 0/1 labels) of the labelled videos, each whole video against the template mean."""
    labelled = {video_id: actions for video_id, actions in CHARADES_ACTIONS.items() if actions}
    videos = np.stack(
        [clip_embedding(model, processor, os.path.join(video_root, f"{video_id}.mp4")) for video_id in labelled]
    )
    classes = []
    for name in CLASSES.values():
        mean = np.mean([text_embedding(model, processor, template.format(name)) for template in TEMPLATES], axis=0)
        classes.append(mean / np.linalg.norm(mean))
    labels = np.array(
        [
            [int(any(action.split()[0] == cid for action in actions.split(";"))) for cid in CLASSES]
            for actions in labelled.values()
        ]
    )
    return videos @ np.stack(classes).T, labels


def charades_map_by_hand(scores, labels) -> dict:
    """docs/metrics.md: per class, the mean over its positives of (#positives ranked at or above it) / its rank."""
    aps = []
    for column in range(labels.shape[1]):
        ranked = labels[np.argsort(-scores[:, column], kind="stable"), column]
        if ranked.sum() == 0:
            continue
        hits = np.cumsum(ranked)
        aps.append(np.mean([hits[k] / (k + 1) for k in np.flatnonzero(ranked)]))
    return {"mAP": float(np.mean(aps))}


def test_eval_charades_ego_script_matches_the_computation_by_hand(
    model, model_dir, mir_processor, charades_data, tmp_path
):
    scores, labels = charades_by_hand(model, mir_processor, charades_data / "videos")
    assert_no_near_ties(scores, axis=0)
    argv = script_args(
        model_dir,
        charades_data / "videos",
        tmp_path / "out.json",
        csv=charades_data / "test.csv",
        classes=charades_data / "classes.txt",
    )
    report = cli_runs.eval_charades_ego(argv + ["--templates", *TEMPLATES])
    expected = charades_map_by_hand(scores, labels)
    assert_metrics_equal(report["metrics"], expected)
    assert report["num_videos"] == 5 and report["num_unlabelled_videos_excluded"] == 1
    # Videos in reversed order, or class texts shifted by one class, would score otherwise.
    assert_sensitive(lambda s: charades_map_by_hand(s, labels), scores[::-1], expected)
    assert_sensitive(lambda s: charades_map_by_hand(s, labels), np.roll(scores, 1, axis=1), expected)
