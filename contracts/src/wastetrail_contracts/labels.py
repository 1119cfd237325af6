"""The words people read, Vietnamese first with English: one gettext catalogue.

``locale/vi/LC_MESSAGES/wastetrail.po`` holds every label of every output (the household
page, certificates, the indicator report): ``msgctxt`` is the label's key (a treatment
method, a sorting group, an indicator...), ``msgid`` the English text and ``msgstr`` the
Vietnamese. Translators edit that one file with ordinary gettext tools; the code asks by
key, so the same thing is never named two ways.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from babel.messages.pofile import read_po

CATALOGUE = "locale/vi/LC_MESSAGES/wastetrail.po"


@cache
def table() -> dict[str, tuple[str, str]]:
    """Every label: key → (Vietnamese, English)."""
    with files("wastetrail_contracts").joinpath(CATALOGUE).open("rb") as handle:
        catalogue = read_po(handle, locale="vi", domain="wastetrail")
    out: dict[str, tuple[str, str]] = {}
    for message in catalogue:
        if message.id and message.context and isinstance(message.id, str):
            out[message.context] = (str(message.string or message.id), message.id)
    return out


def pair(key: str) -> tuple[str, str]:
    """(Vietnamese, English) of ``key``; the key itself when the catalogue lacks it."""
    return table().get(key, (key, key))


def label(key: str, lang: str = "vi") -> str:
    """The label in one language (``vi`` or ``en``)."""
    vi, en = pair(key)
    return en if lang == "en" else vi


def both(key: str) -> str:
    """``Vietnamese / English``."""
    vi, en = pair(key)
    return f"{vi} / {en}"
