"""Uploaded query images kept for a while under a content id, so a search's URL works.

The search page puts ``?query=ID`` (with the box, mode and result count) in its URL
after an upload; Back, a reload or the shared link searches again with ``query=ID``
instead of the file. The store is in memory, least recently used first out, bounded
by ``QUERY_KEEP`` images and ``QUERY_KEEP_MB`` megabytes; a restart forgets it, and an
id it no longer holds answers 404 saying to upload the image again. The id is the
first 24 hex digits of the content's SHA-256: the same picture gets the same id.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict

from lookalike.webapp.services import NotFound

ID_PATTERN = re.compile(r"[0-9a-f]{24}")


class QueryStore:
    """Uploaded query images by content id, bounded in count and bytes (module docstring)."""

    def __init__(self, keep: int, keep_bytes: int) -> None:
        self.keep = keep
        self.keep_bytes = keep_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0

    def put(self, data: bytes) -> str:
        """Keep ``data``; returns its id."""
        key = hashlib.sha256(data).hexdigest()[:24]
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return key
            self._items[key] = data
            self._bytes += len(data)
            while self._items and (len(self._items) > self.keep or self._bytes > self.keep_bytes):
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)
        return key

    def get(self, key: str) -> bytes:
        """The image kept under ``key``; NotFound when it is not (or no longer) kept."""
        with self._lock:
            data = self._items.get(key) if ID_PATTERN.fullmatch(key or "") else None
            if data is not None:
                self._items.move_to_end(key)
        if data is None:
            raise NotFound(
                "query image",
                key,
                f"the query image {key} is no longer kept on the server; upload it again",
            )
        return data
