"""EgoClip pretraining: metadata readers, Ego4D video layouts, bad input, and a 2-process run of the script.

InfoNCE / EgoNCE with global negatives across 2 ranks equal to one process on the concatenated batch is
tests/test_trainer.py::test_two_processes_equal_one_process_on_the_concatenated_batch (the same compute_loss).
"""

import logging
import math
import os
import pickle
import re
import shutil

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
from modeling_eva02at.video_reading_eva02at import sample_frame_indices
from tests import video_helpers as sv
from tests.conftest import REPO_ROOT, TINY_MIR_CONFIG, run_on_two_cpu_processes


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
    with pytest.raises(
        pickle.UnpicklingError,
        match=r"^EgoClip metadata pickle .*bad.pkl cannot be loaded: forbidden global (posix|nt)\.system",
    ):
        read_clip_pickle(bad)


def test_bad_rows_raise_naming_their_file_lines_or_are_skipped_and_counted(tmp_path, caplog):
    path = write_tsv(
        tmp_path / "egoclip.csv",
        [
            '0\tuid-a\t100.0\t1.0\t2.0\t"#C C opens a door"\t[1]\t"[2, 3]"',  # line 2
            '1\tuid-a\t100.0\t5.0\t5.0\t"#C C clip_end equals clip_start"\t[1]\t[2]',
            '2\tuid-a\t100.0\t3.0\t4.0\t""\t[1]\t[2]',
            "3\tuid-a\t100.0\t3.0",  # line 5
            "",  # a blank line is ignored, and the lines after it keep their numbers
            '4\tuid-a\t10.0\t30.0\t40.0\t"#C C past the end of the video"\t[1]\t[2]',  # line 7
            '5\tuid-b\t100.0\tnan\t4.0\t"#C C no start"\t[1]\t[2]',
            '6\tuid-b\t100.0\t-0.4\t0.6\t"#C C starts before the video"\t[1]\t[2]',  # clamped to 0, kept
            '7\tuid-b\t100.0\t-0.9\t-0.2\t"#C C ends before the video"\t[1]\t[2]',  # line 10: ends before 0
        ],
    )
    with pytest.raises(ValueError, match=r"missing or extra columns \(first: line 5 '3\\tuid-a") as error:
        read_egoclip_tsv(path)
    assert "on_bad_row='skip' (--on-bad-row skip)" in str(error.value)
    with caplog.at_level(logging.INFO, logger="modeling_eva02at"):
        metadata = read_egoclip_tsv(path, on_bad_row="skip")
    assert metadata.table["row"].to_pylist() == [0, 6] and metadata.table["line"].to_pylist() == [2, 9]
    assert metadata.table["clip_start"].to_pylist() == [1.0, 0.0] and metadata.num_clamped == 1
    assert sum(metadata.skipped.values()) == 6
    log = caplog.text
    for expected in (
        "clip_end <= clip_start (first: line 3 (clip_idx 1), line 10 (clip_idx 7))",
        "an empty caption (first: line 4 (clip_idx 2))",
        "video is shorter than the clip) (first: line 7 (clip_idx 4))",
        "non-finite clip_start / clip_end (first: line 8 (clip_idx 5))",
        "1 rows start before 0 s; clamped to 0 as EgoVLP does",
    ):
        assert expected in log
    missing = write_tsv(tmp_path / "no_text.csv", ["0\tuid\t1.0\t0.0\t1.0\tx\t[1]\t[2]"])
    missing.write_text(missing.read_text().replace("clip_text", "caption"))
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['clip_text'\]"):
        read_egoclip_tsv(missing)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"video_uid\tclip_start\tclip_end\tclip_text\nv\tabc\t3.0\tx\n", "does not parse: .*invalid value 'abc'"),
        (b"video_uid\tclip_start\tclip_end\tclip_text\nv\t1.0\t3.0\t\xff\xfe\n", "is not a UTF-8 text file"),
        (b"\xff\xfe\x00\x01binary", "is not a UTF-8 text file"),
    ],
    ids=["number column", "not UTF-8", "binary"],
)
def test_a_file_that_does_not_parse_is_named(tmp_path, content, message):
    path = tmp_path / "egoclip.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"^EgoClip metadata .*egoclip.csv {message}"):
        read_egoclip_tsv(path, on_bad_row="skip")


