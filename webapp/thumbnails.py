"""Thumbnails and previews of indexed images, made once and cached on disk.

A cached file is named by image id, content hash and size, so an image that
changes gets a new file and its URL (which carries the hash) can be cached by the
browser forever. Files are written aside and renamed into place, so two requests
making the same thumbnail at once, or a crash mid-write, never leave half a file.
When the cache folder cannot be written (a read-only library), thumbnails are
made in memory on each request instead; after a passing error (a full disk) the next
thumbnail is cached again.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from lookalike.indexer.images import decoded_pixels, load_image
from lookalike.webapp.budget import PixelBudget

log = logging.getLogger(__name__)

JPEG_QUALITY = 85
# Errors that say the cache folder cannot be written at all (a read-only library): the
# cache stops trying. Others (ENOSPC, EIO) may pass, so each later thumbnail tries again.
READ_ONLY_ERRORS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class ThumbnailCache:
    """Makes and keeps JPEG thumbnails under ``folder`` (see module docstring)."""

    def __init__(self, folder: str | Path, budget: PixelBudget | None = None) -> None:
        """``budget``: the server's decode budget, held while a thumbnail is made."""
        self.folder = Path(folder)
        self.budget = budget
        self._writable: bool | None = None

    def path_for(self, image_id: int, digest: str, size: int) -> Path:
        return self.folder / str(size) / f"{image_id}-{digest[:16]}.jpg"

    def get(self, image_id: int, read: Callable[[], bytes], digest: str, size: int) -> Path | bytes:
        """The cached file, or the JPEG bytes when the cache cannot be written.

        ``read`` gives the image file's bytes, called only when the thumbnail is made.

        Raises:
            UnreadableImage: the indexed file is no longer an image.
        """
        path = self.path_for(image_id, digest, size)
        if path.exists():
            return path
        source = read()
        if self.budget is None:
            data = render(source, size)
        else:
            with self.budget.reserve(decoded_pixels(source, size)):
                data = render(source, size)
        if self._store(path, data):
            return path
        return data

    def _store(self, path: Path, data: bytes) -> bool:
        if self._writable is False:
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as e:
            if e.errno in READ_ONLY_ERRORS:
                log.warning("thumbnails kept in memory only: cannot write %s (%s)", path.parent, e)
                self._writable = False
            else:  # a full disk, an I/O error: tried again with the next thumbnail
                log.warning("thumbnail not cached: cannot write %s (%s)", path, e)
            return False
        self._writable = True
        return True


def render(source: str | Path | bytes, size: int) -> bytes:
    """A JPEG no larger than ``size`` x ``size``, EXIF-rotated, aspect ratio kept."""
    image = load_image(source, min_side=size).image
    if max(image.size) > size:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
