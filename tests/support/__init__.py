"""Helpers the tests share, one module per noun; ``conftest.py`` holds fixtures only.

- ``data``: where the repository and the dev data are, small slices of the dev images;
- ``cli``: the real ``lookalike`` command line as a subprocess;
- ``vectors``: unit vectors, synthetic classes, libraries of made-up vectors;
- ``fakes``: a small fake model and the random images it embeds;
- ``clip``: a randomly initialised open_clip checkpoint (no network);
- ``webapp``: one small real library per session for the web app tests;
- ``server``: ``lookalike serve`` as a real server process.
"""