def test_clips_starting_before_the_video_are_clamped_to_0_not_refused(ego, processor4, tmp_path, caplog):
    """EgoClip's windows around a narration near a video's start begin before 0 s; EgoVLP clamps them to 0. The
    default on_bad_row="raise" must read them, and the clip must load."""
    lines = open(ego.egoclip_tsv).read().splitlines()
    columns = lines[0].split("\t")
    first = lines[1].split("\t")
    first[columns.index("clip_start")] = "-1.5"
    path = tmp_path / "egoclip.csv"
    path.write_text("\n".join([lines[0], "\t".join(first), *lines[2:]]) + "\n")
    with caplog.at_level(logging.INFO, logger="modeling_eva02at"):
        metadata = read_egoclip_tsv(path)
    assert len(metadata) == 32 and metadata.table["clip_start"][0].as_py() == 0.0
    assert f"{path}: 1 rows start before 0 s; clamped to 0 as EgoVLP does" in caplog.text
    dataset = EgoClipDataset(metadata, ego.video_roots["full"], train=False)
    assert EgoClipCollator(processor4, dataset)([dataset[0]])["pixel_values_videos"].shape == (1, 4, 3, 16, 16)

    clips = pickle.dumps([("uid", -0.5, 2.0, "#C C starts early"), ("uid", -2.0, -1.0, "#C C ends before 0 s")])
    (tmp_path / "clips.pkl").write_bytes(clips)
    with pytest.raises(ValueError, match=r"1 with clip_end <= clip_start \(first: item 1\)"):
        read_clip_pickle(tmp_path / "clips.pkl")
    metadata = read_clip_pickle(tmp_path / "clips.pkl", on_bad_row="skip")
    assert metadata.table["clip_start"].to_pylist() == [0.0] and metadata.num_clamped == 1


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
    assert (pixels - reference).abs().mean() < 0.1
    assert pixels.std() > 0.1


# Frame-numbered video in every Ego4D layout: 45 s at 10 fps, EgoVLP and AVION chunks of 15 s, LaViLa's of 9 s, so that
# the video ends where its last chunk ends in every chunked layout.
NUMBERED_CHUNKS = {"egovlp": 15, "lavila": 9, "avion": 15}
NUMBERED_CLIPS = [  # (clip_start, clip_end): video_dur is 45.0
    (13.0, 17.5),  # straddles 15 s
    (8.0, 20.0),  # straddles 9 s, 15 s and 18 s
    (29.5, 30.5),  # frame 300: the first frame of EgoVLP's / AVION's third chunk
    (-0.5, 2.0),  # starts before the video: clamped to 0
    (36.0, 45.0),  # ends where the video and its last chunk end
    (44.0, 45.6),  # ends past the video (within video_dur + 1 s)
]


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """(metadata path, layout -> video root) of a frame-numbered video in the four layouts."""
    root = tmp_path_factory.mktemp("numbered")
    frames, uid = sv.make_frames(450), "0b1c"
    roots = {layout: str(root / layout) for layout in ("full", *NUMBERED_CHUNKS)}
    os.makedirs(roots["full"])
    sv.write_video(os.path.join(roots["full"], f"{uid}.mp4"), frames, 10.0)
    sv.write_egovlp_chunks(os.path.join(roots["egovlp"], uid), frames, 10.0, NUMBERED_CHUNKS["egovlp"])
    for layout in ("lavila", "avion"):
        sv.write_avion_chunks(os.path.join(roots[layout], f"{uid}.mp4"), frames, 10.0, NUMBERED_CHUNKS[layout], "mp4")
    rows = [
        f'{i}\t{uid}\t45.0\t{start}\t{end}\t"#C C clip {i}"\t[1]\t[2]' for i, (start, end) in enumerate(NUMBERED_CLIPS)
    ]
    return str(write_tsv(root / "egoclip.csv", rows)), roots


@pytest.fixture(scope="module")
def numbered_processor():
    """Whole 64x48 frames cropped to their central 48x48 square (where the frame numbers are), 8 frames a clip."""
    from modeling_eva02at import Eva02AtProcessor

    processor = Eva02AtProcessor.from_pretrained(os.path.join(REPO_ROOT, "hub_configs", "eva02at-b16"))
    video = processor.image_processor
    video.num_frames, video.size, video.crop_size = 8, 48, 48
    return processor


def collated_frame_numbers(processor, dataset) -> list[list[int]]:
    video = processor.image_processor
    batch = EgoClipCollator(processor, dataset)([dataset[index] for index in range(len(dataset))])
    pixels = sv.unnormalize(batch["pixel_values_videos"], video.image_mean, video.image_std, video.rescale_factor)
    return [sv.read_frame_numbers(clip) for clip in pixels]


@pytest.mark.parametrize("train", [False, True])
def test_every_layout_samples_the_frames_of_the_full_video(numbered, numbered_processor, train):
    """The same clip gets the same frame indices from every layout, jittered or not: a clip across chunks is one range
    of the whole video's frames (not frames shared among the chunks), a chunk's first frame is read from it, and a clip
    ending where the video's last chunk ends needs no chunk after it."""
    path, roots = numbered
    metadata = read_egoclip_tsv(path)
    full = collated_frame_numbers(numbered_processor, EgoClipDataset(metadata, roots["full"], train=train))
    if not train:
        for numbers, (start, end) in zip(full, NUMBERED_CLIPS):
            first, stop = round(max(start, 0.0) * 10), min(round(end * 10), 450)
            assert numbers == sample_frame_indices(first, stop, 8).tolist(), (start, end)
    for layout, length in NUMBERED_CHUNKS.items():
        dataset = EgoClipDataset(metadata, roots[layout], layout, chunk_seconds=length, train=train)
        assert collated_frame_numbers(numbered_processor, dataset) == full, layout


