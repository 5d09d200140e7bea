"""image_io and the converters on real-world image kinds: greyscale/CMYK JPEG, RGBA/LA/palette
PNGs, 16-bit PNGs, lying extensions, EXIF rotation, pixel limits, masks with alpha or 16 bits."""

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from deeplab_tf.config import DataConfig
from deeplab_tf.data import image_io, pipeline
from deeplab_tf.data.converters import folder
from deeplab_tf.data.converters.errors import ConversionError
from tests import miniature

SIZE = (40, 50)


def _save(array_or_image, path, format=None, **kwargs):
    image = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(array_or_image)
    image.save(path, format=format, **kwargs)
    return str(path)


def _rgb(seed=0):
    return np.random.default_rng(seed).integers(0, 255, SIZE + (3,), dtype=np.uint8)


def test_image_kinds_are_stored_as_rgb(tmp_path):
    rgb = _rgb()
    rgba = np.concatenate([rgb, np.full(SIZE + (1,), 7, np.uint8)], axis=-1)
    cases = {
        "grey.jpg": (Image.fromarray(rgb[..., 0]), "JPEG", "jpeg", ()),
        "cmyk.jpg": (Image.fromarray(rgb).convert("CMYK"), "JPEG", "jpeg", ()),
        "rgba.png": (Image.fromarray(rgba, "RGBA"), "PNG", "png", (image_io.ALPHA_DROPPED,)),
        "la.png": (Image.fromarray(rgba[..., :2].copy(), "LA"), "PNG", "png", (image_io.ALPHA_DROPPED,)),
        "palette.png": (Image.fromarray(rgb).quantize(16), "PNG", "png", ()),
        "lying.png": (Image.fromarray(rgb), "JPEG", "jpeg", ()),  # JPEG bytes, .png name
        "image.bmp": (Image.fromarray(rgb), "BMP", "png", ()),
    }
    for name, (image, fmt, stored, notes) in cases.items():
        path = _save(image, tmp_path / name, format=fmt)
        got = image_io.read_image(path)
        assert (got.format, got.height, got.width, got.notes) == (stored, 40, 50, notes), name
        decoded = image_io.decode_image_tensor(got.data).numpy()
        assert decoded.shape == SIZE + (3,), name
        with Image.open(path) as reference:
            want = np.asarray(reference.convert("RGB"), np.int64)
        # Same pixels as PIL's RGB conversion (JPEG decoders differ by their IDCT rounding).
        difference = np.abs(decoded.astype(np.int64) - want)
        if stored == "jpeg":
            assert difference.max() <= 8 and difference.mean() < 1.0, name
        else:
            assert difference.max() == 0, name
    assert image_io.read_image(str(tmp_path / "lying.png")).data == open(tmp_path / "lying.png", "rb").read()


def test_refused_images_name_the_file_and_why(tmp_path):
    sixteen = _save((np.arange(2000).reshape(SIZE) * 30).astype(np.uint16), tmp_path / "d16.png")
    with pytest.raises(image_io.ImageError, match=r"d16\.png: 16-bit image \(mode I;16\) is not supported"):
        image_io.read_image(sixteen)
    big = _save(np.zeros((300, 400, 3), np.uint8), tmp_path / "big.png")
    with pytest.raises(image_io.ImageError,
                       match=r"big\.png: image is 400x300 = 120000 pixels, over the limit max_image_pixels=100000"):
        image_io.read_image(big, max_pixels=100_000)
    assert image_io.read_image(big, max_pixels=0).width == 400
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(image_io.ImageError, match=r"empty\.jpg: empty file"):
        image_io.read_image(str(tmp_path / "empty.jpg"))
    data = open(_save(_rgb(), tmp_path / "full.jpg"), "rb").read()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(image_io.ImageError, match=r"cut\.jpg: undecodable image"):
        image_io.read_image(str(tmp_path / "cut.jpg"))


def test_huge_header_is_refused_before_decoding(tmp_path):
    # A PNG header announcing 30000 x 30000 pixels with almost no data: refused from the header.
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    with pytest.raises(image_io.ImageError, match=r"bomb\.png: image is 30000x30000 = 900000000 pixels, "
                       r"over the limit max_image_pixels=64000000"):
        image_io.read_image(str(tmp_path / "bomb.png"))


