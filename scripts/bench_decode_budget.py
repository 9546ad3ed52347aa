"""Server memory under a burst of decompression-bomb-like uploads, with the decode budget
and without it (the reference), same run.

Each upload is a GIF of a few dozen bytes whose canvas is 7000x7000 (under the 50 MP
upload cap), searched with a box so that it is decoded in full: the trial in issue 14
saw eight of them at once take a server from 1.65 GB to 3.6 GB, and keep it there.
For each setting a fresh process builds the web app over the dev library, warms up, then
--clients threads post --rounds uploads each at once; resident memory is sampled during
the burst (peak) and read after it (settled). The reference is the per-image cap only
(DECODE_BUDGET_PIXELS = 10^12, no trim: nothing reserves, nothing waits).

    python scripts/bench_decode_budget.py [--clients 8] [--rounds 2] [--json]
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time

from PIL import Image

from bench_support.data import dev_library
from bench_support.figures import emit, parser
from bench_support.timing import rss_mb

SIDE = 7000


def gif_canvas(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, "GIF")
    data = bytearray(out.getvalue())
    data[6:10] = side.to_bytes(2, "little") * 2
    return bytes(data)


def child(budget: int, clients: int, rounds: int) -> dict:
    """One server's figures (runs in its own process, so peaks do not mix)."""
    from lookalike.webapp import budget as budget_module
    from lookalike.webapp import create_app

    if budget >= 10**12:  # the reference: no budget, no trim
        budget_module.TRIM_AFTER_PIXELS = 10**18
    app = create_app(
        dev_library(),
        test_config={"DECODE_BUDGET_PIXELS": budget, "SEARCH_RERANK": False, "WARM_UP": True},
    )
    data = gif_canvas(SIDE)
    box = f"0,0,{SIDE},{SIDE}"
    start = rss_mb()
    peak = [start]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.005)

    statuses: list[int] = []

    def client():
        c = app.test_client()
        for _ in range(rounds):
            form = {"image": (io.BytesIO(data), "q.gif"), "box": box, "k": "3"}
            statuses.append(c.post("/api/search", data=form).status_code)

    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    time.sleep(0.5)
    return {
        "budget": budget,
        "start_mb": round(start),
        "peak_mb": round(peak[0]),
        "after_mb": round(rss_mb()),
        "seconds": round(seconds, 2),
        "statuses": sorted(set(statuses)),
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--child", type=int, default=None, help=argparse_hidden())
    args = p.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.clients, args.rounds)))
        return
    from lookalike.webapp.settings import DEFAULTS

    figures = {}
    for name, budget in (("reference", 10**12), ("budget", DEFAULTS["DECODE_BUDGET_PIXELS"])):
        cmd = [sys.executable, __file__, "--child", str(budget)]
        cmd += ["--clients", str(args.clients), "--rounds", str(args.rounds)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        figures[name] = json.loads(out.strip().splitlines()[-1])
        f = figures[name]
        print(
            f"{name:9} budget {budget:>16,} px: start {f['start_mb']} MB, peak {f['peak_mb']} MB, "
            f"after {f['after_mb']} MB, {f['seconds']} s, statuses {f['statuses']}"
        )
    ref, got = figures["reference"], figures["budget"]
    growth = {k: got[f"{k}_mb"] - got["start_mb"] for k in ("peak", "after")}
    ref_growth = {k: ref[f"{k}_mb"] - ref["start_mb"] for k in ("peak", "after")}
    for k in ("peak", "after"):
        ratio = growth[k] / max(1, ref_growth[k])
        print(f"growth at {k}: {growth[k]} MB vs {ref_growth[k]} MB reference (x{ratio:.2f})")
    emit(args, figures)


def argparse_hidden() -> str:
    return "internal: run one server with this budget and print its figures"


if __name__ == "__main__":
    main()
