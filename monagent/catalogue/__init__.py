"""Message texts, one catalogue per language (``en.py``, ``zh.py``), plus the checks' own texts.

A catalogue is a plain mapping of message id -> template (see :mod:`monagent.formatting` for the
field specs). Adding a language is adding a module here and a line to :data:`LANGUAGES`; an id
missing from a catalogue falls back to English, so a new language can grow entry by entry.

The engine's catalogues hold only the engine's words (labels, tags, notices). A check ships its
own texts as the class attribute ``texts = {message id: {language: template}}``
(:class:`monagent.api.Check`); defining the class registers them here (:func:`register`), so
every output finds a check's reason texts and fact labels (``fact.<name>``) by id.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

from monagent.catalogue import en, zh

LANGUAGES: Dict[str, Mapping[str, str]] = {"en": en.MESSAGES, "zh": zh.MESSAGES}

_REGISTERED: Dict[str, Dict[str, str]] = {}  # message id -> language -> template, from the checks


def register(texts: Mapping[str, Mapping[str, str]]) -> None:
    """Add a check's own texts (id -> language -> template); a later class with the same id
    replaces the earlier one (a reloaded plugin). The engine's own ids cannot be replaced."""
    for message_id, by_language in texts.items():
        if message_id in en.MESSAGES:
            raise ValueError(f"text {message_id!r} is one of monagent's own ids; give the check's text its own id")
        _REGISTERED[message_id] = {str(lang): str(template) for lang, template in by_language.items()}


def registered(message_id: str) -> Mapping[str, str]:
    """A check's templates of ``message_id`` by language (empty when no check has it)."""
    return _REGISTERED.get(message_id, {})


def lookup(language: str, message_id: str) -> Optional[str]:
    """The template of ``message_id`` in ``language``, else in English, else None."""
    found = LANGUAGES.get(language, {}).get(message_id)
    if found is None:
        found = _REGISTERED.get(message_id, {}).get(language)
    if found is None:
        found = en.MESSAGES.get(message_id)
    if found is None:
        found = _REGISTERED.get(message_id, {}).get("en")
    return found


__all__ = ["LANGUAGES", "lookup", "register", "registered"]
