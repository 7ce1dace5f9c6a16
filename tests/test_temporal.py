"""The two sources of temporal order (the temporal RoPE and the learnable temporal embedding), each removable, and
the demo's motion-verb accuracies.

Without either source, every frame's tokens get the same positional treatment, so the encoder sees a set of frames:
a clip and its time reversal must give the same embedding (up to float summation order). That is checked exactly
here, instead of hoping that a trained ablation lands at chance.
"""

import json

import numpy as np
import pytest
import torch

from modeling_eva02at import Eva02AtConfig, Eva02AtModel
from modeling_eva02at.demo.motion import DIRECTION_PAIRS, motion_verb_accuracy, verb_probe_captions
from modeling_eva02at.demo.scene import DEMO_NOUNS, DEMO_VERBS
from modeling_eva02at.modeling_eva02at import interpolate_temporal_embed, st_rope_angles


def video_model(rope: bool, embedding: bool, frames: int = 4) -> Eva02AtModel:
    config = Eva02AtConfig(
        projection_dim=16,
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=16,
            patch_size=4,
            num_frames=frames,
            use_temporal_rope=rope,
            use_temporal_embedding=embedding,
        ),
        text_config=dict(
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            vocab_size=64,
            max_position_embeddings=16,
            bos_token_id=62,
            eos_token_id=63,
            pad_token_id=0,
        ),
    )
    torch.manual_seed(0)
    model = Eva02AtModel(config).eval()
    if embedding:  # the init is small (std 0.02); a trained embedding is not
        with torch.no_grad():
            model.vision_model.embeddings.temporal_embed.normal_(std=1.0)
    return model


