"""A word-level tokenizer for the demo's generated language, saved so that AutoTokenizer loads it.

The demo's vocabulary is closed (every word comes from the generator), so a word-level model is exact: one
token a word, no unknown words. Ids follow T5: <pad>=0 (also the decoder start), </s>=1, <unk>=2, then the
sentinels <extra_id_0..n-1> that span corruption needs, then the words.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ("<pad>", "</s>", "<unk>")


def sentinel(i: int) -> str:
    """The T5 sentinel token that marks the i-th corrupted span."""
    return f"<extra_id_{i}>"


def build_tokenizer(words: list[str], extra_ids: int = 8):
    """A transformers PreTrainedTokenizerFast over `words` (lower-case, whitespace and punctuation split)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    sentinels = [sentinel(i) for i in range(extra_ids)]
    vocab: dict[str, int] = {}
    for token in (*SPECIALS, *sentinels, *words):
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                       special_tokens=[("</s>", 1)])
    tok.add_special_tokens([*SPECIALS, *sentinels])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>",
                                   additional_special_tokens=sentinels, model_max_length=512,
                                   model_input_names=["input_ids", "attention_mask"])


def save_tokenizer(tokenizer, folder: Path) -> None:
    """Write tokenizer.json and its configs into a host folder."""
    tokenizer.save_pretrained(str(folder))
