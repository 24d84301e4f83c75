"""The offline part of drafting help: deterministic, and useful without any model.

:func:`offline_hints` reads a draft and gives hashtag candidates and a few
readability hints, always the same for the same draft. The rules, each tested
in tests/test_drafting.py:

- **hashtags**: names of several capitalized words (``New York City``) become one
  CamelCase tag (``#NewYorkCity``, which screen readers read word by word); then
  the significant words, by how often they occur and how early (the first words
  of a post say what it is about). Stop words (en, de, fr, es and the draft's own
  language), short words, numbers and words already tagged are skipped.
- **too_long**: over the instance's post limit (:data:`~fedisocial.social.outbox.MAX_TEXT`).
- **long_sentence**: a sentence of more than :data:`LONG_SENTENCE` words.
- **all_caps**: several words in capitals read as shouting (and screen readers
  may spell them out letter by letter).
- **many_hashtags**: more than :data:`MANY_HASHTAGS` tags look like spam.
- **bare_link**: a link with hardly a word of its own: say what it is about.
- **content_warning**: no warning, but words of a topic people often hide behind
  one (spoilers, death, politics): the hint proposes a warning in the draft's language.

:func:`detect_language` guesses the draft's language with py3langid when the
author did not say it (None for text too short or too mixed to tell).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from stop_words import LANGUAGE_MAPPING, get_stop_words

from fedisocial.social.content import find_hashtags, find_links, without_tokens
from fedisocial.social.outbox import MAX_TEXT

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

__all__ = [
    "LONG_SENTENCE",
    "MANY_HASHTAGS",
    "Hint",
    "OfflineHints",
    "detect_language",
    "hashtag_candidates",
    "offline_hints",
    "primary_language",
]

#: words in a sentence above which it is hard to read (plain-language guides say 20-25)
LONG_SENTENCE = 35
#: hashtags above which a post looks like spam to many readers
MANY_HASHTAGS = 5
#: words in capitals (of three letters or more) from which a post shouts
SHOUTING_WORDS = 3
#: words of its own a link needs beside it
LINK_CONTEXT_WORDS = 4
#: hashtag candidates offered, at most
CANDIDATES = 5
#: the languages whose stop words are always skipped (posts mix them often)
CORE_LANGUAGES = ("en", "de", "fr", "es")
#: the shortest a single word must be to be a candidate
_MIN_WORD = 4
#: how sure py3langid must be of a language
_MIN_CONFIDENCE = 0.7
#: topics often put behind a content warning: the words that reveal them (en, de, fr, es),
#: and the warning proposed, by language
SENSITIVE_TOPICS: dict[str, tuple[str, dict[str, str]]] = {
    "spoilers": (
        r"spoil\w*|divulg\w*|destripe\w*|finale",
        {"en": "Spoilers", "de": "Spoiler", "fr": "Divulgâcheur", "es": "Spoilers"},
    ),
    "death": (
        r"death|dead|died|dying|funeral|suicide|tod|gestorben|stirbt|beerdigung|suizid|"
        r"mort|morte|décès|décédée?|muerte|muert[oa]|murió|suicidio",
        {"en": "Death", "de": "Tod", "fr": "Mort", "es": "Muerte"},
    ),
    "politics": (
        r"politic\w*|election\w*|politik\w*|wahlen|wahlkampf|politique\w*|élections?|"
        r"polític\w*|elecciones",
        {"en": "Politics", "de": "Politik", "fr": "Politique", "es": "Política"},
    ),
}
_TOPICS = {name: re.compile(rf"\b(?:{words})\b", re.IGNORECASE)
           for name, (words, _) in SENSITIVE_TOPICS.items()}  # fmt: skip
_APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[^\W\d_][\w{_APOSTROPHES}-]*[^\W_]|[^\W\d_]")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")


@dataclass(frozen=True)
class Hint:
    """One readability hint: ``code`` names the rule; ``content_warning`` is the warning a
    content_warning hint proposes."""

    code: str
    message: str
    content_warning: str | None = None


@dataclass(frozen=True)
class OfflineHints:
    hashtags: tuple[str, ...]
    hints: tuple[Hint, ...]
    characters: int
    max_characters: int


def primary_language(tag: str | None) -> str | None:
    """``pt`` for ``pt-BR``; None for nothing."""
    code = (tag or "").strip().replace("_", "-").split("-", 1)[0].lower()
    return code if code.isalpha() else None


@cache
def _identifier() -> LanguageIdentifier:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # a model load: only when asked

    return LanguageIdentifier.from_model_file(
        MODEL_FILE, norm_probs=True, min_confidence=_MIN_CONFIDENCE
    )


def detect_language(text: str) -> str | None:
    """The language of ``text`` (ISO 639-1), or None when py3langid is not sure of it."""
    words = without_tokens(text)
    if len(_WORD.findall(words)) < 3:
        return None
    code, _ = _identifier().classify(words)
    return None if code == "und" else str(code)


@cache
def _stop_words(language: str | None) -> frozenset[str]:
    languages = {*CORE_LANGUAGES, *([language] if language in LANGUAGE_MAPPING else [])}
    return frozenset(word.lower() for code in languages for word in get_stop_words(code))


def _capitalized(word: str) -> bool:
    return word[0].isupper() and not word.isupper()


def _words(sentence: str) -> list[str]:
    """The words of a sentence, elisions dropped (l'amour → amour) and hyphens joined."""
    words = [re.split(f"[{_APOSTROPHES}]", w)[-1].replace("-", "") for w in _WORD.findall(sentence)]
    return [w for w in words if w]


def _names(words: list[str], stop: frozenset[str]) -> list[str]:
    """CamelCase of each run of two or more capitalized words in a sentence; a stop word
    opening the sentence ("The New York Times") is not part of the name."""
    names: list[str] = []
    run: list[str] = []
    for index, word in enumerate([*words, ""]):
        if word and _capitalized(word) and not (index == 0 and word.lower() in stop):
            run.append(word)
            continue
        if len(run) >= 2:
            names.append("".join(w[0].upper() + w[1:] for w in run))
        run = []
    return names


def hashtag_candidates(text: str, language: str | None) -> tuple[str, ...]:
    """Tags for ``text`` (without ``#``): CamelCase names first, then significant words,
    by how often they occur (a name, capitalized inside a sentence, counts once more) and,
    among equals, how early."""
    stop = _stop_words(language)
    tagged = {tag.lower() for tag in find_hashtags(text)}
    found: dict[str, str] = {}
    in_names: set[str] = set()
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    proper: dict[str, str] = {}
    for sentence in _sentences(text):
        words = _words(sentence)
        for name in _names(words, stop):
            found.setdefault(name.lower(), name)
            in_names.update(part.lower() for part in re.findall(r"[A-Z][^A-Z]*", name))
        for index, word in enumerate(words):
            key = word.lower()
            counts[key] += 1
            first.setdefault(key, len(first))
            if index > 0 and _capitalized(word):
                proper.setdefault(key, word)
    significant = [key for key in counts if len(key) >= _MIN_WORD and key.isalpha()
                   and key not in stop and key not in in_names]  # fmt: skip
    significant.sort(key=lambda key: (-counts[key] - (key in proper), first[key]))
    for key in significant:
        found.setdefault(key, proper.get(key, key))
    return tuple(tag for key, tag in found.items() if key not in tagged)[:CANDIDATES]


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(without_tokens(text)) if s.strip()]


