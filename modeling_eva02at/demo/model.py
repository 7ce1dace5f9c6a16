"""The small model the training demos (examples/train_mir.py, pretrain_egoclip.py, finetune_charades_ego.py) train
from random initialisation when no --model is given."""

DEMO_MODEL_CONFIG = dict(
    vision_config=dict(
        hidden_size=96,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        num_frames=4,
    ),
    text_config=dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        vocab_size=49408,
        max_position_embeddings=77,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    ),
    projection_dim=64,
)
"""`Eva02AtConfig` keyword arguments: EVA02-AT's architecture at toy width, with the real 49408-token CLIP vocabulary
(so the processor of hub_configs/eva02at-b16 feeds it)."""
