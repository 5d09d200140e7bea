"""Reading images and label masks: one place for formats, modes and size limits.

Used by the converters (files on disk), the tf.data pipeline and the serving signatures
(encoded bytes in records and requests: ``decode_image_tensor``; their sizes are read
before decoding by ``deeplab_tf.data.image_headers``).

Images (``read_image``):
- the format is recognised from the content, never from the extension (a ``.png`` holding a
  JPEG is read as the JPEG it is);
- greyscale and CMYK JPEGs are kept as they are (the decoders turn them into RGB, as the
  original's ADE20K handling); RGB PNGs too;
- RGBA / LA / palette PNGs become RGB PNGs with the alpha channel dropped (counted, and said
  once per conversion); other formats (BMP, TIFF, WebP, GIF...) are re-encoded as RGB PNG;
- 16-bit images (PNG or TIFF) are refused with an error naming the file and the bit depth
  (no silent rescaling): convert them to 8 bits per channel first;
- EXIF orientation is *not* applied, to the image nor to the label: both are used in stored
  pixel order, as TensorFlow's decoders and the original do. An image whose EXIF tag says it
  is displayed rotated by 90 degrees and whose label only fits the rotated view is refused
  (``check_orientation``), so an image is never paired with a label rotated against it;
- an image over ``max_pixels`` (the converters' default: 64 Mpx) is refused from its header, before decoding.

Label masks (``read_index_label``, ``read_color_label``): palette and greyscale PNGs are read
as indices (the palette index is the class); colour masks as RGB for a palette file; a mask
with an alpha channel or 16-bit values is an error naming the file and the mode.
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
import warnings
from typing import Optional, Tuple

import numpy as np
from PIL import Image

from deeplab_tf.config.base import \
    DEFAULT_MAX_DECODED_PIXELS as DEFAULT_MAX_IMAGE_PIXELS  # the converters' default
from deeplab_tf.data.errors import DataError
from deeplab_tf.errors import one_line

_PIL_LIMIT_LOCK = threading.Lock()  # PIL's own bomb limit is lifted while we open a header.
ALPHA_DROPPED = "alpha channel dropped"
_EXIF_ORIENTATION = 0x0112
_ROTATED_ORIENTATIONS = (5, 6, 7, 8)  # Orientations that swap height and width.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # The IEND chunk, with its CRC.
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageError(DataError):
    """An image or mask that cannot be used; the message is one line naming the file."""


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """An image ready to store: its bytes, ``"jpeg"`` or ``"png"``, size and notes.

    Attributes:
        data: bytes. The file's own bytes (JPEG, RGB/greyscale PNG) or an RGB PNG re-encoding.
        format: str. ``"jpeg"`` or ``"png"``, from the content.
        height, width: int. Size in stored pixel order.
        orientation: int. The EXIF orientation tag (1 when absent).
        notes: tuple of str. Conversions applied (e.g. ``ALPHA_DROPPED``).
    """

    data: bytes
    format: str
    height: int
    width: int
    orientation: int = 1
    notes: Tuple[str, ...] = ()


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ImageError(f"{path}: cannot read {what} ({e.strerror or one_line(e)})") from None
    if not data:
        raise ImageError(f"{path}: empty file where {what} was expected")
    return data


def _png_bit_depth(data: bytes) -> Optional[int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24 and data[12:16] == b"IHDR":
        return data[24]
    return None


def open_image(data: bytes, path: str, what: str = "image",
               max_pixels: int = 0) -> Image.Image:
    """Opens from the content (header only) and enforces the pixel limit before decoding.

    Raises:
        ImageError: undecodable header, no pixels, or over ``max_pixels`` (0: no limit).
    """
    try:
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # Checked below.
            try:
                image = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except Exception as e:  # noqa: BLE001 -- PIL raises many types for bad files.
        reason = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", one_line(e))
        raise ImageError(f"{path}: undecodable {what} ({reason})") from None
    width, height = image.size
    if max_pixels and width * height > max_pixels:
        raise ImageError(
            f"{path}: {what} is {width}x{height} = {width * height} pixels, over the limit "
            f"max_image_pixels={max_pixels}")
    if width < 1 or height < 1:
        raise ImageError(f"{path}: {what} has no pixels ({width}x{height})")
    return image


def _load(image: Image.Image, path: str, what: str) -> None:
    try:
        image.load()
    except Exception as e:  # noqa: BLE001 -- truncated or corrupt data.
        raise ImageError(f"{path}: undecodable {what} ({one_line(e)})") from None


def _check_complete(data: bytes, image_format: str, path: str) -> None:
    """Refuses JPEG / PNG files cut short (PIL decodes some of them without complaint)."""
    tail = data[-4096:]
    if image_format == "JPEG" and b"\xff\xd9" not in tail:
        raise ImageError(f"{path}: truncated JPEG image (no end-of-image marker)")
    if image_format == "PNG" and _PNG_END not in tail:
        raise ImageError(f"{path}: truncated PNG image (no IEND chunk)")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 -- a broken EXIF block: treated as absent.
        return 1


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def read_image(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> EncodedImage:
    """Reads an image file for storing in a record (rules in the module docstring).

    Args:
        path: str. The image file (any format PIL reads; recognised from the content).
        max_pixels: int. Largest accepted width * height; 0 for no limit.

    Raises:
        ImageError: unreadable, empty, undecodable, truncated, 16-bit or too large; the
            message names the file and what was found.
    """
    data = _read_bytes(path, "image")
    image = open_image(data, path, "image", max_pixels)
    with image:
        depth = _png_bit_depth(data)
        if depth == 16 or image.mode in _SIXTEEN_BIT_MODES:
            raise ImageError(
                f"{path}: {depth or 16}-bit image (mode {image.mode}) is not supported; "
                "convert it to 8 bits per channel")
        _load(image, path, "image")
        _check_complete(data, image.format, path)
        width, height = image.size
        orientation = _orientation(image)
        if image.format == "JPEG" and image.mode in ("L", "RGB", "CMYK"):
            return EncodedImage(data, "jpeg", height, width, orientation)
        if image.format == "PNG" and image.mode in ("L", "RGB"):
            return EncodedImage(data, "png", height, width, orientation)
        notes = ()
        if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
            notes = (ALPHA_DROPPED,)
        return EncodedImage(_png_bytes(image.convert("RGB")), "png", height, width,
                            orientation, notes)


def check_orientation(image: EncodedImage, image_path: str, label_shape, label_path: str):
    """Refuses an image displayed rotated (EXIF) whose label only fits the rotated view.

    Raises:
        ImageError: if the EXIF orientation swaps height and width and the label's size is
            the swapped one (it was drawn on the displayed image, not the stored pixels).
    """
    if (image.orientation in _ROTATED_ORIENTATIONS and image.height != image.width
            and tuple(label_shape) == (image.width, image.height)):
        raise ImageError(
            f"{label_path}: label size {label_shape[0]}x{label_shape[1]} (HxW) matches image "
            f"{image_path} only as displayed with its EXIF orientation {image.orientation}; "
            "images are used in stored pixel order: rotate the image file (e.g. exiftran -ai) "
            "so that it has no orientation tag")


def _open_label(path: str, max_pixels: int) -> Image.Image:
    data = _read_bytes(path, "label image")
    image = open_image(data, path, "label image", max_pixels)
    if image.mode in _SIXTEEN_BIT_MODES:
        image.close()
        raise ImageError(f"{path}: label mask has 16-bit or floating-point values (mode "
                         f"{image.mode}); masks must be 8-bit index or colour PNGs")
    if image.mode in _ALPHA_MODES:
        image.close()
        raise ImageError(f"{path}: label mask has an alpha channel (mode {image.mode}); "
                         "save it without alpha (index, greyscale or RGB)")
    _load(image, path, "label image")
    try:
        _check_complete(data, image.format, path)
    except ImageError:
        image.close()
        raise
    return image


def read_index_label(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """Class indices of a single-channel mask (greyscale, or palette: the index is the class).

    Raises:
        ImageError: a colour mask (RGB/CMYK...), an alpha channel, 16-bit values, or an
            undecodable file; the message names the file and the mode.
    """
    with _open_label(path, max_pixels) as image:
        if image.mode not in ("L", "P", "1"):
            raise ImageError(f"{path}: is a {image.mode} colour mask where a single-channel "
                             "index mask was expected")
        return np.asarray(image)


def read_color_label(path: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> np.ndarray:
    """int64 [H, W, 3] colours of a colour mask (RGB, palette or greyscale).

    Raises:
        ImageError: an alpha channel, 16-bit values or an undecodable file.
    """
    with _open_label(path, max_pixels) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int64)


# ----------------------------------------------------------------------------- tf.data side


def decode_image_tensor(encoded):
    """uint8 [H, W, 3] from JPEG / PNG / BMP / GIF bytes, recognised from the content.

    Greyscale and CMYK JPEGs become RGB; the alpha channel of an RGBA PNG is dropped.
    """
    import tensorflow as tf

    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_label_tensor(encoded):
    """uint8 [H, W, 1] class indices from a single-channel PNG's bytes."""
    import tensorflow as tf

    label = tf.io.decode_image(encoded, channels=1, expand_animations=False)
    return tf.cast(label, tf.uint8)
