"""Charades-Ego fine-tuning: the trimmed-action dataset and its bad rows, the collator, the synthetic set in the real
formats, the trainer's SMS with hard class labels from the batch, LAMB, fixed temperature, and a 2-process run of
examples/finetune_charades_ego.py.
"""

import csv
import math
import os
import re

import numpy as np
import pytest
import torch

from modeling_eva02at.data.charades_ego import (
    CHARADES_EGO_COLUMNS,
    CharadesEgoCollator,
    CharadesEgoDataset,
    read_charades_ego_csv,
    split_actions,
)
from modeling_eva02at.data.rows import BadClipError
from modeling_eva02at.training.arguments import Eva02AtTrainingArguments
from modeling_eva02at.training.batch_relevancy import BatchRelevancy
from modeling_eva02at.training.losses import sms_hard_loss
from modeling_eva02at.training.trainer import Eva02AtTrainer
from tests.conftest import REPO_ROOT, TINY_MIR_CONFIG, run_on_two_cpu_processes, tiny_mir_model


CLASSES = [
    "c000 Holding some clothes",
    "c001 Putting clothes somewhere",
    "c002 Taking a cup from somewhere",
    "c003 Opening a door",
    "c004 Tidying some clothes, folding them",
]


@pytest.fixture(scope="module")
def charades(tmp_path_factory):
    """The synthetic Charades-Ego set, small: 12 training videos, 8 test videos."""
    from modeling_eva02at.demo.charades_ego import make_charades_ego_demo

    return make_charades_ego_demo(tmp_path_factory.mktemp("charades"), num_train_videos=12, num_test_videos=8)


def write_charades_csv(folder, actions, videos=None):
    """A training CSV of (id, actions) rows with every real column, the 5-class file, and an (empty) video file for
    each id in `videos` (default: every id)."""
    with open(folder / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CHARADES_EGO_COLUMNS)
        for video_id, action in actions:
            writer.writerow(
                [
                    video_id,
                    "S1",
                    "Kitchen",
                    "6",
                    "7",
                    "Yes",
                    "A person ...",
                    "clothes",
                    "...",
                    action,
                    "30",
                    "Yes",
                    video_id.removesuffix("EGO"),
                ]
            )
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (folder / "videos").mkdir(exist_ok=True)
    for video_id in videos if videos is not None else [video_id for video_id, _ in actions]:
        (folder / "videos" / f"{video_id}.mp4").touch()  # only its presence is checked when the CSV is read
    return str(folder / "train.csv"), str(folder / "classes.txt"), str(folder / "videos")


def test_one_training_sample_per_action_segment(tmp_path):
    csv_path, classes, videos = write_charades_csv(
        tmp_path, [("AB1EGO", "c004 0.00 1.50;c003 1.00 2.90"), ("AB2EGO", ""), ("AB3EGO", " c002 0.30 12.00 ")]
    )
    dataset = CharadesEgoDataset(csv_path, classes, videos, train=True, seed=3)
    assert len(dataset) == 3 and dataset.num_unlabelled_videos == 1 and not dataset.skipped
    first, last = dataset[0], dataset[2]
    assert first["video"] == os.path.join(videos, "AB1EGO.mp4") and (first["start"], first["end"]) == (0.0, 1.5)
    assert first["caption"] == "Tidying some clothes, folding them" and first["class_ids"] == 4 and first["jitter"]
    assert (last["start"], last["end"], last["class_ids"], last["caption"]) == (
        0.3,
        12.0,
        2,
        "Taking a cup from somewhere",
    )
    assert last["where"] == f"Charades-Ego CSV {csv_path}, line 4 (id 'AB3EGO') action 'c002 0.30 12.00'"
    seeds = {dataset[0]["sample_seed"]}
    dataset.set_epoch(1)
    seeds.add(dataset[0]["sample_seed"])
    assert len(seeds) == 2  # a new jitter every epoch
    assert not CharadesEgoDataset(csv_path, classes, videos, train=False)[0]["jitter"]


