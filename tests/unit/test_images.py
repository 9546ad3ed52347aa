"""Image loading: every Pillow mode, EXIF rotation, reduced-size decoding, bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lookalike.indexer.errors import UnreadableImage
from lookalike.indexer.images import center_crop_resize, load_image, parse_box, to_rgb
from tests.support.data import dev_images


def _png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def _photo() -> Image.Image:
    return Image.open(dev_images(1, 1)[0]).convert("RGB")


def test_rgba_composited_on_white():
    img = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent red
    out = load_image(_png(img)).image
    assert out.mode == "RGB"
    assert out.getpixel((5, 5)) == (255, 255, 255)


def test_palette_with_transparency_and_la():
    p = Image.new("P", (20, 20), 0)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.paste(1, (10, 0, 20, 20))
    out = load_image(_png(p, transparency=0)).image
    assert out.getpixel((2, 2)) == (255, 255, 255)
    assert out.getpixel((15, 5)) == (10, 200, 30)
    la = Image.new("LA", (8, 8), (100, 255))
    assert load_image(_png(la)).image.getpixel((0, 0)) == (100, 100, 100)


def test_sixteen_bit_grayscale_is_scaled_not_clipped():
    arr = np.full((16, 16), 40000, dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = load_image(_png(img)).image
    value = out.getpixel((0, 0))[0]
    assert 150 <= value <= 160  # 40000 / 257 = 155.6, not clipped to 255


def test_cmyk_jpeg():
    buf = io.BytesIO()
    _photo().convert("CMYK").save(buf, "JPEG")
    out = load_image(buf.getvalue()).image
    assert out.mode == "RGB" and out.size == _photo().size


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 0, 255)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    out = load_image(buf.getvalue()).image
    r, g, b = out.getpixel((5, 5))
    assert r > 200 and b < 50


def test_exif_orientation_applied_and_size_reported_upright():
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # a white bar on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    loaded = load_image(buf.getvalue())
    assert (loaded.width, loaded.height) == (20, 60)
    assert loaded.image.size == (20, 60)
    assert loaded.image.getpixel((10, 2))[0] > 200  # the bar is now at the top


def test_draft_decoding_keeps_enough_pixels():
    big = _photo().resize((2400, 1800))
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    loaded = load_image(buf.getvalue(), min_side=256)
    assert (loaded.width, loaded.height) == (2400, 1800)
    assert min(loaded.image.size) >= 256
    assert min(loaded.image.size) < 1800  # really decoded at reduced size


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty file"),
        (b"just some text, not a JPEG\n", "not a readable image"),
        (b"<html><body>not a png</body></html>", "not a readable image"),
    ],
)
def test_bad_files_raise_unreadable(data, reason):
    with pytest.raises(UnreadableImage) as err:
        load_image(data, name="x.jpg")
    assert reason in err.value.reason


def test_truncated_jpeg_is_unreadable():
    buf = io.BytesIO()
    _photo().save(buf, "JPEG")
    with pytest.raises(UnreadableImage):
        load_image(buf.getvalue()[: len(buf.getvalue()) // 3])


def test_decompression_bomb_refused_with_raisable_limit():
    img = Image.new("1", (5000, 5000))
    data = _png(img)
    with pytest.raises(UnreadableImage) as err:
        load_image(data, max_pixels=10_000_000)
    assert "too large" in err.value.reason and "--max-pixels" in err.value.reason
    assert load_image(data, max_pixels=30_000_000).image.size == (5000, 5000)


def test_directory_is_unreadable(tmp_path):
    d = tmp_path / "x.jpg"
    d.mkdir()
    with pytest.raises(UnreadableImage) as err:
        load_image(d)
    assert "directory" in err.value.reason


def test_center_crop_resize_matches_torchvision():
    import torch
    from torchvision import transforms

    img = _photo()
    ours = np.asarray(center_crop_resize(img, 256, 224), dtype=np.float32)
    ref = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224)])(img)
    ref = np.asarray(ref, dtype=np.float32)
    assert ours.shape == ref.shape == (224, 224, 3)
    # Same transform up to sub-pixel rounding of the crop box.
    assert np.abs(ours - ref).mean() < 6.0
    assert torch.is_tensor(torch.from_numpy(ours))


def test_to_rgb_keeps_rgb_untouched():
    img = Image.new("RGB", (3, 3), (1, 2, 3))
    assert to_rgb(img) is img


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "", "1,2,3,4,5", "1;2;3;4"])
def test_parse_box_refuses_what_is_not_four_numbers_with_the_callers_error(text):
    class Refused(Exception):
        pass

    with pytest.raises(Refused, match=r"four numbers X0,Y0,X1,Y1, not"):
        parse_box(text, Refused)


def test_parse_box_reads_four_numbers():
    assert parse_box(" 1, 2.5,30,4e1") == (1.0, 2.5, 30.0, 40.0)
