"""Tweet tokenisation for the LSTM, matching how GloVe Twitter's vectors were made.

GloVe Twitter was trained on text rewritten by Stanford's preprocess-twitter script: URLs become
``<url>``, mentions ``<user>``, numbers ``<number>``, ``#tag`` becomes ``<hashtag> tag``, repeated
punctuation gets ``<repeat>``, elongated words ``<elong>``, shouted words ``<allcaps>``, smileys
``<smile>``/``<sadface>``/``<lolface>``/``<neutralface>``/``<heart>``, all lower-cased. Doing the
same here maps what the preprocessed tweets hold onto the tokens the vectors know.
"""

from __future__ import annotations

import re

_EYES, _NOSE = r"[8:=;]", r"['`\-]?"
_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"https?://\S+|www\.\S+"), " <url> "),
    (re.compile(r"@\w+"), " <user> "),
    (re.compile(rf"{_EYES}{_NOSE}[)dD]+|\(+{_NOSE}{_EYES}"), " <smile> "),
    (re.compile(rf"{_EYES}{_NOSE}[pP]+\b"), " <lolface> "),
    (re.compile(rf"{_EYES}{_NOSE}\(+|\)+{_NOSE}{_EYES}"), " <sadface> "),
    (re.compile(rf"{_EYES}{_NOSE}[/|lL*]"), " <neutralface> "),
    (re.compile(r"<3"), " <heart> "),
    (re.compile(r"(?<![\w<])[-+]?\d[\d,.:]*"), " <number> "),
]
_HASHTAG = re.compile(r"#(\w+)")
_REPEAT = re.compile(r"([!?.])\1+")
_ELONG = re.compile(r"\b(\w*?)(\w)\2{2,}\b")
_ALLCAPS = re.compile(r"\b([A-Z]{2,}(?:'[A-Z]+)?)\b")
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# <tag> | word with inner apostrophes | any other single non-space character (punctuation, emoji)
_TOKEN = re.compile(r"<[a-z]+>|[a-z0-9_]+(?:['’][a-z]+)*|\S")

SPECIAL_TOKENS = (
    "<url>",
    "<user>",
    "<smile>",
    "<lolface>",
    "<sadface>",
    "<neutralface>",
    "<heart>",
    "<number>",
    "<hashtag>",
    "<repeat>",
    "<elong>",
    "<allcaps>",
)


def _hashtag(match: re.Match) -> str:
    body = match.group(1)
    if body.isupper():
        return f" <hashtag> {body.lower()} <allcaps> "
    # #WakeUpWith11 -> wake up with 11, as the GloVe script splits camel case
    return " <hashtag> " + " ".join(_CAMEL.findall(body) or [body]) + " "


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens with GloVe Twitter's special tokens. ``@user`` becomes ``<user>``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = _HASHTAG.sub(_hashtag, text)
    text = _REPEAT.sub(lambda m: f" {m.group(1)} <repeat> ", text)
    text = _ELONG.sub(lambda m: f"{m.group(1)}{m.group(2)} <elong> ", text)
    text = _ALLCAPS.sub(lambda m: f"{m.group(1).lower()} <allcaps> ", text)
    return _TOKEN.findall(text.lower())