def test_bad_rows_raise_naming_the_line_or_are_skipped_and_counted(tmp_path, caplog):
    csv_path, classes, videos = write_charades_csv(
        tmp_path,
        [
            ("OK1EGO", "c000 0.00 1.00;c157 0.00 1.00"),  # line 2: an unknown class next to a good action
            ("OK2EGO", "c001 2.00 2.00"),  # line 3: end <= start
            ("OK3EGO", "c001 0.5;c002 one 2.0"),  # line 4: not '<class> <start> <end>', twice
            ("GONEEGO", "c003 0.00 1.00"),  # line 5: no video file
        ],
        videos=["OK1EGO", "OK2EGO", "OK3EGO"],
    )
    with pytest.raises(ValueError) as error:
        CharadesEgoDataset(csv_path, classes, videos)
    message = str(error.value)
    assert message.startswith(f"{csv_path}: bad rows: ") and "on_bad_row='skip' (--on-bad-row skip)" in message
    gone = os.path.join(videos, "GONEEGO.mp4")
    for expected in (
        f"1 with a missing video file (first: line 5 (id 'GONEEGO'): {gone})",
        f"1 with a class id missing from the classes file {classes} (first: line 2 (id 'OK1EGO') 'c157 0.00 1.00')",
        "1 with end <= start or a negative start (first: line 3 (id 'OK2EGO') 'c001 2.00 2.00')",
        "2 with an action that is not '<class id> <start> <end>' (first: line 4 "
        "(id 'OK3EGO') 'c001 0.5', line 4 (id 'OK3EGO') 'c002 one 2.0')",
    ):
        assert expected in message, message
    with caplog.at_level("WARNING"):
        dataset = CharadesEgoDataset(csv_path, classes, videos, on_bad_row="skip")
    assert len(dataset) == 1 and dataset[0]["class_ids"] == 0
    assert sum(dataset.skipped.values()) == 5 and "skipped 5 bad rows" in caplog.text
    with pytest.raises(ValueError, match="on_bad_row must be one of"):
        CharadesEgoDataset(csv_path, classes, videos, on_bad_row="ignore")
    only_bad, _, _ = write_charades_csv(tmp_path, [("OK2EGO", "c001 2.00 2.00")])
    with pytest.raises(ValueError, match="no usable action segment"):
        CharadesEgoDataset(only_bad, classes, videos, on_bad_row="skip")


def test_collator_batches_class_ids_and_names_the_line_of_an_undecodable_segment(charades, mir_processor, tmp_path):
    import shutil

    dataset = CharadesEgoDataset(charades.train_csv, charades.classes, charades.video_root)
    batch = CharadesEgoCollator(mir_processor)([dataset[0], dataset[1]])
    assert batch["class_ids"].dtype == torch.long
    assert batch["class_ids"].tolist() == [dataset[0]["class_ids"], dataset[1]["class_ids"]]
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 16, 16) and batch["pixel_values_videos"].std() > 0.1
    root = tmp_path / "videos"
    shutil.copytree(charades.video_root, root)
    first = dataset[0]["video"]
    (root / os.path.basename(first)).write_bytes(b"not a video")
    broken = CharadesEgoDataset(charades.train_csv, charades.classes, str(root))
    line = r"^Charades-Ego CSV .*, line 2 \(id 'T0000EGO'\) action 'c\d{3} [\d.]+ [\d.]+': .*T0000EGO.mp4"
    with pytest.raises(BadClipError, match=line):
        CharadesEgoCollator(mir_processor)([broken[0]])
    collator = CharadesEgoCollator(mir_processor, on_bad_row="skip")
    later = next(i for i in range(len(broken)) if broken[i]["video"] != broken[0]["video"])
    assert collator([broken[0], broken[later]])["class_ids"].tolist() == [broken[later]["class_ids"]]
    assert collator.skipped == 1


def test_demo_is_in_the_real_formats(charades):
    from modeling_eva02at.demo.charades_ego import NUM_SHOWN_CLASSES
    from modeling_eva02at.evaluation.charades_ego import CharadesEgoAnnotations

    for path in (charades.train_csv, charades.test_csv):
        frame = read_charades_ego_csv(path)
        assert tuple(frame.columns) == CHARADES_EGO_COLUMNS
        assert frame["id"].str.endswith("EGO").all() and (frame["actions"] == "").sum() == 1
        assert frame["actions"].str.fullmatch(r"(c\d{3} \d+\.\d\d \d+\.\d\d)(;c\d{3} \d+\.\d\d \d+\.\d\d)*|").all()
    lines = open(charades.classes).read().splitlines()
    assert len(lines) == 157 and lines[0].startswith("c000 ") and lines[-1].startswith("c156 ")
    test = CharadesEgoAnnotations.from_files(charades.test_csv, charades.classes)
    assert test.labels.shape == (7, 157) and len(test.unlabelled_ids) == 1
    # the shown classes are balanced over a split's actions: all of them as soon as there are as many actions
    num_actions = sum(len(split_actions(actions)) for actions in read_charades_ego_csv(charades.test_csv)["actions"])
    assert test.labels.any(axis=0).sum() == min(NUM_SHOWN_CLASSES, num_actions)
    assert all(os.path.isfile(path) for path in test.video_paths(charades.video_root))


