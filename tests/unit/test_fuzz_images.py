"""Fuzzing image loading with Hypothesis: random bytes and mutated real images (every
allowed format) through the loader, the header reader, thumbnails and the upload
path. Each gives an image or UnreadableImage (a 400 on the web), never another
exception and never a hang: bounded examples and pixel limits, no deadline."""

from __future__ import annotations

import io
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.images import decoded_pixels, load_image
from lookalike.webapp.thumbnails import render
from tests.support.data import dev_images
from tests.support.webapp import CSRF, build_library, make_app, upload

EXAMPLES = 150
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_PIXELS = 4_000_000  # keeps a mutated header's claimed canvas quick to refuse or decode
FORMATS = {
    "JPEG": {},
    "PNG": {},
    "GIF": {},
    "WEBP": {},
    "BMP": {},
    "TIFF": {"compression": "tiff_lzw"},
}


@cache
def seeds() -> dict[str, bytes]:
    """A small real photo in each allowed format."""
    photo = Image.open(dev_images(1, 1)[0]).convert("RGB")
    photo.thumbnail((48, 48))
    out = {}
    for fmt, options in FORMATS.items():
        buf = io.BytesIO()
        photo.save(buf, fmt, **options)
        out[fmt] = buf.getvalue()
    return out


@st.composite
def mutated(draw) -> bytes:
    """A real image with bytes flipped, cut, repeated or inserted (the header often hit)."""
    data = bytearray(seeds()[draw(st.sampled_from(sorted(FORMATS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "dup"]))
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        if draw(st.booleans()):
            at = min(at, 64)  # headers: sizes, offsets, counts
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif kind == "cut":
            data = data[: max(1, at)]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "dup" and data:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


hostile = st.binary(max_size=2048) | mutated()


def load_or_refuse(data: bytes, **options) -> None:
    try:
        loaded = load_image(data, max_pixels=MAX_PIXELS, **options)
    except UnreadableImage:
        return
    assert loaded.image.mode == "RGB"
    assert loaded.width * loaded.height <= MAX_PIXELS


@FUZZ
@given(data=hostile, min_side=st.sampled_from([None, 256]))
def test_loading_hostile_bytes_gives_an_image_or_unreadable_image(data, min_side):
    load_or_refuse(data, min_side=min_side)


@FUZZ
@given(data=hostile)
def test_the_header_reader_never_raises(data):
    assert decoded_pixels(data, 256) >= 0


@FUZZ
@given(data=mutated())
def test_thumbnails_of_hostile_files_give_a_jpeg_or_unreadable_image(data):
    if decoded_pixels(data) > MAX_PIXELS:
        return  # refused by the pixel limit (load_or_refuse covers it)
    try:
        jpeg = render(data, 64)
    except UnreadableImage:
        return
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    library = build_library(tmp_path_factory.mktemp("fuzzimg"))
    return make_app(library, UPLOAD_MAX_PIXELS=MAX_PIXELS).test_client()


def test_uploads_of_hostile_images_are_200_or_400(client):
    @settings(FUZZ, max_examples=EXAMPLES // 3)
    @given(data=hostile, box=st.sampled_from([None, "0,0,10,10", "0,0,1e9,5"]))
    def run(data, box):
        fields = {"k": 2} if box is None else {"k": 2, "box": box}
        response = client.post("/api/search", data=upload(data, **fields), headers=CSRF)
        assert response.status_code in (200, 400), response.get_json()

    run()