def _length_hint(characters: int) -> list[Hint]:
    if characters <= MAX_TEXT:
        return []
    over = characters - MAX_TEXT
    return [Hint("too_long", f"{over:,} characters over this server's limit of {MAX_TEXT:,}: "
                 "shorten it, or split it into a thread of replies.")]  # fmt: skip


def _sentence_hint(text: str) -> list[Hint]:
    longest = max((len(_WORD.findall(s)) for s in _sentences(text)), default=0)
    if longest <= LONG_SENTENCE:
        return []
    return [Hint("long_sentence", f"A sentence has {longest} words: sentences of up to "
                 "20 to 25 words are easier to read. Try splitting it.")]  # fmt: skip


def _caps_hint(words: list[str]) -> list[Hint]:
    shouted = [w for w in words if len(w) >= 3 and w.isupper()]
    if len(shouted) < SHOUTING_WORDS:
        return []
    return [Hint("all_caps", f"{len(shouted)} words are in capitals: that reads as shouting, "
                 "and screen readers may spell them out letter by letter.")]  # fmt: skip


def _hashtag_hint(text: str) -> list[Hint]:
    tags = find_hashtags(text)
    if len(tags) <= MANY_HASHTAGS:
        return []
    return [Hint("many_hashtags", f"{len(tags)} hashtags: more than {MANY_HASHTAGS} look like "
                 "spam to many people. Keep the ones that say most.")]  # fmt: skip


def _link_hint(text: str, words: list[str]) -> list[Hint]:
    if not find_links(text) or len(words) >= LINK_CONTEXT_WORDS:
        return []
    return [Hint("bare_link", "Say in a few words what the link is about: people decide "
                 "from that whether to open it.")]  # fmt: skip


def _warning_hint(text: str, spoiler_text: str, language: str | None) -> list[Hint]:
    if spoiler_text.strip():
        return []
    topics = [name for name, pattern in _TOPICS.items() if pattern.search(text)]
    if not topics:
        return []
    labels = [SENSITIVE_TOPICS[name][1].get(language or "en", SENSITIVE_TOPICS[name][1]["en"])
              for name in topics]  # fmt: skip
    warning = ", ".join(labels)
    return [Hint("content_warning", f"This may touch on {', '.join(topics)}: many people "
                 f"appreciate a content warning such as “{warning}”.", warning)]  # fmt: skip


def offline_hints(text: str, *, language: str | None, spoiler_text: str = "") -> OfflineHints:
    """Hashtag candidates and readability hints for a draft; the same draft, the same hints."""
    words = _WORD.findall(without_tokens(text))
    hints = [
        *_length_hint(len(text)),
        *_sentence_hint(text),
        *_caps_hint(words),
        *_hashtag_hint(text),
        *_link_hint(text, words),
        *_warning_hint(text, spoiler_text, language),
    ]
    return OfflineHints(hashtag_candidates(text, language), tuple(hints), len(text), MAX_TEXT)
