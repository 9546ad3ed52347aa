"""Text from file names as a terminal shows it safely: escapes, not control sequences.

A file name may hold any byte but ``/`` and NUL: ESC sequences that recolour, retitle
or clear a terminal, newlines that fake a line of output, bidirectional overrides
that reorder what is read, and (as surrogates) bytes that are not UTF-8. The text
output of the commands passes names through :func:`shown`, which writes those as
Python escapes (``\\x1b``, ``\\n``, ``\\u202e``, ``\\udcff``); JSON output escapes them
already.
"""

from __future__ import annotations

import unicodedata

# Bidirectional embeddings, overrides and isolates (category Cf, but they reorder text).
BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def shown(text: object) -> str:
    """``text`` (a path or a message with one) with unsafe characters escaped."""
    s = str(text)
    if s.isprintable() and not BIDI.intersection(s):
        return s
    return "".join(_escape(c) for c in s)


def _escape(c: str) -> str:
    if c in BIDI or unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn"):
        return c.encode("unicode_escape").decode("ascii")
    return c
