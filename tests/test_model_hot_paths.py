"""The inference hot paths of the EVA02-AT dual encoder: no host reads of tensor values, whole-graph compilation,
attention weights on demand without touching other calls."""

import threading

import pytest
import torch

from modeling_eva02at import Eva02AtModel

from .host_reads import HOST_SYNC_OPS, host_reads
from .test_model import tiny_config, tiny_inputs


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Eva02AtModel(tiny_config()).eval()


# ---------------------------------------------------------------------------------------------------------------------
# No host reads
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_mask", [True, False], ids=["padding-mask", "no-mask"])
def test_inference_forward_reads_no_tensor_value_on_the_host(model, with_mask):
    """No device-to-host sync in an inference forward: the token ids are not checked by value (an out-of-vocabulary
    id is named only once the embedding lookup fails), and a padding mask reaches the text tower already in 4D, so
    transformers does not test it on the host to decide whether sdpa may skip it."""
    pixels, input_ids, attention_mask = tiny_inputs()
    mask = attention_mask if with_mask else None
    calls = {
        "get_text_features": lambda: model.get_text_features(input_ids, mask),
        "get_video_features": lambda: model.get_video_features(pixels),
        "forward": lambda: model(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=mask),
    }
    with torch.no_grad():
        for name, call in calls.items():
            counts, reads = host_reads(call)
            assert counts == dict.fromkeys(HOST_SYNC_OPS, 0), (name, counts)
            assert reads == [], (name, reads)


def test_out_of_vocabulary_ids_are_named_after_the_lookup_fails(model):
    input_ids = torch.tensor([[118, 5, 120, 119]])
    with pytest.raises(ValueError, match=r"input_ids holds token id 120, .*vocab_size=120") as error:
        model.get_text_features(input_ids)
    assert isinstance(error.value.__cause__, IndexError)  # the embedding lookup's own error, kept as the cause


# ---------------------------------------------------------------------------------------------------------------------
# Whole-graph compilation
# ---------------------------------------------------------------------------------------------------------------------


def assert_compiles_whole(fn, *args):
    """No graph break under dynamo, and the fullgraph-compiled function equals eager to 1e-5. The aot_eager backend
    runs the captured graph through AOTAutograd (seconds) rather than generating C++ (half a minute per model here)."""
    torch._dynamo.reset()
    try:
        explanation = torch._dynamo.explain(fn)(*args)
        reasons = "\n".join(f"{reason.reason}\n  at {reason.user_stack[-1:]}" for reason in explanation.break_reasons)
        assert explanation.graph_break_count == 0, f"{explanation.graph_break_count} graph breaks:\n{reasons}"
        assert explanation.graph_count == 1
        # the RoPE's real evaluation under compile: inductor would leave complex multiplies to eager kernels
        complex_ops = [
            str(node.target)
            for graph in explanation.graphs
            for node in graph.graph.nodes
            if "complex" in str(node.target) or "polar" in str(node.target)
        ]
        assert complex_ops == [], complex_ops
        torch._dynamo.reset()
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")(*args)
        expected = fn(*args)
        torch.testing.assert_close(compiled.last_hidden_state, expected.last_hidden_state, atol=1e-5, rtol=0)
        torch.testing.assert_close(compiled.pooler_output, expected.pooler_output, atol=1e-5, rtol=0)
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("frames", [4, 6], ids=["default-table", "other-frame-count"])
def test_video_tower_compiles_whole(model, frames):
    pixels = torch.randn(2, frames, 3, 32, 32)
    with torch.no_grad():
        assert_compiles_whole(model.vision_model, pixels)


@pytest.mark.parametrize("with_mask", [True, False], ids=["padding-mask", "no-mask"])
def test_text_features_compile_whole(model, with_mask):
    _, input_ids, attention_mask = tiny_inputs()
    with torch.no_grad():
        assert_compiles_whole(model.get_text_features, input_ids, attention_mask if with_mask else None)


# ---------------------------------------------------------------------------------------------------------------------
# Attention weights on demand
# ---------------------------------------------------------------------------------------------------------------------


def test_attention_weights_for_one_call_leave_concurrent_calls_on_sdpa(model):
    """A call with output_attentions=True computes eager weights for itself only: the model's configuration is never
    switched, so a call running at the same time in another thread returns no weights and the same outputs."""
    pixels, input_ids, attention_mask = tiny_inputs()
    inputs = dict(input_ids=input_ids, pixel_values_videos=pixels, attention_mask=attention_mask)
    with torch.no_grad():
        reference = model(**inputs)
    failures, start = [], threading.Barrier(2)

    def run(output_attentions):
        start.wait()
        try:
            for _ in range(10):
                with torch.no_grad():
                    out = model(**inputs, output_attentions=output_attentions)
                text_weights = out.text_model_output.attentions
                video_weights = out.vision_model_output.attentions
                if output_attentions:
                    assert len(text_weights) == 2 and len(video_weights) == 2
                else:
                    assert text_weights is None and video_weights is None
                    torch.testing.assert_close(out.logits_per_video, reference.logits_per_video, atol=1e-5, rtol=0)
                assert model.text_model.config._attn_implementation == "sdpa"
                assert model.vision_model.config._attn_implementation == "sdpa"
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=run, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures


def test_a_training_forward_after_an_inference_forward_takes_gradients():
    """RoPE tables cached under torch.inference_mode are inference tensors, which autograd cannot save: a training
    step after a zero-shot evaluation (or a pipeline call) must get tables of its own, and the reverse order too."""
    torch.manual_seed(0)
    model = Eva02AtModel(tiny_config())
    pixels, input_ids, attention_mask = tiny_inputs()
    for clip in (pixels, pixels[:, :1]):  # the default table, and one computed for another frame count
        with torch.inference_mode():
            before = model.get_video_features(clip).pooler_output
        for _ in range(2):  # train, then again after another inference call
            model.zero_grad()
            model.get_video_features(clip).pooler_output.sum().backward()
            assert model.vision_model.embeddings.patch_embedding.weight.grad is not None
            with torch.inference_mode():
                again = model.get_video_features(clip).pooler_output
        torch.testing.assert_close(again, before, rtol=0, atol=0)
