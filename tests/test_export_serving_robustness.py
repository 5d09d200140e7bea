"""The serving signature under real-world and hostile input: image modes, a limit on what a
request really allocates (read from the header before decoding, counting the padding, the
passes, every format TensorFlow decodes and the batch; checked against an independent
reckoning), empty and non-image bodies, forged headers, and fuzz runs that stay within a
stated memory figure; the signature keeps serving after every bad request."""

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
STRIDE = 16  # tiny_config's output stride; the export pads to k * 16 + 1 (no crop size)
# The fuzz run's peak resident memory may grow by at most this much (docs/reliability.md).
FUZZ_MEMORY_MIB = 200


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    config = tiny_config(num_classes=3)
    model = calibrated_model(config, seed=3)
    export_config = ExportConfig(max_image_pixels=MAX_PIXELS, inference_precision="float32")
    path = export_saved_model(model, config, export_config, str(tmp_path_factory.mktemp("sm")))
    spec = InferenceSpec.from_export_config(config, export_config)
    fast = inference.prepare_model(model, spec, config)
    signatures = tf.saved_model.load(path).signatures
    signature = signatures["serving_default"]
    return {"signature": signature, "predict_images": signatures["predict_images"],
            "predict": lambda image: inference.predict(
        fast, image[None].astype(np.float32), spec)["labels"].numpy()[0]}


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
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


# ------------------------------------------------------------ what a request really costs


