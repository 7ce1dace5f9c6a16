"""CUDA correctness check, run on a GPU machine before its benchmarks (CI has no GPU).

    python benchmarks/cuda_check.py

A small EVA02-AT on CUDA against the same weights on the CPU (fp32), sdpa against eager under bf16 autocast,
a backward pass, and the RoPE tables staying float32 when the model is cast to bf16.
"""

import torch

from modeling_eva02at import Eva02AtConfig, Eva02AtModel


def main():
    assert torch.cuda.is_available(), "no CUDA device"
    config = Eva02AtConfig(
        vision_config=dict(
            hidden_size=256,
            intermediate_size=682,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=64,
            patch_size=16,
            num_frames=8,
        ),
        text_config=dict(
            vocab_size=1000,
            hidden_size=128,
            intermediate_size=512,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            bos_token_id=998,
            eos_token_id=999,
            pad_token_id=999,
        ),
        projection_dim=64,
    )
    torch.manual_seed(0)
    cpu = Eva02AtModel(config).eval()
    gpu = Eva02AtModel(config).eval()
    gpu.load_state_dict(cpu.state_dict())
    gpu.cuda()
    pixels = torch.randn(4, 8, 3, 64, 64)
    ids = torch.randint(1, 998, (4, 32))
    ids[:, -1] = 999
    with torch.no_grad():
        ref = cpu(input_ids=ids, pixel_values_videos=pixels)
        out = gpu(input_ids=ids.cuda(), pixel_values_videos=pixels.cuda())
        diff = (out.video_embeds.cpu() - ref.video_embeds).abs().max().item()
        print(f"fp32 CUDA vs CPU video embeds: max abs diff {diff:.2e}")
        assert diff < 1e-4
        with torch.autocast("cuda", dtype=torch.bfloat16):
            sdpa = gpu(input_ids=ids.cuda(), pixel_values_videos=pixels.cuda())
            gpu.set_attn_implementation("eager")
            eager = gpu(input_ids=ids.cuda(), pixel_values_videos=pixels.cuda())
            gpu.set_attn_implementation("sdpa")
        diff = (sdpa.video_embeds.float() - eager.video_embeds.float()).abs().max().item()
        bf16_vs_fp32 = (sdpa.video_embeds.float().cpu() - ref.video_embeds).abs().max().item()
        print(f"bf16 autocast sdpa vs eager: {diff:.2e}; bf16 vs fp32: {bf16_vs_fp32:.2e}")
        assert diff < 5e-2 and bf16_vs_fp32 < 5e-2
    gpu.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = gpu(input_ids=ids.cuda(), pixel_values_videos=pixels.cuda(), return_loss=True).loss
    loss.backward()
    grads = [p.grad for p in gpu.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    print(f"bf16 backward: loss {loss.item():.4f}, {len(grads)} finite gradients")
    half = Eva02AtModel(config).cuda().to(torch.bfloat16).eval()
    with torch.no_grad():
        out = half(input_ids=ids.cuda(), pixel_values_videos=pixels.cuda().bfloat16())
    assert torch.isfinite(out.video_embeds.float()).all()
    print("model cast to bf16: ok; all CUDA checks passed")


if __name__ == "__main__":
    main()
