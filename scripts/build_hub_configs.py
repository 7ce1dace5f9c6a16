"""Write hub_configs/eva02at-{b16,l14}/config.json: the two paper sizes of docs/architecture.md.

    python scripts/build_hub_configs.py

The tokenizer and processor files next to them come from scripts/build_clip_tokenizer.py.
"""

import os

from modeling_eva02at import REMOTE_CODE_FILES, Eva02AtConfig


ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub_configs")

# name: (video width, depth, heads, patch, text width, text heads)
PRESETS = {
    "eva02at-b16": (768, 12, 12, 16, 512, 8),
    "eva02at-l14": (1024, 24, 16, 14, 768, 12),
}


def preset_config(width, depth, heads, patch, text_width, text_heads) -> Eva02AtConfig:
    config = Eva02AtConfig(
        vision_config=dict(
            hidden_size=width,
            intermediate_size=int(width * 8 / 3),  # EVA02's SwiGLU hidden size
            num_hidden_layers=depth,
            num_attention_heads=heads,
            image_size=224,
            patch_size=patch,
            num_frames=16,
        ),
        text_config=dict(
            hidden_size=text_width,
            intermediate_size=4 * text_width,
            num_hidden_layers=12,
            num_attention_heads=text_heads,
            hidden_act="gelu",
            vocab_size=49408,
            max_position_embeddings=77,
            projection_dim=256,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,  # the tokenizer pads with <|endoftext|>
        ),
        projection_dim=256,
    )
    config.architectures = ["Eva02AtModel"]
    # The same auto_map a saved model writes, so the folder plus the *_eva02at.py files is a remote-code repo.
    config.auto_map = {
        "AutoConfig": "configuration_eva02at.Eva02AtConfig",
        "AutoModel": "modeling_eva02at.Eva02AtModel",
    }
    return config


def main():
    for name, preset in PRESETS.items():
        folder = os.path.join(ROOT, name)
        preset_config(*preset).save_pretrained(folder)
        # save_pretrained copies the registered config's .py files (and the pipeline's, which it names): the
        # package holds the one copy.
        for name in REMOTE_CODE_FILES:
            if os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        print(f"wrote {folder}/config.json")


if __name__ == "__main__":
    main()
