"""Stored perceptual hashes of the duplicates pass (lookalike.search.image_hash).

One row per image hashed: the file's content hash at the time and the low frequencies
of its gray levels (NULL for a blank image, which has none). A row counts only while
the content hash is unchanged, so a later pass decodes just the new or changed images;
removing an image removes its row (ON DELETE CASCADE). Nothing a person made lives
here: the table can always be recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lookalike.indexer.store.catalog import Catalog, ImageRow


def known_hashes(
    catalog: Catalog, rows: Mapping[int, ImageRow], band: int
) -> dict[int, np.ndarray | None]:
    """Stored coefficients (band x band; None: blank) of the images of ``rows`` whose
    file is unchanged since."""
    out: dict[int, np.ndarray | None] = {}
    cursor = catalog.conn.execute("SELECT image_id, hash, coefficients FROM image_hashes")
    for image_id, content, blob in cursor:
        row = rows.get(image_id)
        if row is None or row["hash"] != content:
            continue
        if blob is None:
            out[image_id] = None
        elif len(blob) == band * band * 4:
            out[image_id] = np.frombuffer(blob, dtype=np.float32).reshape(band, band)
    return out


def write_hashes(
    catalog: Catalog, found: Mapping[int, np.ndarray | None], rows: Mapping[int, ImageRow]
) -> None:
    """Record (or replace) the coefficients of images in ``rows`` (None: blank); an
    image removed or changed since (an index run meanwhile) is left out."""
    items = [
        (
            i,
            rows[i]["hash"],
            None if d is None else np.asarray(d, np.float32).tobytes(),
            i,
            rows[i]["hash"],
        )
        for i, d in found.items()
        if i in rows
    ]
    catalog.write_in_chunks(
        "INSERT OR REPLACE INTO image_hashes (image_id, hash, coefficients) "
        "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM images WHERE id = ? AND hash = ?)",
        items,
    )


def forget_hashes(catalog: Catalog) -> None:
    """Drop every stored hash (they were computed another way)."""
    with catalog.transaction() as conn:
        conn.execute("DELETE FROM image_hashes")
