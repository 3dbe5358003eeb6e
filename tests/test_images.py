"""One image loader for every input: phones, scanners, shops and hostile uploads."""
import io

import numpy as np
import pytest
from PIL import Image

from sketchshop.errors import ImageError, TooLarge
from sketchshop.images import load_image, original_box, original_scale


def _bytes(im, fmt="PNG", **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def test_exif_orientation_applied():
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    out = load_image(_bytes(im, "JPEG", exif=exif))
    assert out.size == (20, 40)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_phone_photos_are_read_at_the_working_size(fmt):
    """A 12 MP photo is decoded reduced (JPEG at 1/4 scale), upright, and says how much it was reduced."""
    im = Image.new("RGB", (4032, 3024), (40, 90, 200))
    im.paste((250, 250, 250), (2016, 0, 4032, 3024))  # right half white: shows the orientation
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display: the white half ends at the bottom
    out = load_image(_bytes(im, fmt, exif=exif), max_side=1000)
    assert out.size == (756, 1008) and out.mode == "RGB"
    assert out.info["original_size"] == (3024, 4032) and original_scale(out) == 4.0
    a = np.asarray(out)
    assert a[900, 300].min() > 240 and a[100, 300, 2] > 150  # white bottom, blue top
    small = load_image(_bytes(Image.new("RGB", (1999, 1000)), fmt), max_side=1000)
    assert small.size == (1999, 1000) and original_scale(small) == 1.0  # under 2x: as it is
    assert load_image(_bytes(im, fmt)).size == (4032, 3024)  # no max_side: full size


@pytest.mark.parametrize("size,read", [((16, 320), (16, 320)), ((320, 16), (320, 16)), ((100, 2000), (50, 1000)),
                                       ((150, 3000), (50, 1000))])
def test_long_thin_images_map_back(size, read):
    """A long thin image is reduced like any other, and its boxes map back inside it."""
    out = load_image(_bytes(Image.new("RGB", size, (200, 30, 30)), "PNG"), max_side=1000)
    assert out.size == read and min(out.size) >= 16
    box = original_box((0, 0, out.width + 0.4, out.height + 0.4), out)  # a box to the edge, as a model rounds it
    assert box == [0.0, 0.0, float(size[0]), float(size[1])]


@pytest.mark.parametrize("size", [(16, 321), (5000, 100), (16, 150_000)])
def test_slivers_are_refused(size):
    """Longer than 20:1 is no garment picture, and padding it to a square of its long side would take gigabytes."""
    with pytest.raises(ImageError, match="sliver"):
        load_image(_bytes(Image.new("RGB", size, "white"), "PNG"), max_side=1000)


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "P", "CMYK", "I;16", "1"])
def test_modes_become_rgb(mode):
    im = Image.new(mode, (32, 32))
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    out = load_image(_bytes(im, fmt))
    assert out.mode == "RGB" and out.size == (32, 32)


def test_transparent_pixels_become_white():
    im = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    assert np.asarray(load_image(_bytes(im)))[0, 0].tolist() == [255, 255, 255]


def test_sixteen_bit_keeps_contrast():
    a = np.zeros((32, 32), np.uint16)
    a[:, 16:] = 4000
    out = np.asarray(load_image(_bytes(Image.fromarray(a), "TIFF")))
    assert out[0, 0, 0] == 0 and out[0, 31, 0] == 255


@pytest.mark.parametrize("data,match", [
    (b"", "empty"), (b"hello, not an image" * 10, "not an image"),
])
def test_bad_bytes(data, match):
    with pytest.raises(ImageError, match=match):
        load_image(data)


def _corrupt(fmt: str) -> bytes:
    data = bytearray(_bytes(Image.new("RGB", (64, 64), (200, 30, 30)), fmt))
    if fmt == "PNG":
        data[29] ^= 0xFF  # the header chunk's CRC
    elif fmt == "JPEG":
        i = data.find(b"\xff\xc0")
        data[i + 5:i + 7] = b"\0\0"  # a frame 0 px high
    else:
        data = data[:100]
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "HEIF"])
def test_a_known_header_over_a_broken_body_is_corrupt_not_unknown(fmt):
    """So that the API answers 400 bad_image, not 415 "not a JPEG, PNG, WebP or HEIC image" (found by QA)."""
    if fmt == "HEIF":
        pytest.importorskip("pillow_heif")
    with pytest.raises(ImageError, match="corrupt or truncated image"):
        load_image(_corrupt(fmt))


def test_truncated_jpeg():
    data = _bytes(Image.effect_noise((256, 256), 50).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_tiny_and_missing(tmp_path):
    with pytest.raises(ImageError, match="too small"):
        load_image(_bytes(Image.new("RGB", (8, 100))))
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


def test_pixel_bomb_rejected_before_decoding():
    # A 20000x20000 PNG compresses to a few hundred kB; it must be refused from its header.
    data = _bytes(Image.new("L", (20000, 20000)))
    with pytest.raises(TooLarge, match="pixels"):
        load_image(data, max_pixels=10_000_000)


def test_webp_and_heic_roundtrip():
    im = Image.new("RGB", (64, 48), (10, 200, 30))
    assert load_image(_bytes(im, "WEBP")).size == (64, 48)
    pytest.importorskip("pillow_heif")
    assert load_image(_bytes(im, "HEIF")).size == (64, 48)


def test_has_hints_agrees_with_hint_mask():
    from sketchshop.images import has_hints, hint_mask
    layers = [Image.new("RGBA", (40, 30), (0, 0, 0, 0)), Image.new("RGBA", (40, 30), (255, 255, 255, 255))]
    for base in list(layers):
        for dot in ((200, 30, 30, 255), (200, 30, 30, 100), (230, 230, 230, 255), (10, 10, 10, 0)):
            im = base.copy()
            im.paste(dot, (5, 5, 9, 9))
            layers.append(im)
    for im in layers:
        assert has_hints(im) == bool(hint_mask(np.asarray(im)).any())
    assert [has_hints(im) for im in layers[:2]] == [False, False]
