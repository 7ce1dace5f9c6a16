"""EgoClip pretraining: metadata readers, Ego4D video layouts, bad input, and a 2-process run of the script.

InfoNCE / EgoNCE with global negatives across 2 ranks equal to one process on the concatenated batch is
tests/test_trainer.py::test_two_processes_equal_one_process_on_the_concatenated_batch (the same compute_loss).
"""

import math
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from modeling_eva02at.data.egoclip import (
    EgoClipCollator,
    EgoClipDataset,
    read_clip_pickle,
    read_egoclip_tsv,
)
from modeling_eva02at.data.rows import BadClipError
from tests.conftest import REPO_ROOT, TINY_MIR_CONFIG


# Short chunks so that demo clips straddle chunk boundaries in every chunked layout.
CHUNKS = {"egovlp": 6, "lavila": 3, "avion": 15}


@pytest.fixture(scope="module")
def ego(tmp_path_factory):
    from modeling_eva02at.demo.egoclip import make_egoclip_demo

    return make_egoclip_demo(
        tmp_path_factory.mktemp("egoclip"), num_train=32, num_test=40, chunk_seconds=CHUNKS, num_egomcq=12
    )


@pytest.fixture(scope="module")
def processor4():
    from modeling_eva02at import Eva02AtConfig, Eva02AtProcessor
    from modeling_eva02at.utils.processor import match_processor_to_model

    processor = Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    config = Eva02AtConfig.from_pretrained(TINY_MIR_CONFIG)
    config.vision_config.num_frames = 4
    match_processor_to_model(processor, config, resize=True)
    return processor


def write_tsv(path, rows):
    header = "clip_idx\tvideo_uid\tvideo_dur\tclip_start\tclip_end\tclip_text\ttag_verb\ttag_noun"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_tsv_is_read_columnar_and_shards_split_it(ego):
    metadata = read_egoclip_tsv(ego.egoclip_tsv)
    assert len(metadata) == 32 and metadata.table.num_columns >= 5
    assert metadata.table.slice(0, 1).to_pylist()[0]["captions"][0].startswith("#C C ")
    shards = [metadata.shard(index, 3) for index in range(3)]
    rows = np.concatenate([shard.table["row"].to_numpy() for shard in shards])
    assert sorted(rows.tolist()) == metadata.table["row"].to_pylist() and len(set(rows.tolist())) == 32


def test_pickled_clip_lists_are_read_restricted_and_narrations_sampled_per_epoch(ego, tmp_path):
    metadata = read_clip_pickle(ego.egoclip_pickle)
    assert len(metadata) == 32
    dataset = EgoClipDataset(metadata, ego.video_roots["full"])
    drawn = set()
    for epoch in range(8):
        dataset.set_epoch(epoch)
        drawn.add(dataset[0]["caption"])
    assert len(drawn) == 2  # both sentences of the row's narration list get drawn

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps([("uid", 0.0, 1.0, Exploit())]))
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global (posix|nt)\.system in EgoClip metadata pickle"):
        read_clip_pickle(bad)


