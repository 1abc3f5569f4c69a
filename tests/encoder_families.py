"""Tiny random-weight stand-ins of each encoder family the pipeline's users fine-tune, built offline.

Each is what a hub checkpoint of the family is, shrunk: the family's config class, random weights of its
base model and a tokenizer of the family's kind (WordPiece, byte-level BPE, SentencePiece-style Unigram,
BERTweet's fastBPE with its tweet normalisation), saved with ``save_pretrained`` so that ``model_name``
can name the directory exactly as it names a hub model.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures import tiny_splits

# family -> the hub models it stands in for (docs/training.md's table)
FAMILIES = {
    "bert": "bert-base-uncased, sentence-transformers/all-MiniLM-L6-v2",
    "roberta": "cardiffnlp/twitter-roberta-base-sentiment-latest, roberta-base",
    "xlm-roberta": "cardiffnlp/twitter-xlm-roberta-base, xlm-roberta-base",
    "bertweet": "vinai/bertweet-base",
    "distilbert": "distilbert-base-uncased",
    "deberta-v2": "microsoft/deberta-v3-base",
    "electra": "google/electra-base-discriminator",
    "modernbert": "answerdotai/ModernBERT-base",
}
SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def fixture_words() -> list[str]:
    """Every word of the tiny splits, normalised as the pipeline normalises them."""
    from src.data.preprocess import normalize_tweet

    return sorted({w for rows in tiny_splits().values() for t, _ in rows for w in normalize_tweet(t).split()})


def _characters(words: list[str]) -> list[str]:
    return sorted({c for w in words for c in w})


def _wordpiece(directory: Path, tokenizer_class):
    words = fixture_words()
    chars = _characters(words) + ["!", "@"]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chars, *(f"##{c}" for c in chars)]
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return tokenizer_class(vocab=str(directory / "vocab.txt"), do_lower_case=True)


def _byte_level_bpe(specials: list[str]):
    """A byte-level BPE (RoBERTa's and ModernBERT's kind) trained on the fixture tweets."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    texts = [t for rows in tiny_splits().values() for t, _ in rows]
    bpe.train_from_iterator(texts, vocab_size=400, min_frequency=1, special_tokens=specials, show_progress=False)
    model = json.loads(bpe.to_str())["model"]
    return bpe, model["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]


def _unigram(specials: list[str]) -> list[tuple[str, float]]:
    """A SentencePiece-style Unigram vocabulary (XLM-R's and DeBERTa-v3's kind): whole words, then pieces."""
    words = fixture_words()
    pieces = [f"\u2581{w}" for w in words] + ["\u2581", *_characters(words)]
    return [(s, 0.0) for s in specials] + [(p, -float(i + 1)) for i, p in enumerate(dict.fromkeys(pieces))]


def _bertweet(directory: Path):
    """BERTweet's tokenizer: fastBPE codes and vocabulary, tweet normalisation on (as vinai/bertweet-base)."""
    from transformers import BertweetTokenizer

    words = fixture_words() + ["@USER", "HTTPURL"]
    merges, vocab = [], []
    for word in words:  # merge each word left to right into one token
        symbols = [*word[:-1], word[-1] + "</w>"]
        while len(symbols) > 1:
            merges.append(f"{symbols[0]} {symbols[1]}")
            symbols = [symbols[0] + symbols[1], *symbols[2:]]
        vocab.append(word)
    vocab += [f"{c}@@" for c in _characters(words)] + _characters(words)
    (directory / "bpe.codes").write_text("".join(f"{m} 1\n" for m in dict.fromkeys(merges)))
    (directory / "vocab.txt").write_text("".join(f"{v} 1\n" for v in dict.fromkeys(vocab)))
    return BertweetTokenizer(str(directory / "vocab.txt"), str(directory / "bpe.codes"), normalization=True)


def _tokenizer(family: str, directory: Path):
    import transformers as tf

    if family in ("bert", "electra", "distilbert"):
        cls = {"bert": tf.BertTokenizer, "electra": tf.ElectraTokenizer, "distilbert": tf.DistilBertTokenizer}
        return _wordpiece(directory, cls[family])
    if family == "roberta":
        _, vocab, merges = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        return tf.RobertaTokenizer(vocab=vocab, merges=merges)
    if family == "xlm-roberta":
        return tf.XLMRobertaTokenizer(vocab=_unigram(["<s>", "<pad>", "</s>", "<unk>"]) + [("<mask>", 0.0)])
    if family == "deberta-v2":
        return tf.DebertaV2Tokenizer(vocab=_unigram(["[PAD]", "[CLS]", "[SEP]", "[UNK]"]) + [("[MASK]", 0.0)], unk_id=3)
    if family == "bertweet":
        return _bertweet(directory)
    if family == "modernbert":
        from tokenizers.processors import TemplateProcessing

        specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
        bpe, _, _ = _byte_level_bpe(specials)
        bpe.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[(s, bpe.token_to_id(s)) for s in ("[CLS]", "[SEP]")],
        )
        return tf.PreTrainedTokenizerFast(
            tokenizer_object=bpe._tokenizer,
            **{f"{k}_token": f"[{k.upper()}]" for k in ("unk", "cls", "sep", "pad", "mask")},
        )
    raise ValueError(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")


def _config(family: str, tokenizer):
    import transformers as tf

    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id}
    if family == "bert":
        return tf.BertConfig(**SIZE, **ids, max_position_embeddings=64)
    if family in ("roberta", "bertweet", "xlm-roberta"):
        # RoBERTa's positions start after the padding index: two more than the longest input
        cls = tf.XLMRobertaConfig if family == "xlm-roberta" else tf.RobertaConfig
        extra = {"tokenizer_class": "BertweetTokenizer"} if family == "bertweet" else {}
        return cls(**SIZE, **ids, max_position_embeddings=66, bos_token_id=0, eos_token_id=2, **extra)
    if family == "electra":
        return tf.ElectraConfig(**SIZE, **ids, embedding_size=16, max_position_embeddings=64)
    if family == "distilbert":
        return tf.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **ids, max_position_embeddings=64)
    if family == "deberta-v2":  # DeBERTa-v3's layout: relative attention, no absolute positions
        return tf.DebertaV2Config(
            **SIZE,
            **ids,
            max_position_embeddings=64,
            relative_attention=True,
            position_buckets=16,
            norm_rel_ebd="layer_norm",
            share_att_key=True,
            pos_att_type=["p2c", "c2p"],
            position_biased_input=False,
            max_relative_positions=-1,
            type_vocab_size=0,
        )
    if family == "modernbert":
        return tf.ModernBertConfig(
            **SIZE,
            **ids,
            max_position_embeddings=64,
            global_attn_every_n_layers=2,
            local_attention=16,
            cls_token_id=tokenizer.cls_token_id,
            sep_token_id=tokenizer.sep_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        )
    raise ValueError(f"unknown family {family!r}")


def write_tiny_encoder(directory: Path, family: str) -> Path:
    """A 2-layer, 32-wide random ``family`` base model and its tokenizer, saved as a model directory."""
    import torch
    from transformers import AutoModel

    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer(family, directory)
    torch.manual_seed(0)
    AutoModel.from_config(_config(family, tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if family == "bertweet":  # the hub's files, with fastBPE's count column (transformers' save drops it)
        _bertweet(directory)
    return directory
