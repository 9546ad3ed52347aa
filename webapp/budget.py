"""The server's decode budget: pixels being decoded at once, across all requests.

Each upload is capped (UPLOAD_MAX_PIXELS), but eight concurrent uploads of a 29-byte
GIF with a 7000x7000 canvas, each decoded in full for a box search, took a server from
1.65 GB to 3.6 GB. A request reserves the pixels it will decode (its query's size; a
thumbnail's source, at the size the decoder really produces) before decoding and
gives them back after; while the budget is spent, the next request waits for pixels to
come back, up to DECODE_WAIT_S, then is answered 503. One image larger than the whole
budget still runs, alone. When the last reservation is given back after a large
decode, freed memory is handed back to the system (glibc's ``malloc_trim``), so the
server's size returns after a burst instead of staying at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lookalike.indexer.errors import LookalikeError

log = logging.getLogger(__name__)

# Decodes of at least this many pixels in a burst make the last release trim the heap.
TRIM_AFTER_PIXELS = 4_000_000


class ServerBusy(LookalikeError):
    """The decode budget stayed spent for longer than a request may wait."""

    def __init__(self, pixels: int, wait_s: float) -> None:
        self.pixels = pixels
        self.wait_s = wait_s
        super().__init__(
            f"the server is busy decoding other images (waited {wait_s:g} s); try again"
        )


class PixelBudget:
    """Pixels in flight across threads (see module docstring)."""

    def __init__(
        self,
        capacity: int,
        wait_s: float = 30.0,
        on_wait: Callable[[int], None] | None = None,
        release_memory: Callable[[], None] | None = None,
    ) -> None:
        """
        Args:
            capacity: the most pixels decoded at once.
            wait_s: how long a reservation waits for room before ServerBusy.
            on_wait: called (with the pixels asked for) when a reservation has to wait.
            release_memory: called when the budget empties after a large burst
                (default: glibc's malloc_trim, where there is one).
        """
        if capacity < 1:
            raise ValueError(f"the decode budget must be at least one pixel, not {capacity}")
        self.capacity = capacity
        self.wait_s = wait_s
        self.in_flight = 0
        self.waiting = 0
        self._burst = 0  # pixels reserved since the budget was last empty
        self._cond = threading.Condition()
        self._on_wait = on_wait
        self._release_memory = release_memory or trim_heap

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[int]:
        """Hold ``pixels`` (at most the capacity) for the body; yields what was held.

        Raises:
            ServerBusy: no room came within ``wait_s``.
        """
        held = max(1, min(int(pixels), self.capacity))
        with self._cond:
            if self.in_flight + held > self.capacity:
                self.waiting += 1
                try:
                    if self._on_wait is not None:
                        self._on_wait(held)
                    room = self._cond.wait_for(
                        lambda: self.in_flight + held <= self.capacity, timeout=self.wait_s
                    )
                finally:
                    self.waiting -= 1
                if not room:
                    raise ServerBusy(held, self.wait_s)
            self.in_flight += held
            self._burst += held
        try:
            yield held
        finally:
            self._give_back(held)

    def _give_back(self, held: int) -> None:
        with self._cond:
            self.in_flight -= held
            self._cond.notify_all()
            trim = self.in_flight == 0 and self._burst >= TRIM_AFTER_PIXELS
            if self.in_flight == 0:
                self._burst = 0
        if trim:
            self._release_memory()


def _libc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    trim = getattr(libc, "malloc_trim", None)  # glibc only (not musl, not macOS)
    if trim is None:
        return None
    return lambda: trim(0)


_TRIM = _libc_trim()


def trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc); nothing elsewhere."""
    if _TRIM is not None:
        _TRIM()
