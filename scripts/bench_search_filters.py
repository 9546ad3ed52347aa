"""Search pages and filters: what a filter or a later page costs a web search.

On a copy of the long-tailed library of the bench cache, 10 images of each class
labelled (by folder name), via the real Flask app (its test client), each query (a
library image, `image_id`, fast mode, 24 results) is searched in turns as: page 1
without a filter (the reference, the search as it was), page 1 of `unlabelled`, page 1
of one class's label (10 images of the library: searched deeper until the page is
full, or the whole library), and page 5 without a filter. Prints p50 wall and CPU
milliseconds per request (CPU: the whole process, the model's threads included) and
the ratio to the reference, measured in the same run.

    python scripts/bench_search_filters.py [--queries 60] [--json]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench_support.data import class_of, long_tailed_library
from bench_support.figures import emit, parser
from lookalike.classifier import labels as label_edits
from lookalike.indexer.store.library import Library
from lookalike.webapp import create_app

CSRF = {"X-Requested-With": "bench"}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--queries", type=int, default=60)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        source = long_tailed_library()  # indexed once into the bench cache
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("thumbnails", ".lock"))
        with Library.open(root, readonly=False) as lib:
            paths = lib.catalog.paths(lib.catalog.browse_ids("all", None, 0, 10**9))
            classes = defaultdict(list)
            for i, path in sorted(paths.items()):
                classes[class_of(path)].append(i)
            for name, members in classes.items():
                if name != "distractors":
                    label_edits.set_labels(lib, members[:10], name)
        measure(args, root)


def measure(args, root: Path) -> None:
    app = create_app(root, test_config={"TESTING": True})
    client = app.test_client()
    ids = client.get("/api/images/ids").get_json()["ids"]
    labels = client.get("/api/labels").get_json()["labels"]
    if not labels:
        raise SystemExit("the bench library has no human labels")
    rare = min(labels, key=lambda row: row["count"])
    kinds = {
        "page 1": {},
        "page 1, unlabelled": {"filter": "unlabelled"},
        f"page 1, label {rare['label']!r} ({rare['count']} images)": {"label": rare["label"]},
        "page 5": {"page": "5"},
    }
    step = max(1, len(ids) // args.queries)
    queries = ids[::step][: args.queries]

    def search(image_id: int, fields: dict) -> int:
        form = {"image_id": str(image_id), "k": "24", "mode": "fast", **fields}
        answer = client.post("/api/search", data=form, headers=CSRF)
        assert answer.status_code == 200, answer.get_json()
        return len(answer.get_json()["results"])

    for q in queries[:5]:  # the model and the index load, caches warm
        for fields in kinds.values():
            search(q, fields)
    wall = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}
    shown = {k: [] for k in kinds}
    names = list(kinds)
    for j, q in enumerate(queries):
        for turn in range(len(names)):
            name = names[(turn + j) % len(names)]
            start, start_cpu = time.perf_counter(), time.process_time()
            shown[name].append(search(q, kinds[name]))
            wall[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
    print(f"{len(ids)} images, {len(queries)} queries, each kind in turns")
    base_wall, base_cpu = np.median(wall[names[0]]), np.median(cpu[names[0]])
    figures = {}
    for name in names:
        w, c = float(np.median(wall[name])), float(np.median(cpu[name]))
        print(
            f"{name:45s} p50 {w:6.1f} ms wall ({w / base_wall:4.2f}x), {c:6.1f} ms CPU "
            f"({c / base_cpu:4.2f}x), {np.mean(shown[name]):4.1f} results"
        )
        figures[name] = {"wall_ms": w, "cpu_ms": c, "wall_ratio": w / base_wall}
    emit(args, figures)


if __name__ == "__main__":
    main()