def test_bad_rows_raise_naming_them_or_are_skipped_and_counted(tmp_path, caplog):
    path = write_tsv(
        tmp_path / "egoclip.csv",
        [
            '0\tuid-a\t100.0\t1.0\t2.0\t"#C C opens a door"\t[1]\t"[2, 3]"',
            '1\tuid-a\t100.0\t5.0\t5.0\t"#C C clip_end equals clip_start"\t[1]\t[2]',
            '2\tuid-a\t100.0\t3.0\t4.0\t""\t[1]\t[2]',
            "3\tuid-a\t100.0\t3.0",
            '4\tuid-a\t10.0\t30.0\t40.0\t"#C C past the end of the video"\t[1]\t[2]',
            '5\tuid-b\t100.0\tnan\t4.0\t"#C C no start"\t[1]\t[2]',
        ],
    )
    with pytest.raises(ValueError, match=r"missing or extra columns \(first: '3\\tuid-a") as error:
        read_egoclip_tsv(path)
    assert "on_bad_row='skip'" in str(error.value)
    with caplog.at_level("WARNING"):
        metadata = read_egoclip_tsv(path, on_bad_row="skip")
    assert metadata.table["row"].to_pylist() == [0]
    assert sum(metadata.skipped.values()) == 5
    log = caplog.text
    for expected in (
        "clip_end <= clip_start (first: 1)",
        "an empty caption (first: 2)",
        "video is shorter than the clip) (first: 4)",
        "non-finite clip_start / clip_end (first: 5)",
    ):
        assert expected in log
    missing = write_tsv(tmp_path / "no_text.csv", ["0\tuid\t1.0\t0.0\t1.0\tx\t[1]\t[2]"])
    missing.write_text(missing.read_text().replace("clip_text", "caption"))
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['clip_text'\]"):
        read_egoclip_tsv(missing)


def straddling_row(metadata, length: float) -> int:
    """A clip that crosses a multiple of `length` seconds."""
    table = metadata.table
    for index, (start, end) in enumerate(zip(table["clip_start"].to_pylist(), table["clip_end"].to_pylist())):
        if math.floor(start / length) != math.floor((end - 1e-6) / length):
            return index
    raise AssertionError(f"no demo clip straddles a {length} s boundary")


@pytest.mark.parametrize("layout", ["egovlp", "lavila", "avion"])
def test_straddling_clips_read_across_chunks_like_the_full_video(ego, processor4, layout):
    metadata = read_egoclip_tsv(ego.egoclip_tsv)
    full = EgoClipDataset(metadata, ego.video_roots["full"], "full", train=False)
    chunked = EgoClipDataset(metadata, ego.video_roots[layout], layout, chunk_seconds=CHUNKS[layout], train=False)
    index = straddling_row(metadata, CHUNKS[layout])
    reference = EgoClipCollator(processor4, full)([full[index]])["pixel_values_videos"]
    pixels = EgoClipCollator(processor4, chunked)([chunked[index]])["pixel_values_videos"]
    assert pixels.shape == reference.shape == (1, 4, 3, 16, 16)
    # chunks were re-encoded from the full video: the same frames up to H.264 noise, never black or frame 0 filler
    if layout != "egovlp":  # LaViLa / AVION number frames over the whole video: the same sampled frames
        assert (pixels - reference).abs().mean() < 0.1
    assert pixels.std() > 0.1


def test_missing_chunk_raises_naming_the_row_or_is_skipped(ego, processor4, tmp_path):
    import shutil

    metadata = read_egoclip_tsv(ego.egoclip_tsv)
    root = tmp_path / "avion"
    shutil.copytree(ego.video_roots["avion"], root)
    index = straddling_row(metadata, 15)
    uid = metadata.table["video_uid"][index].as_py()
    os.remove(root / f"{uid}.mp4" / "15.mp4")
    dataset = EgoClipDataset(metadata, str(root), "avion", train=True)
    with pytest.raises(BadClipError, match=rf"EgoClip row {index} \(video_uid {uid}.*avion chunk\(s\) missing"):
        EgoClipCollator(processor4, dataset)([dataset[index]])
    collator = EgoClipCollator(processor4, dataset, on_bad_row="skip")
    batch = collator([dataset[index], dataset[0]])
    assert collator.skipped == 1 and batch["pixel_values_videos"].shape[0] == 1


