"""What the benchmarks in scripts/ share, one module per noun.

- ``data``: where the dev data is, the bench cache, and a library of the dev data
  indexed there once (the real embeddings that the synthetic libraries are made from);
- ``cli``: the real ``lookalike`` CLI as a subprocess, timed;
- ``synthetic``: library-scale vectors made from real embeddings;
- ``timing``: per-query latencies taken in turns, resident memory;
- ``edits``: edited copies of library images (the copy-detection benchmarks);
- ``figures``: the command line every benchmark takes and its JSON summary line.

The benchmarks run as ``python scripts/bench_NAME.py``: Python puts scripts/ on
sys.path by itself, so ``bench_support`` imports beside the installed ``lookalike``
package. Benchmarks import from here, never from one another.
"""
