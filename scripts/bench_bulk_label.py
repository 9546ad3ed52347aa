"""Bulk labelling: one POST /api/labels/bulk of 1,000 images (goal: under a second).

On a copy of the long-tailed library of the bench cache (never written itself), via
the real Flask app (its test client: the request handling without the network):
the time of one bulk "label" request of --n images, of its undo, and of a bulk
"remove"; the reference, measured in the same run, is the naive way: one
PUT /api/images/<id>/label per image (timed over --reference images, scaled to --n).

    python scripts/bench_bulk_label.py [--n 1000] [--reference 100] [--json]
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from bench_support.data import bench_cache
from bench_support.figures import emit, parser
from lookalike.webapp import create_app

CSRF = {"X-Requested-With": "bench"}


def timed(call) -> tuple[float, object]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--reference", type=int, default=100)
    args = p.parse_args()
    source = bench_cache() / "long-tailed-library"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("thumbnails", ".lock"))
        client = create_app(root, test_config={"TESTING": True}).test_client()
        ids = client.get("/api/images/ids").get_json()["ids"]
        if len(ids) < args.n + args.reference:
            raise SystemExit(f"the library has {len(ids)} images; need {args.n + args.reference}")
        bulk_ids, single_ids = ids[: args.n], ids[args.n : args.n + args.reference]
        client.get("/api/labels")  # open the connections before timing

        def bulk(action, **extra):
            body = {"action": action, "ids": bulk_ids, **extra}
            answer = client.post("/api/labels/bulk", json=body, headers=CSRF)
            assert answer.status_code == 200, answer.get_json()
            return answer.get_json()

        label_s, doc = timed(lambda: bulk("label", label="bench label"))
        undo_s, undone = timed(
            lambda: client.post("/api/labels/undo", json={"undo": doc["undo"]}, headers=CSRF)
        )
        assert undone.get_json() == {"restored": args.n, "changed_since": []}, undone.get_json()
        remove_s, _ = timed(lambda: bulk("remove"))

        def singles():
            for i in single_ids:
                answer = client.put(f"/api/images/{i}/label", json={"label": "x"}, headers=CSRF)
                assert answer.status_code == 200, answer.get_json()

        single_s, _ = timed(singles)
    naive = single_s * args.n / args.reference
    print(f"bulk label of {args.n} images in one request: {label_s * 1000:.0f} ms (goal < 1000)")
    print(f"its undo: {undo_s * 1000:.0f} ms; bulk remove: {remove_s * 1000:.0f} ms")
    print(
        f"reference, one PUT per image: {naive:.2f} s for {args.n} "
        f"(measured on {args.reference}); bulk / reference = {label_s / naive:.3f}"
    )
    emit(
        args,
        {"n": args.n, "label_s": label_s, "undo_s": undo_s, "remove_s": remove_s, "naive_s": naive},
    )


if __name__ == "__main__":
    main()
