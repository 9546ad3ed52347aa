"""Words for numbers in the CLI's sentences: "1 image", "2 images"."""

from __future__ import annotations

IRREGULAR = {
    "copy": "copies",
    "class": "classes",
    "box": "boxes",
    "stale box": "stale boxes",
    "new category": "new categories",
}


def count(n: int, noun: str) -> str:
    """``n`` and ``noun``, singular for one: count(1, "copy") == "1 copy"."""
    if n == 1:
        return f"1 {noun}"
    return f"{n} {IRREGULAR.get(noun, noun + 's')}"
