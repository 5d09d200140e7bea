"""The serving signature under real-world and hostile input: image modes, a pixel limit read
from the header before decoding, empty and non-image bodies, and a fuzz run; the signature
keeps serving after every bad request."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from deeplab_tf.config import ExportConfig
from deeplab_tf import inference
from deeplab_tf.inference import InferenceSpec
from deeplab_tf.export.saved_model import export_saved_model
from export_helpers import encode_jpeg, encode_png
from helpers import tiny_config
from test_inference import calibrated_model

MAX_PIXELS = 4000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    config = tiny_config(num_classes=3)
    model = calibrated_model(config, seed=3)
    export_config = ExportConfig(max_image_pixels=MAX_PIXELS, inference_precision="float32")
    path = export_saved_model(model, config, export_config, str(tmp_path_factory.mktemp("sm")))
    spec = InferenceSpec.from_export_config(config, export_config)
    fast = inference.prepare_model(model, spec, config)
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return {"signature": signature, "predict": lambda image: inference.predict(
        fast, image[None].astype(np.float32), spec)["labels"].numpy()[0]}


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _serve(served, data: bytes):
    outputs = served["signature"](image_bytes=tf.constant([data]))
    height, width = int(outputs["image_height"][0]), int(outputs["image_width"][0])
    return outputs["semantic_predictions"].numpy()[0, :height, :width]


def _agrees_with_predict(served, labels, rgb):
    """The signature's labels of noise pixels against eval's predict (another graph): equal
    but for near-ties, which rounding in another kernel library may flip (<= 0.5 %)."""
    expected = served["predict"](rgb)
    assert labels.shape == expected.shape
    assert (labels == expected).mean() >= 0.995, (labels != expected).sum()


def _rgb(seed=0, size=(33, 45)):
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


@pytest.mark.parametrize("mode,fmt", [("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG"),
                                      ("LA", "PNG"), ("P", "PNG")])
def test_image_modes_become_rgb(served, mode, fmt):
    data = _encode(Image.fromarray(_rgb()).convert(mode), fmt)
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    # JPEG decoders' IDCTs (PIL's vs TensorFlow's) differ by a few levels; PNG exactly.
    tolerance = 3 if fmt == "JPEG" else 0
    assert np.abs(decoded.astype(int) - reference.astype(int)).max() <= tolerance
    if mode in ("L", "LA"):
        assert (decoded == decoded[..., :1]).all()  # gray replicated into R, G and B
    # The same pixels sent as a lossless RGB PNG give the same labels (one graph: exact; the
    # signature's agreement with eval on the test scenes is test_export_saved_model's).
    np.testing.assert_array_equal(_serve(served, data), _serve(served, encode_png(decoded)))


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


def _bad(served, data: bytes, match=None):
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        served["signature"](image_bytes=tf.constant([data]))


def test_pixel_limit_read_from_the_header_and_serving_continues(served):
    good = encode_png(_rgb())  # 33 x 45 = 1485 pixels, under the limit
    before = _serve(served, good)
    _bad(served, _png_header(30000, 30000), "max_image_pixels=4000")  # a decompression bomb
    _bad(served, encode_png(_rgb(size=(70, 70))), "max_image_pixels")  # 4900 > 4000
    _bad(served, encode_jpeg(_rgb(size=(70, 70))), "max_image_pixels")
    _bad(served, b"", "Empty image bytes")
    _bad(served, b"GET / HTTP/1.1\r\n\r\n")
    np.testing.assert_array_equal(_serve(served, good), before)
    _agrees_with_predict(served, before, _rgb())


def _fuzz_cases(rng):
    png, jpeg = encode_png(_rgb(1)), encode_jpeg(_rgb(2))
    gif, bmp = _encode(Image.fromarray(_rgb(3)), "GIF"), _encode(Image.fromarray(_rgb(4)), "BMP")
    cases = [("random", rng.integers(0, 256, int(n), dtype=np.uint8).tobytes())
             for n in rng.integers(1, 400, 15)]
    for name, data in (("png", png), ("jpeg", jpeg), ("gif", gif), ("bmp", bmp)):
        for cut in rng.integers(1, len(data) - 1, 6):
            cases.append((f"truncated {name}", data[:int(cut)]))
    for width, height in ((65535, 65535), (100000, 1), (70, 60), (2 ** 31 - 1, 2)):
        cases.append(("huge png header", _png_header(width, height) + b"\0" * 20))
        cases.append(("huge gif header", b"GIF89a" + struct.pack("<HH", width % 65536,
                                                                height % 65536) + b"\0" * 20))
        cases.append(("huge bmp header", b"BM" + b"\0" * 16 + struct.pack("<ii", min(
            width, 2 ** 31 - 1), -min(height, 2 ** 31 - 1)) + b"\0" * 30))
    for _ in range(6):  # valid magic, corrupted body
        data = bytearray(png)
        data[40:60] = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
        cases.append(("corrupt png body", bytes(data)))
    return cases


def test_fuzz_bad_requests_are_invalid_argument_and_serving_continues(served):
    rng = np.random.default_rng(123)
    good = encode_png(_rgb())
    before = _serve(served, good)
    cases = _fuzz_cases(rng)
    assert len(cases) >= 50
    errors = served_ok = 0
    for name, data in cases:
        try:
            labels = _serve(served, data)
        except tf.errors.InvalidArgumentError:
            errors += 1
            continue
        # Whatever decodes (e.g. a PNG cut only in its trailer) is served whole and sane.
        assert labels.ndim == 2 and labels.size <= MAX_PIXELS, name
        served_ok += 1
    np.testing.assert_array_equal(_serve(served, good), before)
    print(f"serving fuzz: {len(cases)} bad inputs, {errors} InvalidArgument, "
          f"{served_ok} decoded and served, 0 crashes")
    assert errors >= len(cases) - 10
