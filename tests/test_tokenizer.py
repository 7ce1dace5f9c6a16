"""
The CLIP tokenizer shipped in hub_configs/ against an independent implementation of OpenAI's simple_tokenizer.

The reference below re-implements OpenAI CLIP's algorithm (byte-level alphabet, regex pre-tokenisation, BPE by merge
rank with an end-of-word marker, lower-casing, whitespace cleaning, 77-token context with <|endoftext|> kept last).
OpenAI also runs ftfy.fix_text and html.unescape (twice) first; transformers' CLIPTokenizer does neither (its
normaliser is NFC + whitespace + lowercase). Where ftfy is not installed the reference applies NFC only, the part of
ftfy that changes ordinary text; the texts compared here are ones ftfy leaves alone (checked with ftfy 6.3.1), and
`test_documented_differences` pins the cases where the two tokenizers part.
"""

import csv
import gzip
import html
import importlib.util
import os
import unicodedata

import pytest
import regex
from transformers import CLIPTokenizer


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUB_FOLDERS = [os.path.join(REPO_ROOT, "hub_configs", name) for name in ("eva02at-b16", "eva02at-l14")]
SOT, EOT, CONTEXT = 49406, 49407, 77


# ---------------------------------------------------------------------------------------------------------------------
# Reference: OpenAI CLIP's tokenizer, written from its description
# ---------------------------------------------------------------------------------------------------------------------


