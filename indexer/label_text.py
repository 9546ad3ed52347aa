"""The one rule for the text of a human label, applied wherever a label is made.

Folder names, cluster accept and merge names, CSV import, the API and the CLI
all reach the catalog through :meth:`Catalog.set_labels`, which applies
:func:`check_label` to every label and :func:`canonical` against the labels
already there. A label is NFKC-normalised (full-width forms become ASCII),
trimmed, at most 100 characters, made of letters, marks and digits of any
script (Devanagari and Tamil vowel signs, Arabic vowel marks) plus space and
``_ . ' ( ) & + -``, with at least one letter or digit. Labels match
case-insensitively: a label that differs from an existing one only in case
takes the existing (first) spelling.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from lookalike.indexer.errors import LookalikeError

MAX_LABEL_LENGTH = 100
PUNCTUATION = "_ .'()&+-"


class BadLabel(LookalikeError):
    def __init__(self, label: str, reason: str) -> None:
        self.label = label
        self.reason = reason
        super().__init__(f"label {label!r}: {reason}")


def _allowed(c: str) -> bool:
    return c in PUNCTUATION or unicodedata.category(c)[0] in "LMN"


def normal_form(label: str) -> str:
    """The label as it is stored: NFKC-normalised (full-width forms become ASCII) and
    trimmed (check_label checks the rest)."""
    return unicodedata.normalize("NFKC", label).strip()


def check_label(label: str) -> str:
    """The label normalised (NFKC) and trimmed; BadLabel saying why when it is not usable."""
    if not isinstance(label, str):
        raise BadLabel(repr(label), "a label must be text")
    text = normal_form(label)
    if not text:
        raise BadLabel(label, "empty label")
    if len(text) > MAX_LABEL_LENGTH:
        raise BadLabel(label, f"longer than {MAX_LABEL_LENGTH} characters")
    odd = sorted({c for c in text if not _allowed(c)})
    if odd:
        shown = " ".join(repr(c) for c in odd)
        raise BadLabel(
            label,
            f"odd characters {shown} (use letters, marks and digits of any script, "
            f"spaces and {' '.join(PUNCTUATION.replace(' ', ''))})",
        )
    if not any(unicodedata.category(c)[0] in "LN" for c in text):
        raise BadLabel(label, "a label needs at least one letter or digit")
    return text


def match_key(label: str) -> str:
    """What two labels that are the same label share (case-insensitive)."""
    return label.casefold()


def first_spellings(existing: Iterable[str]) -> dict[str, str]:
    """match_key -> the first of ``existing`` with it: the spelling a label takes."""
    first: dict[str, str] = {}
    for name in existing:
        first.setdefault(match_key(name), name)
    return first


def canonical(labels: Iterable[str], existing: Iterable[str]) -> dict[str, str]:
    """Checked label -> the spelling to store: an existing label's, else the first given."""
    first = first_spellings(existing)
    out: dict[str, str] = {}
    for label in labels:
        text = check_label(label)
        out[label] = first.setdefault(match_key(text), text)
    return out
