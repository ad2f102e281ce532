"""Tokenizers built offline, so the built-in models need no hub download."""

from __future__ import annotations

import json
import string
from pathlib import Path

CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"
# 256 byte-level symbols, the same 256 with the end-of-word suffix, then the two specials.
CLIP_VOCAB_SIZE = 514
CLIP_BOS_ID = 512
CLIP_EOS_ID = 513

T5_PAD_ID, T5_EOS_ID, T5_UNK_ID = 0, 1, 2


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    symbols = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in symbols:
            symbols[b] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def write_clip_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt for a character-level CLIP BPE tokenizer (no merges)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + [CLIP_BOS, CLIP_EOS]
    vocab = {token: index for index, token in enumerate(tokens)}
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")


def load_clip_tokenizer(folder: Path, max_length: int):
    """A CLIP tokenizer from the files above, on transformers 4 (file paths) or 5 (vocab and merges)."""
    import inspect

    from transformers import CLIPTokenizer

    specials = {"bos_token": CLIP_BOS, "eos_token": CLIP_EOS, "pad_token": CLIP_EOS, "unk_token": CLIP_EOS}
    parameters = inspect.signature(CLIPTokenizer.__init__).parameters
    if "vocab_file" in parameters:
        files = {"vocab_file": str(folder / "vocab.json"), "merges_file": str(folder / "merges.txt")}
        return CLIPTokenizer(**files, model_max_length=max_length, **specials)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    merges = [line for line in (folder / "merges.txt").read_text(encoding="utf-8").splitlines()[1:] if line]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length, **specials)


def t5_vocabulary() -> list[tuple[str, float]]:
    """Unigram pieces: specials, then printable ASCII with and without the word marker."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    chars = sorted(set(string.ascii_letters + string.digits + string.punctuation))
    pieces += [("\u2581" + c, -1.0) for c in chars]
    pieces += [(c, -2.0) for c in chars]
    pieces.append(("\u2581", -3.0))
    return pieces


def build_t5_tokenizer(max_length: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    core = Tokenizer(models.Unigram(t5_vocabulary(), unk_id=T5_UNK_ID, byte_fallback=False))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    core.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", T5_EOS_ID)]
    )
    return T5TokenizerFast(
        tokenizer_object=core,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        model_max_length=max_length,
    )
