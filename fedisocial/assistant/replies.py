"""The assistant's own words, in the languages it reads (English, German, French, Spanish).

Every reply that is not a model's answer is one of :data:`MESSAGES`, written in the
asking post's language when we have it in that language, else in English (and the
reply then says it is English: we never label English text as another language).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fedisocial.ap.vocab import content_language
from fedisocial.assistant.hints import primary_language

__all__ = ["MESSAGES", "language_of", "pick", "read_line", "say", "wait_text"]

MESSAGES: dict[str, dict[str, str]] = {
    "offline": {
        "en": "I have no text model on this instance, so I cannot answer questions here. "
              "I can draw pictures with the offline renderer: mention me with “draw …”.",
        "de": "Auf dieser Instanz habe ich kein Sprachmodell und kann keine Fragen "
              "beantworten. Bilder kann ich offline malen: erwähne mich mit „zeichne …“.",
        "fr": "Je n'ai pas de modèle de texte sur cette instance et ne peux pas répondre aux "
              "questions. Je peux dessiner hors ligne : mentionne-moi avec « dessine … ».",
        "es": "No tengo un modelo de texto en esta instancia y no puedo responder preguntas. "
              "Puedo dibujar sin conexión: mencióname con «dibuja …».",
    },
    "refused": {
        "en": "Sorry, I can't help with that request.",
        "de": "Entschuldige, bei dieser Anfrage kann ich nicht helfen.",
        "fr": "Désolé, je ne peux pas répondre à cette demande.",
        "es": "Lo siento, no puedo ayudar con esa petición.",
    },
    "noai": {
        "en": "Your profile says noai (you opted out of AI use), so I never put your posts "
              "into a prompt. Remove the opt-out if you want me to answer you.",
        "de": "Dein Profil sagt noai (du hast KI-Nutzung abgelehnt), also gebe ich deine "
              "Beiträge nie in einen Prompt. Nimm das zurück, wenn ich dir antworten soll.",
        "fr": "Ton profil indique noai (tu refuses l'usage par l'IA) : je ne mets donc jamais "
              "tes messages dans un prompt. Retire ce refus si tu veux que je te réponde.",
        "es": "Tu perfil dice noai (rechazas el uso por IA), así que nunca pongo tus mensajes "
              "en un prompt. Quita esa opción si quieres que te responda.",
    },
    "failed": {
        "en": "Sorry, something went wrong and I could not answer. Please ask again later.",
        "de": "Entschuldige, etwas ist schiefgegangen. Bitte frag später noch einmal.",
        "fr": "Désolé, quelque chose s'est mal passé. Redemande-moi plus tard.",
        "es": "Lo siento, algo salió mal. Vuelve a preguntar más tarde.",
    },
    "limited": {
        "en": "You have reached my limit ({limit}). Please try again after {at} UTC "
              "(in {wait}).",
        "de": "Du hast mein Limit erreicht ({limit}). Bitte versuch es nach {at} UTC "
              "wieder (in {wait}).",
        "fr": "Tu as atteint ma limite ({limit}). Réessaie après {at} UTC (dans {wait}).",
        "es": "Has alcanzado mi límite ({limit}). Vuelve a intentarlo después de las {at} "
              "UTC (en {wait}).",
    },
    "image": {
        "en": "Here is your picture. Prompt: “{prompt}”",
        "de": "Hier ist dein Bild. Prompt: „{prompt}“",
        "fr": "Voici ton image. Prompt : « {prompt} »",
        "es": "Aquí tienes tu imagen. Prompt: «{prompt}»",
    },
    "edit": {
        "en": "I cannot edit images here, so I drew a new one from your words.",
        "de": "Bilder bearbeiten kann ich hier nicht, also habe ich aus deinen Worten ein "
              "neues gemalt.",
        "fr": "Je ne peux pas modifier d'images ici, j'en ai donc dessiné une nouvelle "
              "d'après tes mots.",
        "es": "Aquí no puedo editar imágenes, así que dibujé una nueva a partir de tus "
              "palabras.",
    },
    "read": {
        "en": "I read your post and {above} above it.",
        "de": "Ich habe deinen Beitrag und {above} darüber gelesen.",
        "fr": "J'ai lu ton message et {above} au-dessus.",
        "es": "Leí tu mensaje y {above} encima.",
    },
    "read_alone": {
        "en": "I read your post.",
        "de": "Ich habe deinen Beitrag gelesen.",
        "fr": "J'ai lu ton message.",
        "es": "Leí tu mensaje.",
    },
    "posts": {"en": "{n} post(s)", "de": "{n} Beitrag/Beiträge", "fr": "{n} message(s)",
              "es": "{n} mensaje(s)"},
    "left_out": {
        "en": "{n} post(s) by authors who opted out of AI use were left out.",
        "de": "{n} Beitrag/Beiträge von Leuten, die KI-Nutzung abgelehnt haben, habe ich "
              "ausgelassen.",
        "fr": "{n} message(s) d'auteurs refusant l'usage par l'IA ont été laissés de côté.",
        "es": "Omití {n} mensaje(s) de autores que rechazan el uso por IA.",
    },
}  # fmt: skip


def language_of(post: dict[str, Any]) -> str | None:
    """The language a post is written in (``de`` for ``de-AT``), as its ``contentMap`` says."""
    return primary_language(content_language(post))


def pick(language: str | None) -> str:
    """The language our own words are written in for an ask in ``language``."""
    return language if language in MESSAGES["offline"] else "en"


def say(key: str, language: str, **values: Any) -> str:
    return MESSAGES[key][language].format(**values)


def read_line(language: str, above: int, left_out: int) -> str:
    """What the answer read: "I read your post and 2 post(s) above it. 1 post(s) by …"."""
    line = (say("read", language, above=say("posts", language, n=above)) if above
            else say("read_alone", language))  # fmt: skip
    if left_out:
        line += " " + say("left_out", language, n=left_out)
    return line


def wait_text(now: datetime, until: datetime) -> tuple[str, str]:
    """The time to try again (``HH:MM``, with the date when not today) and the wait."""
    minutes = max(1, int((until - now).total_seconds() + 59) // 60)
    wait = f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
    at = until + timedelta(seconds=59)  # round up: never say a minute that is still too early
    shown = at.strftime("%H:%M") if at.date() == now.date() else at.strftime("%Y-%m-%d %H:%M")
    return shown, wait
