"""Message texts, one catalogue per language (``en.py``, ``zh.py``).

A catalogue is a plain mapping of message id -> template (see :mod:`monagent.formatting` for the
field specs). Adding a language is adding a module here and a line to :data:`LANGUAGES`; an id
missing from a catalogue falls back to English, so a new language can grow entry by entry.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

from monagent.catalogue import en, zh

LANGUAGES: Dict[str, Mapping[str, str]] = {"en": en.MESSAGES, "zh": zh.MESSAGES}


def lookup(language: str, message_id: str) -> Optional[str]:
    """The template of ``message_id`` in ``language``, else in English, else None."""
    found = LANGUAGES.get(language, {}).get(message_id)
    return found if found is not None else en.MESSAGES.get(message_id)


__all__ = ["LANGUAGES", "lookup"]