def test_missing_videos_are_found_when_the_dataset_is_built_naming_their_file_lines(ego, tmp_path, caplog):
    metadata = read_egoclip_tsv(ego.egoclip_tsv)
    root = tmp_path / "avion"
    shutil.copytree(ego.video_roots["avion"], root)
    uid = metadata.table["video_uid"][straddling_row(metadata, 15)].as_py()
    os.remove(root / f"{uid}.mp4" / "15.mp4")
    table = metadata.table.to_pydict()
    needing = [  # the rows that read from the removed chunk: demo rows are line row + 2, clip_idx row
        row
        for row, (video, start, end) in enumerate(zip(table["video_uid"], table["clip_start"], table["clip_end"]))
        if video == uid and start < 30 and end > 15
    ]
    chunk = os.path.join(str(root), f"{uid}.mp4", "15.mp4")
    with pytest.raises(ValueError) as error:
        EgoClipDataset(metadata, str(root), "avion")
    assert (
        f"{len(needing)} with a missing avion chunk file under {root} (first: line {needing[0] + 2} "
        f"(clip_idx {needing[0]}): {chunk}"
    ) in str(error.value)
    assert "--on-bad-row skip" in str(error.value)
    with caplog.at_level("WARNING"):
        dataset = EgoClipDataset(metadata, str(root), "avion", on_bad_row="skip")
    assert len(dataset) == 32 - len(needing) and sum(dataset.metadata.skipped.values()) == len(needing)
    assert f"skipped {len(needing)} bad rows" in caplog.text
    os.remove(root / f"{uid}.mp4" / "0.mp4")  # the video is gone altogether
    with pytest.raises(ValueError, match=rf"line \d+ \(clip_idx \d+\): {re.escape(os.path.join(str(root), uid))}"):
        EgoClipDataset(metadata, str(root), "avion")
    with pytest.raises(FileNotFoundError, match=r"EgoClip video root .*nowhere is not a folder \(--video-root\)"):
        EgoClipDataset(metadata, str(tmp_path / "nowhere"), "avion")


def test_a_full_video_missing_is_named_with_its_line(ego, tmp_path):
    metadata = read_egoclip_tsv(ego.egoclip_tsv)
    root = tmp_path / "full"
    shutil.copytree(ego.video_roots["full"], root)
    uid = metadata.table["video_uid"][5].as_py()
    os.remove(root / f"{uid}.mp4")
    first = metadata.table["video_uid"].to_pylist().index(uid)
    with pytest.raises(
        ValueError,
        match=rf"with a missing video file under {re.escape(str(root))} \(first: line {first + 2} \(clip_idx "
        rf"{first}\): {re.escape(str(root / uid))}.mp4",
    ):
        EgoClipDataset(metadata, str(root))


def test_a_chunk_gone_after_the_check_raises_naming_the_file_line_or_is_skipped(ego, processor4, tmp_path):
    metadata = read_egoclip_tsv(ego.egoclip_tsv)
    root = tmp_path / "avion"
    shutil.copytree(ego.video_roots["avion"], root)
    index = straddling_row(metadata, 15)
    uid = metadata.table["video_uid"][index].as_py()
    dataset = EgoClipDataset(metadata, str(root), "avion", train=True)
    os.remove(root / f"{uid}.mp4" / "15.mp4")  # after the dataset's check: found in the worker
    with pytest.raises(
        BadClipError,
        match=rf"^EgoClip metadata {re.escape(ego.egoclip_tsv)}, line {index + 2} \(clip_idx {index}\) "
        rf"\(video_uid {uid}, .*avion chunk\(s\) missing: .*15.mp4; --on-bad-row skip drops such clips",
    ):
        EgoClipCollator(processor4, dataset)([dataset[index]])
    collator = EgoClipCollator(processor4, dataset, on_bad_row="skip")
    batch = collator([dataset[index], dataset[0]])
    assert collator.skipped == 1 and batch["pixel_values_videos"].shape[0] == 1


def test_two_process_pretraining_lowers_the_loss_and_reports_zero_shot(ego, tmp_path):
    """A few InfoNCE steps of examples/pretrain_egoclip.py on 2 CPU processes (gloo, DDP, global negatives)."""
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
    result = run_on_two_cpu_processes(script, *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = re.search(r"Training loss by step: (.*)", result.stdout).group(1).split(", ")
    losses = [float(entry.split(": ")[1]) for entry in logged]
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
