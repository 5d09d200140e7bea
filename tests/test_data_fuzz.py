"""Fuzz test of the converters: >= 200 generated bad inputs in the real layouts (random bytes,
truncated PNG/JPEG, wrong modes, wrong sizes, huge headers, lying extensions, bad values).

Each must end in a one-line ConversionError and leave no final output, or -- for inputs that
are unusual but valid (an RGBA PNG, JPEG bytes named .png) -- a complete dataset that reads
back. Never another exception, a hang or a partial output. The counts are printed:

    pytest tests/test_data_fuzz.py -s
"""

import io
import os
import signal
import struct
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image

from deeplab_tf.data import image_io, schema
from deeplab_tf.data.converters import ade20k, cityscapes, folder, voc2012
from deeplab_tf.data.converters.errors import ConversionError
from tests import miniature

SIZE = (16, 20)
CASE_TIMEOUT_S = 20


def _encode(array, fmt, mode=None, **kwargs):
    buffer = io.BytesIO()
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _png_with_header(width, height):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _jpeg_with_header(rng, width, height):
    data = bytearray(_encode(rng.integers(0, 255, SIZE + (3,), dtype=np.uint8), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _cases(rng):
    """(kind, target 'image'|'mask', file extension, bytes) of every generated bad input."""
    rgb = lambda: rng.integers(0, 255, SIZE + (3,), dtype=np.uint8)  # noqa: E731
    label = lambda shape=SIZE: rng.integers(0, 3, shape).astype(np.uint8)  # noqa: E731
    png, jpeg = _encode(rgb(), "PNG"), _encode(rgb(), "JPEG")
    cases = []
    for _ in range(40):
        cases.append(("random bytes", "image", str(rng.choice([".png", ".jpg", ".bmp"])),
                      rng.bytes(int(rng.integers(1, 3000)))))
    for _ in range(20):
        cases.append(("random bytes", "mask", ".png", rng.bytes(int(rng.integers(1, 2000)))))
    for _ in range(25):
        cases.append(("truncated png", "image", ".png", png[:int(rng.integers(1, len(png) - 1))]))
    for _ in range(25):
        cases.append(("truncated jpeg", "image", ".jpg", jpeg[:int(rng.integers(1, len(jpeg) - 1))]))
    mask_png = _encode(label(), "PNG")
    for _ in range(15):
        cases.append(("truncated mask", "mask", ".png", mask_png[:int(rng.integers(1, len(mask_png) - 1))]))
    wrong_image_modes = [
        ("16-bit png", ".png", _encode((rgb()[..., 0].astype(np.uint16) * 257), "PNG")),
        ("32-bit tiff", ".tif", _encode(rgb()[..., 0].astype(np.int32) * 1000, "TIFF", "I")),
        ("float tiff", ".tif", _encode(rgb()[..., 0].astype(np.float32), "TIFF", "F")),
        ("rgba png", ".png", _encode(np.dstack([rgb(), rgb()[..., :1]]), "PNG", "RGBA")),
        ("la png", ".png", _encode(np.dstack([rgb()[..., 0], rgb()[..., 0]]), "PNG", "LA")),
        ("1-bit png", ".png", _encode(rgb()[..., 0] > 128, "PNG")),
    ]
    cmyk = io.BytesIO()
    Image.fromarray(rgb()).convert("CMYK").save(cmyk, format="JPEG")
    wrong_image_modes.append(("cmyk jpeg", ".jpg", cmyk.getvalue()))
    for i in range(15):
        kind, ext, data = wrong_image_modes[i % len(wrong_image_modes)]
        cases.append((f"image mode: {kind}", "image", ext, data))
    wrong_mask_modes = [
        ("rgb mask", _encode(rgb(), "PNG")),
        ("rgba mask", _encode(np.dstack([rgb(), rgb()[..., :1]]), "PNG", "RGBA")),
        ("la mask", _encode(np.dstack([label(), label()]), "PNG", "LA")),
        ("16-bit mask", _encode(label().astype(np.uint16) * 1000, "PNG")),
        ("float mask", _encode(label().astype(np.float32), "TIFF", "F")),
    ]
    for i in range(15):
        kind, data = wrong_mask_modes[i % len(wrong_mask_modes)]
        cases.append((f"mask mode: {kind}", "mask", ".tif" if "float" in kind else ".png", data))
    for _ in range(25):
        shape = SIZE
        while shape == SIZE:
            shape = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        cases.append(("wrong mask size", "mask", ".png", _encode(label(shape), "PNG")))
    for _ in range(15):
        width, height = (int(v) for v in rng.integers(9000, 2**31 - 1, 2))
        cases.append(("huge png header", "image", ".png", _png_with_header(width, height)))
    for _ in range(10):
        width, height = (int(v) for v in rng.integers(9000, 65535, 2))
        cases.append(("huge jpeg header", "image", ".jpg", _jpeg_with_header(rng, width, height)))
    lying = [("jpeg named .png", "image", ".png", _encode(rgb(), "JPEG")),
             ("png named .jpg", "image", ".jpg", _encode(rgb(), "PNG")),
             ("gif named .png", "image", ".png", _encode(rgb(), "GIF")),
             ("webp named .jpg", "image", ".jpg", _encode(rgb(), "WEBP")),
             ("jpeg mask named .png", "mask", ".png", _encode(rgb(), "JPEG"))]
    for i in range(15):
        kind, target, ext, data = lying[i % len(lying)]
        cases.append((f"lying extension: {kind}", target, ext, data))
    for _ in range(10):
        values = label()
        values[rng.integers(0, SIZE[0]), rng.integers(0, SIZE[1])] = int(rng.integers(3, 255))
        cases.append(("bad label value", "mask", ".png", _encode(values, "PNG")))
    for target in ("image", "mask", "image", "mask", "image"):
        cases.append(("zero bytes", target, ".png", b""))
    return cases


def _outputs(directory):
    return sorted(f for f in os.listdir(directory) if not f.startswith(".")) if os.path.isdir(directory) else []


def _complete(directory, expected):
    """True if ``directory`` holds a manifest and readable shards of ``expected`` examples."""
    import json

    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    total = 0
    for split, entry in manifest["splits"].items():
        for record in tf.data.TFRecordDataset(schema.list_shards(directory, split)):
            fields = schema.parse_example(record)
            image = image_io.decode_image_tensor(fields[schema.IMAGE_ENCODED])
            label = image_io.decode_label_tensor(fields[schema.LABEL_ENCODED])
            assert image.shape[:2] == label.shape[:2]
            total += 1
    return total == expected


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _run(convert, output_dir, expected, counts, failures, what, accepted):
    counts["tried"] += 1
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        convert(output_dir)
    except ConversionError as e:
        if "\n" in str(e) or not str(e):
            failures.append(f"{what}: multi-line error {e!r}")
        counts["clean errors"] += 1
        if _outputs(output_dir):
            counts["partial outputs"] += 1
            failures.append(f"{what}: partial output {_outputs(output_dir)}")
    except _Timeout:
        counts["hangs"] += 1
        failures.append(f"{what}: no answer within {CASE_TIMEOUT_S} s")
    except Exception as e:  # noqa: BLE001 -- a crash is what this test looks for.
        counts["crashes"] += 1
        failures.append(f"{what}: {type(e).__name__}: {e}")
    else:
        try:
            complete = _complete(output_dir, expected)
        except Exception as e:  # noqa: BLE001
            complete = False
            what += f" ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        if complete:
            counts["accepted (valid content)"] += 1
            accepted.add(what)
        else:
            counts["partial outputs"] += 1
            failures.append(f"{what}: accepted but incomplete")
    finally:
        signal.alarm(0)


def _replace(path, ext, data):
    """Replaces the file ``path`` by ``<stem><ext>`` holding ``data``; returns an undo."""
    original = open(path, "rb").read()
    new_path = os.path.splitext(path)[0] + ext
    os.remove(path)
    with open(new_path, "wb") as f:
        f.write(data)

    def undo():
        os.remove(new_path)
        with open(path, "wb") as f:
            f.write(original)

    return undo


def test_fuzz_converters(tmp_path):
    rng = np.random.default_rng(2026)
    counts = dict.fromkeys(["tried", "clean errors", "accepted (valid content)",
                            "partial outputs", "crashes", "hangs"], 0)
    failures, accepted = [], set()
    # Folder layout.
    info = miniature.make_folder(tmp_path / "folder", num_images=2, size=SIZE, rgb_masks=False)
    targets = {"image": os.path.join(info["image_dir"], "img_001.png"),
               "mask": os.path.join(info["label_dir"], "img_001.png")}
    for number, (kind, target, ext, data) in enumerate(_cases(rng)):
        undo = _replace(targets[target], ext, data)
        try:
            _run(lambda out: folder.convert(info["image_dir"], info["label_dir"], out,
                                            num_classes=3, dataset_name="fuzz", num_shards=1,
                                            show_progress=False),
                 str(tmp_path / f"out_{number}"), 2, counts, failures, f"folder {kind} ({target}{ext})",
                 accepted)
        finally:
            undo()
    # The public datasets' layouts: a bad image or label in each.
    voc = miniature.make_voc(tmp_path / "voc", num_train=1, num_val=1, size=SIZE)
    city = miniature.make_cityscapes(tmp_path / "city", num_train=1, num_val=1, size=SIZE)
    ade = miniature.make_ade20k(tmp_path / "ade", num_train=1, num_val=1, size=SIZE)
    voc_id = voc["splits"]["train"][0]
    city_stem = city["splits"]["train_fine"][0]
    city_dir = city_stem.split("_")[0]
    ade_stem = ade["splits"]["train"][0]
    layouts = {
        "voc": (lambda out: voc2012.convert(voc["root"], out, num_shards=1, show_progress=False), 4,
                [voc["image_paths"][voc_id],
                 os.path.join(voc["voc_dir"], "SegmentationClass", voc_id + ".png")]),
        "cityscapes": (lambda out: cityscapes.convert(city["root"], out, num_shards=1, show_progress=False), 2,
                       [os.path.join(city["root"], "leftImg8bit", "train", city_dir, f"{city_stem}_leftImg8bit.png"),
                        os.path.join(city["root"], "gtFine", "train", city_dir, f"{city_stem}_gtFine_labelIds.png")]),
        "ade20k": (lambda out: ade20k.convert(ade["root"] if "root" in ade else str(tmp_path / "ade"), out,
                                              num_shards=1, show_progress=False), 2,
                   [ade["image_paths"][ade_stem],
                    os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(ade["image_paths"][ade_stem]))),
                                 "annotations", "training", ade_stem + ".png")]),
    }
    for name, (convert, expected, paths) in layouts.items():
        for number in range(12):
            path = paths[number % 2]
            original = open(path, "rb").read()
            data = (rng.bytes(int(rng.integers(1, 2000))) if number % 3 == 0
                    else original[:int(rng.integers(1, len(original) - 1))])
            with open(path, "wb") as f:
                f.write(data)
            try:
                _run(convert, str(tmp_path / f"{name}_{number}"), expected, counts, failures,
                     f"{name} {'random bytes' if number % 3 == 0 else 'truncated'} {os.path.basename(path)}",
                     accepted)
            finally:
                with open(path, "wb") as f:
                    f.write(original)
    print("\nconverter fuzz: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    print("accepted kinds: " + "; ".join(sorted(accepted)))
    assert all(kind.startswith(("folder image mode: rgba", "folder image mode: la", "folder image mode: 1-bit",
                                "folder image mode: cmyk", "folder lying extension"))
               for kind in accepted), accepted
    assert not failures, "\n".join(failures[:20])
    assert counts["tried"] >= 200 and counts["clean errors"] >= 180
    assert counts["partial outputs"] == counts["crashes"] == counts["hangs"] == 0
