"""modeling_eva02at.data.ek100: timestamps, annotations, dataset items (positives, classes), the collator, missing
or broken videos, and the annotation table as a `datasets.Dataset`."""

import numpy as np
import pandas as pd
import pytest
import torch

from modeling_eva02at.data.collate import VideoTextCollator
from modeling_eva02at.data.ek100 import Ek100MirAnnotations, Ek100MirDataset, timestamp_to_seconds
from modeling_eva02at.utils.files import require_paths


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------


def test_timestamps():
    assert timestamp_to_seconds("00:01:02.50") == pytest.approx(62.5)
    assert timestamp_to_seconds("01:00:00.00") == 3600
    with pytest.raises(ValueError, match="HH:MM:SS"):
        timestamp_to_seconds("62.5")


def test_items_carry_the_clips_verb_and_noun_classes(splits):
    train, test = splits
    clips = train.annotations.clips
    assert train.num_noun_classes == 1 + max(max(nouns) for nouns in clips["all_noun_classes"])
    for dataset in (train, test):
        for index in (0, 5, len(dataset) - 1):
            item, row = dataset[index], dataset.annotations.clips.iloc[index]
            assert item["verb_multi_hot"].shape == (dataset.num_verb_classes,)
            assert np.flatnonzero(item["verb_multi_hot"]).tolist() == [row["verb_class"]]
            assert item["noun_multi_hot"].shape == (dataset.num_noun_classes,)
            assert sorted(np.flatnonzero(item["noun_multi_hot"]).tolist()) == sorted(set(row["all_noun_classes"]))
    assert any(len(nouns) > 1 for nouns in clips["all_noun_classes"])  # the multi-hot matters on this data


def test_training_items_draw_positives_reproducibly(splits):
    train, _ = splits
    items = [train[i] for i in range(len(train))]
    for item in items:
        assert train.relevancy[item["video_index"], item["sentence_index"]] > 0.1
        assert item["positive_relevancy"] == pytest.approx(train.relevancy[item["video_index"], item["sentence_index"]])
        assert item["caption"] == train.annotations.sentences["narration"].iloc[item["sentence_index"]]
        assert item["jitter"] and item["end"] > item["start"]

    def comparable(item):
        return {
            **item,
            "verb_multi_hot": item["verb_multi_hot"].tolist(),
            "noun_multi_hot": item["noun_multi_hot"].tolist(),
        }

    again = [comparable(train[i]) for i in range(len(train))]
    assert again == [comparable(item) for item in items]  # same epoch, same draws
    train.set_epoch(1)
    try:
        redrawn = [train[i] for i in range(len(train))]
    finally:
        train.set_epoch(0)
    assert [r["sample_seed"] for r in redrawn] != [i["sample_seed"] for i in items]


def test_eval_items_pair_clips_with_their_own_narration(splits):
    _, test = splits
    item = test[3]
    assert item["caption"] == test.annotations.clips["narration"].iloc[3]
    assert item["sentence_index"] == -1 and not item["jitter"]
    columns = test.caption_columns
    clips = test.annotations.clips
    assert list(clips["narration_id"].iloc[columns]) == list(test.annotations.sentences["narration_id"])


def test_collator_padding_leaves_the_text_features_unchanged(splits, mir_processor):
    """The collator pads captions to the batch's longest, not to the 77-token context; the causal text tower pools
    at the end-of-text token, so the features equal those of the fully padded input."""
    from .conftest import tiny_mir_model

    train, _ = splits
    model = tiny_mir_model().eval()
    captions = [train[i]["caption"] for i in range(4)] + ["put the small pan and the lid on the plate"]
    short = mir_processor(text=captions, padding="longest", return_tensors="pt")
    full = mir_processor(text=captions, return_tensors="pt")
    assert short["input_ids"].shape[1] < full["input_ids"].shape[1] == 77
    with torch.no_grad():
        features = [model.get_text_features(**inputs).pooler_output for inputs in (short, full)]
    torch.testing.assert_close(features[0], features[1], atol=1e-5, rtol=1e-5)