def expected_cost(height, width, crop=(1, 1), stride=STRIDE, scales=(1.0,), flip=False,
                  decoded=None):
    """What a request of one height x width image allocates, reckoned here independently:
    the size padded to the next k * stride + 1 and to the crop, times the passes; at least
    what the decoder holds (``decoded``: a GIF's frames and output, 2 x height x width)."""
    def pad(size, minimum):
        return max(-(-(size - 1) // stride) * stride + 1, minimum)

    passes = sum(max(1.0, s * s) for s in scales) * (2 if flip else 1)
    return max(decoded or height * width,
               pad(height, crop[0]) * pad(width, crop[1]) * passes)


def _image(height, width, fmt="PNG", seed=0, **options):
    array = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return _encode(Image.fromarray(array), fmt, **options)


def _gif_with_large_frame(screen, frame):
    """A GIF whose logical screen says ``screen`` (w, h) but whose one frame is ``frame``:
    TensorFlow decodes the frame's size."""
    data = bytearray(_encode(Image.fromarray(np.zeros(frame[::-1], np.uint8)), "GIF"))
    data[6:10] = struct.pack("<HH", *screen)
    return bytes(data)


def _gif_claiming(width, height):
    """A GIF with a 1x1 screen and one frame declaring width x height (its data a stub)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def _webp_claiming(width, height):
    """A lossy WebP whose VP8 frame header is patched to claim width x height."""
    data = bytearray(_image(16, 16, "WEBP"))
    assert data[12:16] == b"VP8 " and data[23:26] == b"\x9d\x01\x2a"
    data[26:30] = struct.pack("<HH", width, height)
    return bytes(data)


def _webp_canvas(width, height):
    """An extended (VP8X) WebP header declaring a width x height canvas, nothing else."""
    chunk = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (width - 1).to_bytes(3, "little") \
        + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def _jpeg_claiming(width, height):
    data = bytearray(_image(16, 16, "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _serve_all(served, *images):
    outputs = served["signature"](image_bytes=tf.constant(list(images)))
    return outputs["semantic_predictions"].numpy()


def _refused(served, *images, match="Image too large"):
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        _serve_all(served, *images)


def test_limit_counts_padding_formats_frames_and_batches(served):
    good = _image(33, 45)
    before = _serve_all(served, good)
    # Within the header's pixel count but not once padded to the output stride.
    assert expected_cost(2, 1990) > MAX_PIXELS >= 2 * 1990
    _refused(served, _image(2, 1990))
    assert expected_cost(60, 60) > MAX_PIXELS >= 60 * 60
    _refused(served, _image(60, 60))
    # Formats whose size is in another place: WebP, a GIF frame larger than its screen.
    _refused(served, _image(70, 70, "WEBP"))
    _refused(served, _image(70, 70, "WEBP", lossless=True))
    _refused(served, _gif_with_large_frame((10, 10), (70, 70)))
    # A batch: each image within the limit, the request (its padded output) not.
    assert expected_cost(17, 100) * 2 <= MAX_PIXELS < 2 * 100 * 100
    _serve_all(served, _image(17, 100))
    _refused(served, _image(17, 100), _image(100, 17, seed=1))
    # Forged headers are refused from the header, never decoded.
    for forged in (_webp_claiming(16383, 16383), _webp_canvas(16384, 16384),
                   _jpeg_claiming(60000, 60000), _png_header(30000, 30000) + bytes(20),
                   _gif_claiming(9000, 9000)):
        _refused(served, forged)
    # A format whose header is not read (JPEG XL's signature, TIFF) is refused before decoding.
    _refused(served, b"\xff\x0a" + bytes(64), match="Unsupported or unreadable image")
    _refused(served, _image(20, 20, "TIFF"), match="Unsupported or unreadable image")
    # An animated WebP (frames not counted; TensorFlow decodes those only as RGBA): refused.
    frames = [Image.new("RGB", (30, 30), (100 * i, 50, 200 - 90 * i)) for i in range(3)]
    animated = _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=10)
    assert animated[12:16] == b"VP8X" and animated[20] & 0x02
    _refused(served, animated, match="Unsupported or unreadable image")
    # Decoded images of every format within the limit are served.
    for fmt in ("JPEG", "GIF", "BMP", "WEBP"):
        assert _serve_all(served, _image(40, 50, fmt)).shape == (1, 40, 50)
    np.testing.assert_array_equal(_serve_all(served, good), before)


def test_predict_images_counts_the_padding(served):
    predict = served["predict_images"]
    assert predict(images=tf.zeros([1, 40, 50, 3], tf.uint8))["semantic_predictions"].shape == \
        (1, 40, 50)
    for shape in ([1, 2, 1990, 3], [2, 40, 50, 3]):  # 17 x 1999; 2 x 49 x 65 pixels
        with pytest.raises(tf.errors.InvalidArgumentError, match="Image too large"):
            predict(images=tf.zeros(shape, tf.uint8))


@pytest.mark.parametrize("scales, flip, resize, pyramid", [((1.0,), False, None, ()),
                                                           ((0.5, 1.0, 1.75), True, None, ()),
                                                           ((1.0,), False, (33, 65, 8), ()),
                                                           ((1.0, 1.5), False, None, (0.5, 2.0))])
def test_request_cost_matches_an_independent_reckoning(scales, flip, resize, pyramid):
    crop = (65, 65)
    rng = np.random.default_rng(len(scales))
    spec = InferenceSpec(output_stride=STRIDE, pad_value=(127.5,) * 3, scales=scales,
                         add_flipped_images=flip, crop_size=crop,
                         min_resize_value=resize and resize[0],
                         max_resize_value=resize and resize[1],
                         resize_factor=resize and resize[2], image_pyramid=pyramid)
    # The model's own image pyramid (ModelConfig.image_pyramid) runs inside each pass.
    inner = 1.0 + 4.0 if pyramid else 1.0
    sizes = [(1, 1), (1, 99999), (99999, 1), (2 ** 31 - 1, 2 ** 31 - 1)] + [
        tuple(int(v) for v in rng.integers(1, 3000, 2)) for _ in range(20)]
    for height, width in sizes:
        got = float(spec.pixels(height, width))
        if resize is None:
            want = max(height * width,
                       expected_cost(height, width, crop, scales=scales, flip=flip) * inner)
        else:  # resized to at most 65 on the long side, so padded to the crop exactly
            want = max(height * width, 65 * 65)
        assert got == pytest.approx(want, rel=1e-12), (height, width)


def _hostile_cases(rng):
    formats = ["PNG", "JPEG", "WEBP", "GIF", "BMP"]
    cases = []
    for index in range(40):
        fmt = formats[index % len(formats)]
        shape = rng.choice(["thin", "tall", "square", "padded"])
        if shape == "thin":
            size = (int(rng.integers(1, 4)), int(rng.integers(200, 3000)))
        elif shape == "tall":
            size = (int(rng.integers(200, 3000)), int(rng.integers(1, 4)))
        elif shape == "padded":  # around the limit once padded
            size = (int(rng.integers(45, 70)), int(rng.integers(45, 70)))
        else:
            side = int(rng.integers(5, 80))
            size = (side, side)
        decoded = 2 * size[0] * size[1] if fmt == "GIF" else None
        cases.append((f"{shape} {fmt} {size}", _image(*size, fmt, seed=index),
                      expected_cost(*size, decoded=decoded) > MAX_PIXELS))
    for width, height in ((16383, 16383), (16383, 2), (2, 16383)):
        cases.append(("forged webp", _webp_claiming(width, height), True))
        cases.append(("forged webp canvas", _webp_canvas(width, height), True))
        cases.append(("forged jpeg", _jpeg_claiming(width, height), True))
        cases.append(("forged png", _png_header(width, height) + bytes(20), True))
        cases.append(("forged gif", _gif_claiming(width, height), True))
    return cases


def _status(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith(key + ":"))


def test_hostile_fuzz_is_refused_iff_over_the_limit_within_a_memory_figure(served):
    """Thin, tall, padded and square images in every format, and forged headers: refused
    exactly when the independent reckoning says the request is over the limit."""
    cases = _hostile_cases(np.random.default_rng(24))
    _serve_all(served, _image(33, 45))
    with open("/proc/self/clear_refs", "w") as f:  # VmHWM from here on
        f.write("5")
    start = _status("VmRSS")
    refused = served_count = 0
    for name, data, over in cases:
        try:
            labels = _serve_all(served, data)
        except tf.errors.InvalidArgumentError as error:
            assert over, f"{name}: refused within the limit ({error.message[:120]})"
            refused += 1
            continue
        assert not over, f"{name}: served over the limit"
        assert labels.size <= MAX_PIXELS
        served_count += 1
    growth = _status("VmHWM") - start
    print(f"serving hostile fuzz: {len(cases)} requests, {refused} refused, {served_count} "
          f"served, peak RSS +{growth} MiB")
    assert refused >= 15 and served_count >= 10
    assert growth <= FUZZ_MEMORY_MIB


def test_pixel_limit_must_be_a_whole_number_at_least_zero():
    from deeplab_tf.config import DataConfig, ExportConfig
    from deeplab_tf.errors import ConfigError

    for config in (DataConfig, ExportConfig):
        for bad in (-1, 2.5, True):
            with pytest.raises(ConfigError, match=f"Received: max_image_pixels={bad!r}$"):
                config(max_image_pixels=bad)
        assert config(max_image_pixels=0).max_image_pixels == 0