def clip_and_reversal(frames: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.randn(2, frames, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return pixels, pixels.flip(1)


def embeddings(model, pixels) -> torch.Tensor:
    with torch.no_grad():
        return model.get_video_features(pixel_values_videos=pixels).pooler_output


def test_without_temporal_information_a_reversed_clip_gives_the_same_embedding():
    model = video_model(rope=False, embedding=False)
    assert model.vision_model.embeddings.temporal_embed is None
    assert "vision_model.embeddings.temporal_embed" not in model.state_dict()
    clip, reversed_clip = clip_and_reversal()
    forward, backward = embeddings(model, clip), embeddings(model, reversed_clip)
    torch.testing.assert_close(backward, forward, atol=1e-5, rtol=0)
    # Any order of the frames, not only the reversal: the tokens are a set over frames.
    shuffled = embeddings(model, clip[:, [2, 0, 3, 1]])
    torch.testing.assert_close(shuffled, forward, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rope, embedding", [(True, False), (False, True), (True, True)])
def test_each_source_of_temporal_order_tells_a_clip_from_its_reversal(rope, embedding):
    model = video_model(rope=rope, embedding=embedding)
    clip, reversed_clip = clip_and_reversal()
    difference = (embeddings(model, clip) - embeddings(model, reversed_clip)).abs().max().item()
    assert difference > 1e-3, difference  # 100x the tolerance the set-over-frames model meets


@pytest.mark.parametrize(
    "head_dim, frames, row_range, column_max", [(24, 4, (0.065, 3.0), 0.03), (64, 16, (0.2, 15.0), 0.15)]
)
def test_time_shares_the_row_pairs_of_the_rope_not_the_column_pairs(head_dim, frames, row_range, column_max):
    """docs/demo.md's table: over a clip, the temporal angle is large in the pairs that carry the row and at most
    `column_max` in those that carry the column, read off the model's own angle table (last frame minus first, at
    the same patch)."""
    angles = st_rope_angles(frames, (4, 4), head_dim).view(frames, 16, head_dim // 2).double()
    over_clip = (angles[-1] - angles[0])[0]  # the same at every patch: the spatial part cancels
    torch.testing.assert_close((angles[-1] - angles[0]), over_clip.expand(16, -1), atol=1e-5, rtol=0)
    quarter = head_dim // 4
    rows, columns = over_clip[:quarter], over_clip[quarter:]
    assert rows.min() == pytest.approx(row_range[0], abs=0.005) and rows.max() == pytest.approx(row_range[1])
    assert columns.max() == pytest.approx(column_max, abs=0.005)  # 15 * 10000^(-1/2) = 0.15 at B/16
    # and the spatial part: the row pairs change only with the row, the column pairs only with the column
    spatial = angles[0].view(4, 4, head_dim // 2)
    assert torch.equal(spatial[:, :1, :quarter].expand(4, 4, quarter), spatial[..., :quarter])
    assert torch.equal(spatial[:1, :, quarter:].expand(4, 4, quarter), spatial[..., quarter:])


def test_the_switches_are_saved_and_loaded(tmp_path):
    model = video_model(rope=True, embedding=False)
    model.save_pretrained(tmp_path)
    with open(tmp_path / "config.json") as handle:
        vision = json.load(handle)["vision_config"]
    assert vision["use_temporal_rope"] is True and vision["use_temporal_embedding"] is False
    loaded = Eva02AtModel.from_pretrained(tmp_path).eval()
    assert loaded.vision_model.embeddings.temporal_embed is None
    clip, _ = clip_and_reversal()
    torch.testing.assert_close(embeddings(loaded, clip), embeddings(model, clip), atol=0, rtol=0)


def test_resize_num_frames_equals_the_forward_time_interpolation(tmp_path):
    """A 4-frame model made a 16-frame one: the embedding is interpolated once, exactly as a 16-frame forward of the
    4-frame model does, so the outputs are identical, and the resized model saves and loads at 16 frames."""
    model = video_model(rope=True, embedding=True, frames=4)
    before = model.vision_model.embeddings.temporal_embed.detach().clone()
    clip = torch.randn(1, 16, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    at_sixteen = embeddings(model, clip)
    model.resize_num_frames(16)
    assert model.config.vision_config.num_frames == 16
    assert model.vision_model.embeddings.temporal_embed.shape == (16, 32)
    assert model.vision_model.embeddings.temporal_embed.requires_grad
    torch.testing.assert_close(
        model.vision_model.embeddings.temporal_embed.detach(), interpolate_temporal_embed(before, 16), atol=0, rtol=0
    )
    torch.testing.assert_close(embeddings(model, clip), at_sixteen, atol=1e-6, rtol=0)
    model.save_pretrained(tmp_path)
    loaded = Eva02AtModel.from_pretrained(tmp_path).eval()
    assert loaded.config.vision_config.num_frames == 16
    torch.testing.assert_close(embeddings(loaded, clip), at_sixteen, atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------------------------------
# The demo's motion-verb accuracies
# ---------------------------------------------------------------------------------------------------------------------


def test_verb_probe_captions_name_each_verb_with_the_clips_own_nouns():
    captions = verb_probe_captions([[0], [1, 2]])
    assert len(captions) == 2 * len(DEMO_VERBS)
    cup, plate, bowl = (DEMO_NOUNS[i].key for i in range(3))
    assert captions[:2] == [f"move {cup} left", f"move {cup} right"]
    assert captions[len(DEMO_VERBS) + 5] == f"shrink {plate} and {bowl}"


def test_motion_verb_accuracy_against_a_direct_count():
    """Scores built by hand: clip 0 (left) prefers right, clip 1 (right) right, clip 2 (up) prefers enlarge over up
    but up over down, clip 3 (shrink) shrink."""
    num_verbs = len(DEMO_VERBS)
    verbs = np.array([0, 1, 2, 5])
    wanted = np.array(
        [
            [0.5, 0.9, 0.0, 0.0, 0.0, 0.0],
            [0.1, 0.8, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.6, 0.2, 0.7, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.3, 0.4],
        ]
    )
    # Unit video vectors e_i and caption vectors whose dot product with e_i is the wanted score.
    videos = np.eye(4, 8)
    captions = np.zeros((4 * num_verbs, 8))
    for clip in range(4):
        captions[clip * num_verbs : (clip + 1) * num_verbs, clip] = wanted[clip]
    result = motion_verb_accuracy(videos, captions, verbs)
    assert result["verb_top1"] == pytest.approx(2 / 4)
    assert result["top1/move-left"] == 0.0 and result["top1/move-right"] == 1.0
    assert result["top1/move-up"] == 0.0 and result["top1/shrink"] == 1.0
    assert "top1/enlarge" not in result
    assert result["pair/left/right"] == pytest.approx(1 / 2)
    assert result["pair/up/down"] == 1.0 and result["pair/enlarge/shrink"] == 1.0
    assert set(DIRECTION_PAIRS) == {"left/right", "up/down", "enlarge/shrink"}
    with pytest.raises(ValueError, match=r"caption_embeds has shape \(4, 8\)"):
        motion_verb_accuracy(videos, captions[:4], verbs)


# ---------------------------------------------------------------------------------------------------------------------
# benchmarks/ablation_temporal.py: the runs it makes, its table, and resuming an interrupted ablation
# ---------------------------------------------------------------------------------------------------------------------


def load_ablation_script():
    import importlib.util
    import os

    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "ablation_temporal.py"
    )
    spec = importlib.util.spec_from_file_location("ablation_temporal", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ablation_trains_each_variant_and_seed_once_and_resumes(tmp_path, monkeypatch):
    ablation = load_ablation_script()
    calls = []

    def fake_train_once(flags, seed, epochs, demo_dir):
        calls.append((tuple(flags), seed, epochs))
        if len(calls) == 4:
            raise KeyboardInterrupt  # interrupted during the 4th run
        temporal = ("--no-temporal-rope" not in flags) + ("--no-temporal-embedding" not in flags)
        return {name: 0.1 * temporal + 0.01 * seed for name in ablation.METRICS}

    monkeypatch.setattr(ablation, "train_once", fake_train_once)
    argv = ["--output", str(tmp_path), "--epochs", "2", "--seeds", "0", "1"]
    with pytest.raises(KeyboardInterrupt):
        ablation.main(argv)
    with open(tmp_path / "ablation_temporal.json") as handle:
        saved = json.load(handle)
    assert {variant: [run["seed"] for run in runs] for variant, runs in saved["runs"].items()} == {
        "both": [0],
        "rope only": [0],
        "embedding only": [0],
    }  # the three finished runs are kept
    assert not (tmp_path / "ablation_temporal.md").exists()

    ablation.main(argv)  # resumes: only the five missing runs (calls[3] is the interrupted one)
    assert [(flags, seed) for flags, seed, _ in calls[4:]] == [
        (("--no-temporal-rope", "--no-temporal-embedding"), 0),
        ((), 1),
        (("--no-temporal-embedding",), 1),
        (("--no-temporal-rope",), 1),
        (("--no-temporal-rope", "--no-temporal-embedding"), 1),
    ]
    assert all(epochs == 2.0 for *_, epochs in calls)
    table = (tmp_path / "ablation_temporal.md").read_text()
    # both sources, seeds 0 and 1: values 0.20 and 0.21, mean 20.5 %, population std 0.5 %
    assert "| both | " + " | ".join(["20.5 ± 0.5"] * len(ablation.METRICS)) + " |" in table
    assert "| neither | " + " | ".join(["0.5 ± 0.5"] * len(ablation.METRICS)) + " |" in table
    assert "2 variants" not in table and "4 variants x 2 seeds" in table