def test_collator_builds_model_inputs(splits, mir_processor):
    train, _ = splits
    batch = VideoTextCollator(mir_processor)([train[0], train[1], train[2]])
    assert batch["pixel_values_videos"].shape == (3, 2, 3, 16, 16)
    # padded to the longest caption of the batch (the pooled text features do not depend on the padding)
    longest = max(len(mir_processor.tokenizer(train[i]["caption"])["input_ids"]) for i in range(3))
    assert longest < 77 and batch["input_ids"].shape == batch["attention_mask"].shape == (3, longest)
    assert batch["video_index"].tolist() == [0, 1, 2] and batch["positive_relevancy"].dtype == torch.float32
    assert batch["verb_multi_hot"].tolist() == [train[i]["verb_multi_hot"].tolist() for i in range(3)]
    assert batch["noun_multi_hot"].shape == (3, train.num_noun_classes) and batch["noun_multi_hot"].dtype == torch.uint8


def test_collator_bad_video_raises_or_is_skipped_and_counted(splits, mir_processor, tmp_path):
    train, _ = splits
    broken = tmp_path / "broken.MP4"
    broken.write_bytes(b"not a video at all")
    bad = dict(train[0], video=str(broken))
    with pytest.raises(ValueError, match="broken.MP4"):
        VideoTextCollator(mir_processor)([train[1], bad])
    skipping = VideoTextCollator(mir_processor, on_bad_row="skip")
    batch = skipping([train[1], bad, dict(train[2], video=str(tmp_path / "missing.MP4"))])
    assert batch["video_index"].tolist() == [1] and skipping.skipped == 2


def test_annotation_table_as_hf_dataset_decodes_in_set_transform(splits, mir_processor):
    _, test = splits
    table = test.annotations.to_dataset(test.video_root)
    assert table.features["video"].dtype in ("string", "large_string") and len(table) == len(test)
    assert table[0]["start"] == test[0]["start"] and table[0]["video"] == test[0]["video"]
    table.set_transform(
        lambda rows: mir_processor(text=rows["narration"], videos=rows["video"], start=rows["start"], end=rows["end"])
    )
    rows = table[0:3]
    assert rows["pixel_values_videos"].shape == (3, 2, 3, 16, 16) and rows["input_ids"].shape == (3, 77)
    direct = VideoTextCollator(mir_processor)([test[0], test[1], test[2]])["pixel_values_videos"]
    torch.testing.assert_close(rows["pixel_values_videos"], direct)


def test_missing_videos_reported_before_training(splits, tmp_path):
    train, _ = splits
    dataset = Ek100MirDataset(train.annotations, str(tmp_path), train=True)
    with pytest.raises(FileNotFoundError, match=r"training videos missing under .* \(first 6\)") as error:
        require_paths(dataset.video_paths(), "training videos", dataset.video_root)
    missing = str(error.value).splitlines()[1:]
    assert len(missing) == 6 and all(path.strip().startswith(str(tmp_path)) for path in missing)


def test_relevancy_pickle_of_the_wrong_split_is_refused(demo, tmp_path):
    path = tmp_path / "relevancy.pkl"
    pd.to_pickle(np.zeros((5, 7), dtype=np.float32), path)
    with pytest.raises(ValueError, match=r"shape \(5, 7\) but .* clips"):
        Ek100MirAnnotations.from_files(demo.train_csv, demo.train_sentence_csv, path)


def test_clip_without_positive_sentence_is_refused(splits):
    train, _ = splits
    annotations = Ek100MirAnnotations(train.annotations.clips, train.annotations.sentences, train.relevancy.copy())
    annotations.relevancy[4] = 0.05
    with pytest.raises(ValueError, match="4"):
        Ek100MirDataset(annotations, train.video_root, train=True)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
