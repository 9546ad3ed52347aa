"""The web app's settings: one declared table of (name, default, help).

``create_app(test_config=...)`` and ``lookalike serve`` override them; docs/api.md
lists every one (a test checks that none is undocumented).
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Setting(NamedTuple):
    name: str
    default: Any
    help: str


SETTINGS: list[Setting] = [
    Setting(
        "MAX_CONTENT_LENGTH",
        32 * 1024 * 1024,
        "Largest request body in bytes (uploads); larger requests get 413.",
    ),
    Setting(
        "UPLOAD_MAX_PIXELS",
        50_000_000,
        "Largest query image in pixels (width x height); larger uploads get 400.",
    ),
    Setting(
        "DECODE_BUDGET_PIXELS",
        50_000_000,
        "Pixels decoded at once across all requests (queries, thumbnails); others wait. "
        "One of the largest uploads (a decoded pixel costs up to 16 bytes in flight: RGBA "
        "compositing, the crop); one image larger than this still runs, alone.",
    ),
    Setting(
        "DECODE_WAIT_S",
        30.0,
        "How long a request waits for the decode budget before it is answered 503.",
    ),
    Setting("SEARCH_K_DEFAULT", 24, "Results returned by a search when k is not given."),
    Setting("SEARCH_K_MAX", 500, "Largest k a search or look-alike request may ask for."),
    Setting("PAGE_SIZE", 60, "Images per page of the library browser (keyset paging)."),
    Setting("PAGE_SIZE_MAX", 500, "Largest page size a browse request may ask for."),
    Setting("THUMBNAIL_SIZE", 256, "Longest side of grid thumbnails, in pixels."),
    Setting("PREVIEW_SIZE", 1024, "Longest side of the image page's preview, in pixels."),
    Setting(
        "THUMBNAIL_DIR",
        None,
        "Where thumbnails are cached; default LIBRARY/thumbnails (memory only if unwritable).",
    ),
    Setting(
        "ALLOWED_HOSTS",
        None,
        "Host names accepted in the Host header (DNS-rebinding guard); None accepts any. "
        "`lookalike serve` on a loopback address sets the loopback names.",
    ),
    Setting(
        "EMBED_THREADS",
        None,
        "Model threads per query for the default model; None: every core for a query "
        "that runs alone, one each for queries that run at once (requests run in "
        "parallel on their own threads).",
    ),
    Setting(
        "SEARCH_RERANK",
        None,
        "Re-rank the top candidates by geometric verification of local features (puts "
        "edited copies of the query first; costs latency). None: the Searcher's default.",
    ),
    Setting(
        "SEARCH_MULTIVIEW",
        None,
        "Also search with the whole query squashed to a square (finds cropped copies; "
        "two model runs per query). None: the Searcher's default.",
    ),
    Setting("WARM_UP", False, "Load the model and the index when the app is created."),
    Setting(
        "EMBEDDER",
        None,
        "An embedder object to use instead of loading the library's model (tests).",
    ),
    Setting(
        "QUERY_KEEP",
        200,
        "Uploaded query images kept in memory under a content id, so a search's URL "
        "(Back, reload, a shared link) works without uploading again.",
    ),
    Setting("QUERY_KEEP_MB", 128, "The most megabytes of uploaded query images kept."),
    Setting(
        "ALLOW_INDEX_JOBS",
        True,
        "Let the web page start indexing a folder on the server (loopback use).",
    ),
]

DEFAULTS: dict[str, Any] = {s.name: s.default for s in SETTINGS}