def test_label_masks(tmp_path):
    label = np.random.default_rng(0).integers(0, 3, SIZE).astype(np.uint8)
    palette = Image.fromarray(label, "L").convert("P")
    palette.putpalette(miniature.class_colors(3).ravel().tolist() + [0] * (768 - 9))
    np.testing.assert_array_equal(image_io.read_index_label(_save(palette, tmp_path / "p.png")), label)
    np.testing.assert_array_equal(image_io.read_index_label(_save(label, tmp_path / "l.png")), label)
    rgba = np.zeros(SIZE + (4,), np.uint8)
    with pytest.raises(image_io.ImageError, match=r"a\.png: label mask has an alpha channel \(mode RGBA\)"):
        image_io.read_color_label(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    with pytest.raises(image_io.ImageError, match=r"m16\.png: label mask has 16-bit .*mode I;16"):
        image_io.read_index_label(_save(label.astype(np.uint16) * 300, tmp_path / "m16.png"))


def test_folder_conversion_of_mixed_images_reads_back_rgb(tmp_path, capsys):
    info = miniature.make_folder(tmp_path / "raw", num_images=3, rgb_masks=False)
    rgb = info["images"]["img_000"]
    rgba = np.concatenate([rgb, np.full(SIZE + (1,), 9, np.uint8)], -1)
    _save(Image.fromarray(rgba, "RGBA"), os.path.join(info["image_dir"], "img_000.png"))
    capsys.readouterr()
    manifest = folder.convert(info["image_dir"], info["label_dir"], str(tmp_path / "out"),
                              num_classes=3, dataset_name="mixed", num_shards=1)
    assert manifest["splits"]["train"]["num_examples"] == 3
    err = capsys.readouterr().err
    assert err.count("alpha channel dropped") == 1 and "img_000.png" in err
    config = DataConfig(dataset="", dataset_dir=str(tmp_path / "out"))
    for ex in pipeline.eval_dataset(config, "train", mean_pixel=0.0):
        name = ex["filename"].numpy()[0].decode()
        np.testing.assert_array_equal(ex["image"].numpy()[0].astype(np.uint8), info["images"][name])


def test_exif_rotated_image_with_a_label_drawn_rotated_is_refused(tmp_path):
    info = miniature.make_folder(tmp_path / "raw", num_images=2, rgb_masks=False)
    exif = Image.Exif()
    exif[0x0112] = 6  # Displayed rotated by 90 degrees.
    _save(Image.fromarray(info["images"]["img_000"]), os.path.join(info["image_dir"], "img_000.jpg"),
          format="JPEG", exif=exif.tobytes())
    os.remove(os.path.join(info["image_dir"], "img_000.png"))
    mask = os.path.join(info["label_dir"], "img_000.png")
    _save(np.rot90(info["labels"]["img_000"], -1).copy(), mask)  # Drawn on the displayed view.
    with pytest.raises(ConversionError, match=r"img_000\.png: label size 50x40 \(HxW\) matches image .*"
                       r"img_000\.jpg only as displayed with its EXIF orientation 6"):
        folder.convert(info["image_dir"], info["label_dir"], str(tmp_path / "out"), num_classes=3,
                       dataset_name="exif", show_progress=False)
    _save(info["labels"]["img_000"], mask)  # Drawn on the stored pixels: used as stored.
    folder.convert(info["image_dir"], info["label_dir"], str(tmp_path / "out"), num_classes=3,
                   dataset_name="exif", show_progress=False)
    config = DataConfig(dataset="", dataset_dir=str(tmp_path / "out"))
    first = next(iter(pipeline.eval_dataset(config, "train", mean_pixel=0.0)))
    assert first["filename"].numpy()[0] == b"img_000"
    assert first["image"].shape[1:3] == SIZE  # Not rotated.
    np.testing.assert_array_equal(first["label"].numpy()[0, ..., 0], info["labels"]["img_000"])
