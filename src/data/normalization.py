"""Tweet normalisation: TweetEval's rule plus what the models need. The standard library only.

The pipeline normalises every split with it (src.data.preprocess), src.predict every text, and the
Hub-ready export ships this file as ``normalize.py`` beside the weights (src/models/hub_export.py), so a
user of the exported model gives it text normalised exactly as the training data was:
``from normalize import normalize_tweet``.
"""

from __future__ import annotations

import html
import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")
# a flag is a pair of regional-indicator letters; the joiner and the variation selectors only shape
# how an emoji is drawn (U+200D, U+FE0E, U+FE0F), as do the skin-tone modifiers
_FLAG = re.compile("[\U0001f1e6-\U0001f1ff]{2}")
_EMOJI_SHAPING = {"\u200d", "\ufe0e", "\ufe0f"}


# a tweet is at most 280 characters (its emoji as names, a few times that): past this nothing is a tweet,
# and each text is cut here, before and after every transform that makes it longer or costs more per character
MAX_TEXT_CHARS = 4096
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize_tweet(text: str) -> str:
    """TweetEval's rule plus what the models need.

    TweetEval: tokens split on spaces; ``@mention`` tokens become ``@user``; tokens starting
    with ``http`` are dropped. Added: HTML entities unescaped (``&amp;`` -> ``&``), Unicode NFC,
    emoji as words (``symbols_as_words``), all whitespace (tabs, newlines, U+2028...) collapsed to
    one space, ends stripped.
    """
    # the cost is bounded by what each transform makes: cut before NFC (quadratic in a run of combining
    # marks) and again after the emoji became names (each grows ~30x), on the expanded text
    text = html.unescape(text[: MAX_TEXT_CHARS * 8])[:MAX_TEXT_CHARS]
    # a lone surrogate (JSON's "\ud83d", bytes a POSIX locale decoded with surrogateescape) is half of
    # no character: no tokenizer or UTF-8 writer takes it, so it goes
    text = without_lone_surrogates(text)
    text = symbols_as_words(unicodedata.normalize("NFC", text))[:MAX_TEXT_CHARS]
    tokens = []
    for token in _WHITESPACE.split(text):
        if not token or token.startswith("http"):
            continue
        tokens.append("@user" if token.startswith("@") and len(token) > 1 else token)
    return " ".join(tokens)


def without_lone_surrogates(text: str, replacement: str = "") -> str:
    """``text`` with each lone surrogate (no character on its own) replaced by ``replacement``."""
    return _LONE_SURROGATE.sub(replacement, text)


def symbols_as_words(text: str) -> str:
    """Emoji and other pictographic symbols as their Unicode names: ``😂`` -> `` face with tears of joy ``.

    The encoders' vocabularies have no emoji (MiniLM's tokenizer reads each as [UNK]) and neither
    has TweetEval's train split, so a symbol the models cannot read becomes words they can, as
    BERTweet's normalisation does with the ``emoji`` package; the names come from Python's own
    Unicode database. A flag (two regional-indicator letters) becomes ``flag``; joiners, variation
    selectors and skin-tone modifiers, which only shape how an emoji is drawn, are dropped. ASCII
    symbols (``^``, `````) stay as they are.
    """
    if text.isascii():
        return text
    text = _FLAG.sub(" flag ", text)
    pieces = []
    length = 0
    for char in text:
        if length > MAX_TEXT_CHARS:  # measured on the expanded text: nothing past the cap is kept
            break
        if char in _EMOJI_SHAPING:
            continue
        category = "" if char.isascii() else unicodedata.category(char)
        if category not in ("So", "Sk"):
            pieces.append(char)
            continue
        name = unicodedata.name(char, "")
        if name.startswith("EMOJI MODIFIER") or not name:
            continue
        pieces.append(f" {name.lower()} " if category == "So" else char)
        length += len(pieces[-1])
    return "".join(pieces)
