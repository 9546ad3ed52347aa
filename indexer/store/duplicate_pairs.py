"""Stored verdicts of the duplicates pass: which pairs of images were verified.

One row per candidate pair (a < b) that was verified, with the two files' content
hashes at the time, the local matches found (``inliers``; 0: not a copy) and
the kind of copy (lookalike.search.copy_groups.match_kind). A verdict
counts only while both hashes are unchanged, so a later pass re-verifies just the pairs
that involve new or changed images; removing an image removes its rows (ON DELETE
CASCADE). Nothing a person made lives here: the table can always be recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping

from lookalike.indexer.store.catalog import Catalog, ImageRow

Pair = tuple[int, int]  # (smaller id, larger id)


def known_verdicts(catalog: Catalog, rows: Mapping[int, ImageRow]) -> dict[Pair, tuple[int, str]]:
    """Stored verdicts whose two images are in ``rows`` with their recorded hashes."""
    out: dict[Pair, tuple[int, str]] = {}
    cursor = catalog.conn.execute("SELECT a, b, a_hash, b_hash, inliers, kind FROM duplicate_pairs")
    for a, b, a_hash, b_hash, inliers, kind in cursor:
        ra, rb = rows.get(a), rows.get(b)
        if ra is not None and rb is not None and ra["hash"] == a_hash and rb["hash"] == b_hash:
            out[(a, b)] = (inliers, kind)
    return out


def write_verdicts(
    catalog: Catalog, verdicts: Mapping[Pair, tuple[int, str]], rows: Mapping[int, ImageRow]
) -> None:
    """Record (or replace) the verdicts of pairs whose images are in ``rows``; a pair
    with an image removed or changed since (an index run meanwhile) is left out."""
    items = [
        (a, b, rows[a]["hash"], rows[b]["hash"], n, kind, a, rows[a]["hash"], b, rows[b]["hash"])
        for (a, b), (n, kind) in verdicts.items()
        if a in rows and b in rows
    ]
    catalog.write_in_chunks(
        "INSERT OR REPLACE INTO duplicate_pairs (a, b, a_hash, b_hash, inliers, kind) "
        "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS "
        "(SELECT 1 FROM images WHERE id = ? AND hash = ?) AND EXISTS "
        "(SELECT 1 FROM images WHERE id = ? AND hash = ?)",
        items,
    )


def forget_verdicts(catalog: Catalog) -> None:
    """Drop every stored verdict (they were found by another verifier)."""
    with catalog.transaction() as conn:
        conn.execute("DELETE FROM duplicate_pairs")