def make_trainer(tmp_path, **settings):
    args = Eva02AtTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **settings)
    return Eva02AtTrainer(model=tiny_mir_model(), args=args)


def batch(class_ids):
    generator = torch.Generator().manual_seed(0)
    size = len(class_ids)
    input_ids = torch.randint(1, 49000, (size, 8), generator=generator)
    input_ids[:, -1] = 49407
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "pixel_values_videos": torch.randn(size, 2, 3, 16, 16, generator=generator),
        "class_ids": torch.tensor(class_ids),
    }


def test_sms_hard_takes_the_class_labels_of_the_batch(tmp_path):
    trainer = make_trainer(tmp_path, loss="sms_hard")  # no relevancy matrix needed
    inputs = batch([3, 1, 3, 0])  # items 0 and 2 share a class: equally relevant, not negatives
    loss, outputs = trainer.compute_loss(trainer.model, inputs, return_outputs=True)
    sim = outputs.text_embeds @ outputs.video_embeds.T
    expected = sms_hard_loss(sim, BatchRelevancy.from_class_ids(inputs["class_ids"]).pairwise, margin=0.3)
    torch.testing.assert_close(loss, expected)
    assert trainer.loss_fn.hyperparameters.get("margin", 0.3) == 0.3


def test_class_labels_with_a_graded_loss_and_sms_hard_without_labels_are_errors(tmp_path):
    args = Eva02AtTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", loss="sms")
    graded = Eva02AtTrainer(model=tiny_mir_model(), args=args, relevancy=np.ones((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="class_ids .* only sms_hard takes"):
        graded.compute_loss(graded.model, batch([0, 1]))
    trainer = make_trainer(tmp_path, loss="sms_hard")
    inputs = batch([0, 1])
    del inputs["class_ids"]
    with pytest.raises(ValueError, match="needs class_ids in every batch"):
        trainer.compute_loss(trainer.model, inputs)


def test_lamb_optimizer_and_fixed_temperature(tmp_path):
    trainer = make_trainer(tmp_path, loss="infonce", optimizer_name="lamb", temperature=0.05, weight_decay=0.01)
    optimizer = trainer.create_optimizer()
    assert type(optimizer).__name__ == "Lamb" and type(optimizer).__module__.startswith("pytorch_optimizer")
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.01, 0.0]
    assert not trainer.model.logit_scale.requires_grad
    assert math.isclose(float(trainer.model.scale()), 20.0, rel_tol=1e-6)
    with pytest.raises(ValueError, match="optimizer_name must be one of adamw, lamb; got 'sgd'"):
        Eva02AtTrainingArguments(output_dir=str(tmp_path), optimizer_name="sgd")
    with pytest.raises(ValueError, match="temperature must be positive"):
        Eva02AtTrainingArguments(output_dir=str(tmp_path), temperature=0.0)


def test_two_process_fine_tune_lowers_the_loss_and_reports_map(charades, tmp_path):
    """A few sms_hard + LAMB steps of examples/finetune_charades_ego.py on 2 CPU processes (gloo, DDP, the hard
    labels gathered from both ranks), with the Charades-Ego mAP before and after."""
    flags = [
        "--train-csv",
        charades.train_csv,
        "--test-csv",
        charades.test_csv,
        "--classes",
        charades.classes,
        "--video-root",
        charades.video_root,
        "--model",
        TINY_MIR_CONFIG,
        "--init",
        "random",
        "--num-frames",
        "4",
        "--output-dir",
        str(tmp_path / "run"),
        "--use-cpu",
        "--per-device-train-batch-size",
        "8",
        "--max-steps",
        "12",
        "--logging-steps",
        "3",
        "--learning-rate",
        "2e-3",
        "--warmup-start-lr",
        "1e-5",
        "--warmup-steps",
        "2",
        "--report-to",
        "none",
        "--save-strategy",
        "no",
        "--dataloader-num-workers",
        "0",
        "--seed",
        "0",
        "--disable-tqdm",
        "true",
    ]
    script = os.path.join(REPO_ROOT, "examples", "finetune_charades_ego.py")
    result = run_on_two_cpu_processes(script, *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    print(result.stdout[-1500:])
    logged = re.search(r"Training loss by step: (.*)", result.stdout).group(1).split(", ")
    losses = [float(entry.split(": ")[1]) for entry in logged]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    found = re.search(r"random scores: ([\d.]+)   before: ([\d.]+)   after: ([\d.]+)", result.stdout)
    assert found, result.stdout
    assert all(0 < float(value) <= 100 for value in found.groups())
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tmp_path / "run", trust_remote_code=True)
    assert model.config.vision_config.num_frames == 4