def _byte_to_char() -> dict[int, str]:
    """GPT-2's reversible byte -> printable unicode character table."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table = {b: chr(b) for b in keep}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


class ReferenceClipTokenizer:
    PATTERN = regex.compile(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
        regex.IGNORECASE,
    )

    def __init__(self, bpe_path: str):
        with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1 : 49152 - 256 - 2 + 1]
        merges = [tuple(line.split()) for line in lines]
        self.byte_to_char = _byte_to_char()
        alphabet = list(self.byte_to_char.values())
        tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m) for m in merges]
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        self.token_to_id = {t: i for i, t in enumerate(tokens)}
        self.rank = {merge: i for i, merge in enumerate(merges)}
        self.fix_text = _load_ftfy()

    def clean(self, text: str) -> str:
        text = self.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return " ".join(text.split()).lower()

    def bpe(self, word: str) -> list[str]:
        symbols = list(word[:-1]) + [word[-1] + "</w>"]
        while len(symbols) > 1:
            pairs = {(a, b) for a, b in zip(symbols, symbols[1:])}
            best = min(pairs, key=lambda pair: self.rank.get(pair, float("inf")))
            if best not in self.rank:
                break
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def encode(self, text: str) -> list[int]:
        ids = []
        for piece in self.PATTERN.findall(self.clean(text)):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.token_to_id[piece])
                continue
            word = "".join(self.byte_to_char[b] for b in piece.encode("utf-8"))
            ids.extend(self.token_to_id[symbol] for symbol in self.bpe(word))
        return ids

    def __call__(self, text: str) -> list[int]:
        """open_clip.tokenize without the padding: [sot] + ids + [eot], cut to 77 with eot last."""
        ids = [SOT] + self.encode(text) + [EOT]
        if len(ids) > CONTEXT:
            ids = ids[:CONTEXT]
            ids[-1] = EOT
        return ids


def _load_ftfy():
    if importlib.util.find_spec("ftfy") is not None:
        import ftfy

        return ftfy.fix_text
    return lambda text: unicodedata.normalize("NFC", text)


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe_path(data_dir):
    return os.path.join(data_dir, "clip_bpe", "bpe_simple_vocab_16e6.txt.gz")


@pytest.fixture(scope="module")
def reference(bpe_path):
    return ReferenceClipTokenizer(bpe_path)


@pytest.fixture(scope="module", params=HUB_FOLDERS, ids=os.path.basename)
def tokenizer(request):
    return CLIPTokenizer.from_pretrained(request.param)


@pytest.fixture(scope="module")
def captions(data_dir):
    path = os.path.join(data_dir, "ek100", "EPIC_100_retrieval_test_sentence.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [row["narration"] for row in rows[::7][:500]]


ORDINARY = [
    "take plate",
    "put down plate",
    "A photo of a CAT sitting on the mat.",
    "pick up knife and cut the onion into small pieces",
    "wash hands   with\tsoap\n and water",
    "I'm sure they've said we'll go, isn't it? It's John's car; they'd re-do it.",
    "numbers 12345 and 3.14159, 1st 2nd 3rd, 100%!",
    "punctuation!!! ??? ... --- (brackets) [square] {curly} <angle> @user #tag $5 ^_^ ~tilde",
    "e-mail: someone@example.com / https://example.org/path?q=1&x=2",
    "   leading and trailing spaces   ",
    "<|startoftext|> special tokens inside <|endoftext|> text",
]
UNICODE = [
    "café naïve résumé façade Ærøskøbing straße",
    "Crème brûlée à la carte, señor piñata",
    "ÉCOLE ÜBER ÇA",  # upper-case accents
    "e\u0301le\u0300ve",  # combining accents: NFC composes them (both tokenizers)
    "日本語のテキスト、東京タワー",
    "中文文本测试 你好 世界",
    "한국어 텍스트",
    "Русский текст и кириллица",
    "ελληνικά γράμματα",
    "emoji 😀🍕👍🏽 👩‍👩‍👧 ❤️ 🇫🇷",
    "mixed: naïve 東京 😀 123 café!",
    "tabs\tand\u00a0non-breaking\u2003spaces",
]


# ---------------------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------------------


def test_vocabulary_layout(tokenizer):
    vocab = tokenizer.get_vocab()
    assert len(tokenizer) == len(vocab) == 49408
    assert vocab["!"] == 0 and vocab["!</w>"] == 256 and vocab["<|startoftext|>"] == SOT
    assert vocab["<|endoftext|>"] == EOT
    assert tokenizer.bos_token_id == SOT and tokenizer.eos_token_id == EOT and tokenizer.pad_token_id == EOT
    assert tokenizer.model_max_length == CONTEXT


def test_committed_files_match_a_fresh_build(tokenizer, bpe_path):
    """hub_configs/ holds exactly what scripts/build_clip_tokenizer.py builds from the BPE file."""
    script_path = os.path.join(REPO_ROOT, "scripts", "build_clip_tokenizer.py")
    spec = importlib.util.spec_from_file_location("build_clip_tokenizer", script_path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    vocab, merges = script.clip_vocab_and_merges(bpe_path)
    assert tokenizer.get_vocab() == vocab
    assert len(merges) == 48894


@pytest.mark.parametrize("text", ORDINARY + UNICODE)
def test_ids_equal_openai_reference(tokenizer, reference, text):
    assert tokenizer(text)["input_ids"] == reference(text)


def test_ek100_captions_equal_openai_reference(tokenizer, reference, captions):
    assert len(captions) == 500
    ours = tokenizer(captions)["input_ids"]
    mismatches = [(c, a, reference(c)) for c, a in zip(captions, ours) if a != reference(c)]
    assert not mismatches, mismatches[:3]


def test_known_ids(tokenizer):
    # The ids OpenAI's tokenizer gives this prompt (also what open_clip.tokenize writes before its zero padding).
    assert tokenizer("a photo of a cat")["input_ids"] == [SOT, 320, 1125, 539, 320, 2368, EOT]


def test_empty_text(tokenizer, reference):
    assert tokenizer("")["input_ids"] == [SOT, EOT] == reference("")
    padded = tokenizer("", padding="max_length", max_length=CONTEXT)
    assert padded["input_ids"] == [SOT, EOT] + [EOT] * 75
    assert padded["attention_mask"] == [1, 1] + [0] * 75


@pytest.mark.parametrize("text", ["word " * 200, "café 東京 😀 " * 60, "x" * 1000])
def test_overlong_text_is_cut_to_77_with_eot_last(tokenizer, reference, text):
    ids = tokenizer(text, truncation=True, max_length=CONTEXT)["input_ids"]
    assert len(ids) == CONTEXT and ids[0] == SOT and ids[-1] == EOT
    assert ids == reference(text)


def test_decode_round_trip(tokenizer):
    text = "pick up the knife then wash it 2 times"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    # As OpenAI's decoder: every end of word becomes a space, so punctuation comes back detached.
    assert tokenizer.decode(tokenizer("knife, then")["input_ids"], skip_special_tokens=True) == "knife , then"


@pytest.mark.parametrize(
    "written, openai_reads",
    [
        ("fish &amp; chips", "fish & chips"),  # OpenAI: html.unescape
        ("it\u2019s", "it's"),  # ftfy: curly quotes straightened
        ("\uff26\uff55\uff4c\uff4c width", "Full width"),  # ftfy: fullwidth forms -> ASCII
        ("\ufb01ne", "fine"),  # ftfy: ligatures split
        ("\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u4f60\u597d,\u4e16\u754c!"),  # ftfy: fullwidth punctuation
    ],
)
def test_documented_differences(tokenizer, reference, written, openai_reads):
    """
    Where transformers' CLIPTokenizer and OpenAI's part: OpenAI unescapes HTML entities and ftfy fixes quotes,
    fullwidth forms and ligatures; the tokenizer here reads the text as written (NFC, lower-cased). EK-100 captions
    are plain ASCII, where neither step changes anything.
    """
    assert tokenizer(written)["input_ids"] != tokenizer(openai_reads)["input_ids"]
    assert tokenizer(openai_reads)["input_ids"] == reference(openai_reads)