def test_two_process_pretraining_lowers_the_loss_and_reports_zero_shot(ego, tmp_path):
    """A few InfoNCE steps of examples/pretrain_egoclip.py on 2 CPU processes (gloo, DDP, global negatives)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    accelerate = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    flags = [
        "--metadata",
        ego.egoclip_tsv,
        "--video-root",
        ego.video_roots["avion"],
        "--video-layout",
        "avion",
        "--model",
        TINY_MIR_CONFIG,
        "--init",
        "random",
        "--ek100-csv",
        ego.ek100.test_csv,
        "--ek100-sentence-csv",
        ego.ek100.test_sentence_csv,
        "--ek100-video-root",
        ego.ek100.video_root,
        "--egomcq-json",
        ego.egomcq_json,
        "--egomcq-video-root",
        ego.egomcq_video_root,
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
        "1e-3",
        "--report-to",
        "none",
        "--save-strategy",
        "no",
        "--dataloader-num-workers",
        "0",
        "--seed",
        "0",
    ]
    script = os.path.join(REPO_ROOT, "examples", "pretrain_egoclip.py")
    result = subprocess.run(
        [*accelerate, script, *flags], env=env, cwd=tmp_path, timeout=300, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(x) for x in re.search(r"Training loss every 3 steps: (.*)", result.stdout).group(1).split(", ")]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    for metric in ("ek100_mir_avg_mAP", "egomcq_inter_video_accuracy", "egomcq_intra_video_accuracy"):
        assert re.search(rf"{metric}\s+before:\s+[\d.]+\s+after:\s+[\d.]+", result.stdout), result.stdout
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tmp_path / "run", trust_remote_code=True)
    assert model.config.vision_config.num_frames == 4
    assert torch.isclose(model.logit_scale.detach(), torch.tensor(math.log(20.0)))  # temperature 0.05, frozen
    print(result.stdout[-2500:])


def test_four_frame_model_fine_tunes_and_evaluates_at_sixteen(processor4):
    """Frame-count transfer: temporal_embed is interpolated to 16 frames and RoPE rebuilt; the 16-frame model runs."""
    from tests.conftest import tiny_mir_model

    model = tiny_mir_model(num_frames=4)
    with torch.no_grad():
        model.vision_model.embeddings.temporal_embed.normal_()
    before = model.vision_model.embeddings.temporal_embed.detach().clone()
    model.resize_num_frames(16)
    after = model.vision_model.embeddings.temporal_embed
    assert after.shape[-2] == 16 and model.config.vision_config.num_frames == 16
    torch.testing.assert_close(after[..., 0, :], before[..., 0, :])
    torch.testing.assert_close(after[..., -1, :], before[..., -1, :])
    pixels = torch.randn(2, 16, 3, 16, 16)
    ids = processor4(text=["#C C move cup left", "#C C shrink bowl"], return_tensors="pt")
    out = model(pixel_values_videos=pixels, **ids)
    out.video_embeds.sum().backward()  # fine-tunable at 16 frames
    assert after.grad is not None and torch.isfinite(after.grad).all()


def test_processes_that_would_each_train_alone_are_refused(tmp_path, monkeypatch):
    """An FSDP accelerate config on a machine without GPUs starts N processes that accelerate leaves undistributed
    (DistributedType.NO, world size 1): each would silently train alone. The trainer refuses (docs/pretraining.md)."""
    from types import SimpleNamespace

    import modeling_eva02at.training.trainer as trainer_module
    from modeling_eva02at.training.arguments import Eva02AtTrainingArguments
    from modeling_eva02at.training.trainer import Eva02AtTrainer
    from tests.conftest import tiny_mir_model

    args = Eva02AtTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", loss="infonce")
    Eva02AtTrainer(model=tiny_mir_model(), args=args)  # one process, no process group: fine
    launched = SimpleNamespace(is_available=lambda: True, is_initialized=lambda: True, get_world_size=lambda: 2)
    monkeypatch.setattr(trainer_module, "dist", launched)
    with pytest.raises(
        RuntimeError,
        match=r"^2 processes were launched but the Trainer runs on 1 .*FSDP through "
        r"accelerate needs GPUs .*--multi_gpu",
    ):
        Eva02AtTrainer(model=tiny_mir_model(), args=args)
