"""
Build the OpenAI CLIP BPE tokenizer (49408 tokens) as a transformers `CLIPTokenizer` and write the processor files
(tokenizer + video processor settings) of the hub folders.

The vocabulary is laid out exactly as OpenAI's `simple_tokenizer.py` builds it from `bpe_simple_vocab_16e6.txt.gz`:

    ids 0..255        the 256 byte-level unicode characters (GPT-2's bytes_to_unicode order)
    ids 256..511      the same characters + "</w>" (end of word)
    ids 512..49405    one token per merge, for the 48894 merges on lines [1, 49152 - 256 - 2 + 1) of the file
    id  49406         <|startoftext|>
    id  49407         <|endoftext|>

Usage:
    python scripts/build_clip_tokenizer.py [--bpe PATH] [--out hub_configs/eva02at-b16 hub_configs/eva02at-l14]

The output folders get tokenizer.json, tokenizer_config.json and processor_config.json (written by
`Eva02AtProcessor.save_pretrained`, so the format is exactly what `AutoProcessor` reads). The remote-code .py files
that save_pretrained copies next to them are removed again unless --keep-code is given: the model's publishing step
copies the current sources, and stale copies in git would drift.
"""

import argparse
import gzip
import os
import sys


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BPE = os.path.join(REPO_ROOT, "tests", "data", "clip_bpe", "bpe_simple_vocab_16e6.txt.gz")
DEFAULT_OUT = [os.path.join(REPO_ROOT, "hub_configs", name) for name in ("eva02at-b16", "eva02at-l14")]

NUM_MERGES = 49152 - 256 - 2  # 48894, as OpenAI slices the merges file
CONTEXT_LENGTH = 77
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"


def byte_level_alphabet() -> list[str]:
    """
    The 256 unicode characters standing for the bytes 0..255, in GPT-2 / CLIP order: first the printable bytes
    (which map to themselves), then the rest, mapped to code points 256, 257, ... in byte order.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters = [chr(b) for b in printable]
    others = [b for b in range(256) if b not in printable]
    characters += [chr(256 + n) for n in range(len(others))]
    return characters


def read_merges(bpe_path: str) -> list[tuple[str, str]]:
    """The first 48894 merges of the BPE file (line 0 is a version header)."""
    with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    if len(merges) != NUM_MERGES or any(len(merge) != 2 for merge in merges):
        raise ValueError(f"{bpe_path} does not look like bpe_simple_vocab_16e6.txt.gz")
    return merges


def clip_vocab_and_merges(bpe_path: str = DEFAULT_BPE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The 49408-entry vocabulary and the merge list, in OpenAI's order."""
    merges = read_merges(bpe_path)
    alphabet = byte_level_alphabet()
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(merge) for merge in merges]
    tokens += [START_OF_TEXT, END_OF_TEXT]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != 49408:
        raise ValueError(f"expected 49408 distinct tokens, got {len(vocab)}")
    return vocab, merges


def build_clip_tokenizer(bpe_path: str = DEFAULT_BPE):
    """A transformers `CLIPTokenizer` equal to OpenAI's (bos 49406, eos 49407, pad = eos, 77-token context)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges(bpe_path)
    return CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=END_OF_TEXT,
        bos_token=START_OF_TEXT,
        eos_token=END_OF_TEXT,
        # transformers' CLIP checkpoints pad with <|endoftext|>; see Eva02AtProcessor for why that is harmless.
        pad_token=END_OF_TEXT,
        model_max_length=CONTEXT_LENGTH,
    )


def build_processor(bpe_path: str = DEFAULT_BPE, num_frames: int = 16, size: int = 224):
    """The EVA02-AT processor: CLIP tokenizer + video processor (16 frames, 224, CLIP normalisation)."""
    from modeling_eva02at.processing_eva02at import Eva02AtProcessor
    from modeling_eva02at.video_processing_eva02at import Eva02AtVideoProcessor

    video_processor = Eva02AtVideoProcessor(num_frames=num_frames, size=size, normalization="clip")
    return Eva02AtProcessor(image_processor=video_processor, tokenizer=build_clip_tokenizer(bpe_path))


def save_processor(processor, out_dir: str, keep_code: bool = False) -> list[str]:
    """save_pretrained with the auto classes registered (so auto_map entries are written); returns the file names."""
    from modeling_eva02at.processing_eva02at import Eva02AtProcessor
    from modeling_eva02at.video_processing_eva02at import Eva02AtVideoProcessor

    Eva02AtVideoProcessor.register_for_auto_class("AutoImageProcessor")
    Eva02AtProcessor.register_for_auto_class("AutoProcessor")
    os.makedirs(out_dir, exist_ok=True)
    processor.save_pretrained(out_dir)
    if not keep_code:
        for name in ("processing_eva02at.py", "video_processing_eva02at.py"):
            path = os.path.join(out_dir, name)
            if os.path.exists(path):
                os.remove(path)
    return sorted(os.listdir(out_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bpe", default=DEFAULT_BPE, help="path of bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--out", nargs="+", default=DEFAULT_OUT, help="output folders")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--keep-code", action="store_true", help="keep the copied remote-code .py files")
    args = parser.parse_args(argv)

    processor = build_processor(args.bpe, args.num_frames, args.size)
    for out_dir in args.out:
        files = save_processor(processor, out_dir, keep_code=args.keep_code)
        print(f"{out_dir}: {', '.join(files)}")


if __name__ == "__main__":
    sys.exit(main())
