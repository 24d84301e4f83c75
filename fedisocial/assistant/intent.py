"""What a post asks the assistant for: a picture, an edit of an attached one, or words.

One table of rules (:data:`IMAGE_ASKS`), in the languages we read (English, German,
French, Spanish): a post whose text, its mentions left out, starts with one of them
asks for an image of what follows. An attached image and an ask to change it
(:data:`EDIT_ASKS`) is an edit; our image providers do not edit, so the answer says so
and draws from the words. Everything else is a question for a text answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["EDIT_ASKS", "IMAGE_ASKS", "Intent", "decide", "without_mentions"]

#: the openings that ask for a picture (a regular expression each, matched case-blind at
#: the start of the text; what follows is the prompt)
IMAGE_ASKS: dict[str, tuple[str, ...]] = {
    "en": (r"(?:please\s+)?(?:draw|paint|sketch|illustrate)(?:\s+me)?",
           r"(?:please\s+)?(?:make|create|generate|render)(?:\s+me)?\s+(?:a|an)\s+"
           r"(?:picture|image|drawing|painting|illustration)(?:\s+of)?",
           r"(?:picture|image)\s+of"),
    "de": (r"(?:bitte\s+)?(?:zeichne|male|skizziere)(?:\s+mir)?",
           r"(?:bitte\s+)?(?:mach|mache|erstelle|erzeuge|generiere)(?:\s+mir)?\s+ein(?:e|en)?\s+"
           r"(?:bild|zeichnung|gemälde|illustration)(?:\s+von)?",
           r"(?:ein\s+)?bild\s+von"),
    "fr": (r"(?:s'il te plaît\s+|stp\s+)?(?:dessine|peins|illustre)(?:[- ]moi)?",
           r"(?:fais|crée|génère)(?:[- ]moi)?\s+une?\s+(?:image|dessin|peinture|illustration)"
           r"(?:\s+d(?:e|'|u|es))?",
           r"une?\s+(?:image|dessin)\s+d(?:e|'|u|es)"),
    "es": (r"(?:por favor\s+)?(?:dibuja|pinta|ilustra)(?:me)?",
           r"(?:haz|hazme|crea|créame|genera|generame|genérame)\s+una?\s+"
           r"(?:imagen|dibujo|pintura|ilustración)(?:\s+de)?",
           r"una?\s+(?:imagen|dibujo)\s+de"),
}  # fmt: skip
#: asks to change an attached image (any language above)
EDIT_ASKS = (r"edit|change|vary|variation|modify|bearbeite|ändere|variiere|modifie|change|"
             r"retouche|edita|cambia|modifica|varía")  # fmt: skip

_IMAGE = [(language, re.compile(rf"^\s*(?:{rule})\s*[:,]?\s*(?P<prompt>.*)$",
                                re.IGNORECASE | re.DOTALL))
          for language, rules in IMAGE_ASKS.items() for rule in rules]  # fmt: skip
_EDIT = re.compile(rf"^\s*(?:please\s+|bitte\s+|por favor\s+)?(?:{EDIT_ASKS})\b",
                   re.IGNORECASE)  # fmt: skip
_MENTION = re.compile(r"(?<![\w/])@[\w.-]+(?:@[\w.-]+(?::\d+)?)?")


@dataclass(frozen=True)
class Intent:
    """What was asked: ``image`` with its ``prompt``, or ``text`` (``prompt``: the question).

    ``edit``: an attached image was to be changed, which we cannot do (the answer says so).
    """

    kind: Literal["image", "text"]
    prompt: str
    edit: bool = False


def without_mentions(text: str) -> str:
    """The text with its @mentions left out and its spaces tidied."""
    return " ".join(_MENTION.sub(" ", text).split())


def decide(text: str, *, has_image: bool = False) -> Intent:
    """What the plain ``text`` of a post asks for (``has_image``: it attaches one)."""
    words = without_mentions(text)
    for _language, rule in _IMAGE:
        found = rule.match(words)
        if found and found.group("prompt").strip(" .!?"):
            return Intent("image", found.group("prompt").strip())
    if has_image and _EDIT.match(words):
        prompt = _EDIT.sub("", words, count=1).strip(" :,")
        return Intent("image", prompt or words, edit=True)
    return Intent("text", words)
