"""Image sizes read from the encoded bytes in the graph, before anything is decoded.

``header_size(encoded)`` gives ``(height, width, decoded_pixels)`` (int64 scalars) of the
image TensorFlow's ``decode_image`` would produce, for every format it decodes except
JPEG XL: PNG, JPEG, GIF, BMP and WebP. ``decoded_pixels`` is what the decoder itself holds
(at least ``height * width``; a GIF's frames are all read before the first is returned). An
unrecognised, unsupported (JPEG XL, TIFF...) or unreadable header gives ``-1`` for all three:
callers refuse it without decoding. The reading follows what the decoders allocate:

* PNG: the IHDR chunk (the first chunk, as libpng requires);
* JPEG: the first start-of-frame segment, found by walking the marker segments from the
  start (libjpeg sizes its output from it);
* GIF: every image descriptor, by walking the blocks (TensorFlow's output is the largest
  frame's width x height, whatever the logical screen says);
* BMP: width and height at bytes 18 and 22 (negative height: stored top-down);
* WebP: the VP8X canvas (an animation is unreadable), else the VP8 or VP8L bitstream header.

JPEG and GIF walks stop after a fixed number of steps (a header that needs more is treated
as unreadable), so a forged file costs a bounded amount of work.

``png_format(encoded)`` gives a PNG's ``(bit depth, colour type)`` from its IHDR chunk
(``(-1, -1)`` for anything else): a label must be 8-bit greyscale (0), since TensorFlow
decodes a palette PNG to the grey of its colours, and scales 1/2/4- and 16-bit values.

``is_complete(encoded)`` says whether the file has its end: PNG's IEND chunk, JPEG's
end-of-image marker (in the last 4 KiB), GIF's trailer (its last byte), WebP's RIFF
length; a file cut short
is refused before the decoder fails on it without naming the record.
"""

from __future__ import annotations

import tensorflow as tf

FORMATS = "PNG, JPEG, GIF, BMP or WebP"
_MAX_JPEG_SEGMENTS = 4096
_MAX_GIF_STEPS = 1 << 18  # blocks and sub-blocks: a GIF of up to ~60 MB of image data


def _i64(value):
    return tf.constant(value, tf.int64)


def _unknown():
    return (_i64(-1), _i64(-1), _i64(-1))


class _Bytes:
    """Bounds-checked reads of an encoded image's bytes (0 past the end), each one gather."""

    def __init__(self, encoded):
        data = tf.cast(tf.io.decode_raw(encoded, tf.uint8), tf.int64)
        self.size = tf.size(data, out_type=tf.int64)
        self.data = tf.concat([data, tf.zeros([1], tf.int64)], 0)  # data[size]: 0

    def _read(self, index, count: int):
        """int64 [count]: the bytes from ``index`` (a place outside the data reads 0)."""
        places = tf.cast(index, tf.int64) + tf.range(count, dtype=tf.int64)
        outside = tf.logical_or(places < 0, places >= self.size)
        return tf.gather(self.data, tf.where(outside, self.size, places))

    def at(self, index):
        return self._read(index, 1)[0]

    def big_endian(self, index, count):
        weights = tf.constant([256 ** (count - 1 - i) for i in range(count)], tf.int64)
        return tf.reduce_sum(self._read(index, count) * weights)

    def little_endian(self, index, count):
        weights = tf.constant([256 ** i for i in range(count)], tf.int64)
        return tf.reduce_sum(self._read(index, count) * weights)


def _substr(encoded, start: int, count: int):
    """``count`` bytes from ``start``, or fewer (none) past the end: never an error."""
    return tf.strings.substr(encoded, tf.minimum(start, tf.strings.length(encoded)), count)


def _png(encoded):
    data = _Bytes(tf.strings.substr(encoded, 0, 24))
    ihdr = tf.equal(_substr(encoded, 12, 4), b"IHDR")
    width, height = data.big_endian(16, 4), data.big_endian(20, 4)
    return tuple(tf.where(ihdr, v, _i64(-1)) for v in (height, width, height * width))


def _bmp(encoded):
    data = _Bytes(tf.strings.substr(encoded, 0, 26))
    width, height = data.little_endian(18, 4), data.little_endian(22, 4)
    width = tf.where(width >= 2 ** 31, width - 2 ** 32, width)  # int32, as TensorFlow reads
    height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)  # negative: top-down
    ok = tf.logical_and(width > 0, height > 0)
    return tuple(tf.where(ok, v, _i64(-1)) for v in (height, width, height * width))


def _webp(encoded):
    data = _Bytes(tf.strings.substr(encoded, 0, 30))
    chunk = _substr(encoded, 12, 4)
    lossy = tf.logical_and(tf.equal(chunk, b"VP8 "),
                           tf.equal(_substr(encoded, 23, 3), b"\x9d\x01\x2a"))
    lossless = tf.logical_and(tf.equal(chunk, b"VP8L"), tf.equal(data.at(20), 0x2F))
    # An animation (VP8X flag 0x02) is refused: its frames are not counted here, and
    # TensorFlow decodes an animated WebP only as RGBA, which no caller asks for.
    extended = tf.logical_and(tf.equal(chunk, b"VP8X"),
                              tf.equal(tf.bitwise.bitwise_and(data.at(20), 0x02), 0))
    bits = data.little_endian(21, 4)
    width = tf.where(extended, data.little_endian(24, 3) + 1,
                     tf.where(lossless, bits % (1 << 14) + 1, data.little_endian(26, 2) % (1 << 14)))
    height = tf.where(extended, data.little_endian(27, 3) + 1,
                      tf.where(lossless, (bits // (1 << 14)) % (1 << 14) + 1,
                               data.little_endian(28, 2) % (1 << 14)))
    ok = tf.logical_and(tf.reduce_any([lossy, lossless, extended]),
                        tf.logical_and(width > 0, height > 0))
    return tuple(tf.where(ok, v, _i64(-1)) for v in (height, width, height * width))


def _jpeg(encoded):
    """The first SOFn segment's size, walking the marker segments after SOI."""
    data = _Bytes(encoded)

    def body(position, height, width, state):
        marker = data.at(position + 1)
        is_ff = tf.equal(data.at(position), 0xFF)
        fill = tf.equal(marker, 0xFF)
        standalone = tf.logical_or(tf.logical_and(marker >= 0xD0, marker <= 0xD9),
                                   tf.equal(marker, 0x01))
        length = data.big_endian(position + 2, 2)
        frame = tf.logical_and(tf.logical_and(marker >= 0xC0, marker <= 0xCF),
                               tf.logical_not(tf.reduce_any(
                                   [tf.equal(marker, m) for m in (0xC4, 0xC8, 0xCC)])))
        broken = tf.reduce_any([tf.logical_not(is_ff), position + 4 > data.size,
                                tf.logical_and(tf.logical_not(fill | standalone), length < 2),
                                tf.equal(marker, 0xDA)])  # a scan before any frame header
        found = tf.logical_and(frame, tf.logical_not(broken))
        step = tf.where(fill, _i64(1), tf.where(standalone, _i64(2), 2 + length))
        state = tf.where(broken, _i64(2), tf.where(found, _i64(1), _i64(0)))
        height = tf.where(found, data.big_endian(position + 5, 2), height)
        width = tf.where(found, data.big_endian(position + 7, 2), width)
        return position + step, height, width, state

    _, height, width, state = tf.while_loop(
        lambda position, height, width, state: tf.equal(state, 0), body,
        (_i64(2), _i64(0), _i64(0), _i64(0)), maximum_iterations=_MAX_JPEG_SEGMENTS)
    ok = tf.reduce_all([tf.equal(state, 1), height > 0, width > 0])
    return tuple(tf.where(ok, v, _i64(-1)) for v in (height, width, height * width))


def _gif(encoded):
    """The largest frame (TensorFlow's output size) and the pixels of all frames (read
    into memory together), walking the blocks after the global colour table."""
    data = _Bytes(encoded)
    flags = data.at(10)
    table = tf.where(flags >= 128, 3 * tf.bitwise.left_shift(_i64(2), flags % 8), _i64(0))

    def body(position, in_blocks, height, width, total, state):
        byte = data.at(position)
        at_end = position >= data.size
        # Inside a chain of data sub-blocks: a length byte, 0 ends the chain.
        sub_next = position + 1 + byte
        # At a block: an image descriptor (0x2C), an extension (0x21) or the trailer (0x3B).
        image = tf.equal(byte, 0x2C)
        frame_w, frame_h = data.little_endian(position + 5, 2), data.little_endian(position + 7, 2)
        local = data.at(position + 9)
        local_table = tf.where(local >= 128, 3 * tf.bitwise.left_shift(_i64(2), local % 8),
                               _i64(0))
        block_next = tf.where(image, position + 10 + local_table + 1, position + 2)
        known = tf.logical_or(image, tf.equal(byte, 0x21))
        counted = tf.logical_and(tf.logical_not(in_blocks), image)
        height = tf.where(counted, tf.maximum(height, frame_h), height)
        width = tf.where(counted, tf.maximum(width, frame_w), width)
        total = tf.where(counted, total + frame_w * frame_h, total)
        stop = tf.logical_or(at_end, tf.logical_and(tf.logical_not(in_blocks),
                                                    tf.logical_not(known)))
        next_position = tf.where(in_blocks, sub_next, block_next)
        next_in_blocks = tf.where(in_blocks, byte > 0, _i64(1) > 0)
        return (next_position, next_in_blocks, height, width, total,
                tf.where(stop, _i64(1), _i64(0)))

    _, _, height, width, total, state = tf.while_loop(
        lambda position, in_blocks, height, width, total, state: tf.equal(state, 0), body,
        (13 + table, tf.constant(False), _i64(0), _i64(0), _i64(0), _i64(0)),
        maximum_iterations=_MAX_GIF_STEPS)
    ok = tf.reduce_all([tf.equal(state, 1), height > 0, width > 0])
    decoded = height * width + total
    return tuple(tf.where(ok, v, _i64(-1)) for v in (height, width, decoded))


def header_size(encoded):
    """``(height, width, decoded_pixels)`` int64 scalars of an encoded image, without decoding
    it; ``(-1, -1, -1)`` for a format that is not read here or an unreadable header (see the
    module docstring). One graph function, traced once per process."""
    return tuple(_header_size(tf.convert_to_tensor(encoded, tf.string)))


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def _header_size(encoded):
    length = tf.strings.length(encoded)
    starts = lambda magic: tf.logical_and(  # noqa: E731
        length >= len(magic), tf.equal(tf.strings.substr(encoded, 0, len(magic)), magic))
    is_jpeg, is_gif = starts(b"\xff\xd8\xff"), tf.logical_and(starts(b"GIF8"), length >= 13)
    # Fixed places (PNG, BMP, WebP): read in every case, kept by format (cheap, no branch).
    fixed = [(tf.logical_and(starts(b"\x89PNG\r\n\x1a\n"), length >= 24), _png(encoded)),
             (tf.logical_and(starts(b"BM"), length >= 26), _bmp(encoded)),
             (tf.logical_and(tf.logical_and(starts(b"RIFF"), length >= 30),
                             tf.equal(_substr(encoded, 8, 4), b"WEBP")), _webp(encoded))]
    size = _unknown()
    for matches, values in reversed(fixed):
        size = tuple(tf.where(matches, v, s) for v, s in zip(values, size))
    # Walks (JPEG segments, GIF blocks): only for those formats.
    walked = tf.cond(tf.logical_or(is_jpeg, is_gif),
                     lambda: tf.cond(is_jpeg, lambda: _jpeg(encoded), lambda: _gif(encoded)),
                     _unknown)
    walks = tf.logical_or(is_jpeg, is_gif)
    return tuple(tf.where(walks, w, s) for w, s in zip(walked, size))


def png_format(encoded):
    """``(bit depth, colour type)`` int64 scalars of a PNG's IHDR; ``(-1, -1)`` if
    ``encoded`` is not a PNG whose first chunk is IHDR."""
    encoded = tf.convert_to_tensor(encoded, tf.string)
    data = _Bytes(tf.strings.substr(encoded, 0, 26))
    png = tf.logical_and(tf.equal(tf.strings.substr(encoded, 0, 8), b"\x89PNG\r\n\x1a\n"),
                         tf.equal(_substr(encoded, 12, 4), b"IHDR"))
    return tf.where(png, data.at(24), _i64(-1)), tf.where(png, data.at(25), _i64(-1))


def _holds(encoded, marker: bytes, window: int = 4096):
    """Whether ``marker`` occurs in the last ``window`` bytes."""
    length = tf.strings.length(encoded)
    tail = tf.io.decode_raw(tf.strings.substr(encoded, tf.maximum(length - window, 0), window),
                            tf.uint8)
    size = tf.size(tail)
    found = tf.ones([tf.maximum(size - len(marker) + 1, 0)], tf.bool)
    for offset, byte in enumerate(marker):
        found = tf.logical_and(found, tf.equal(
            tail[offset:offset + tf.maximum(size - len(marker) + 1, 0)], byte))
    return tf.reduce_any(found)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def is_complete(encoded):
    """bool: the encoded image has its end (see the module docstring); True for a format
    without an end marker (BMP: TensorFlow checks its size itself)."""
    length = tf.strings.length(encoded)
    head = lambda n: tf.strings.substr(encoded, 0, n)  # noqa: E731
    riff = _Bytes(tf.strings.substr(encoded, 0, 8)).little_endian(4, 4)
    return tf.case([
        (tf.equal(head(8), b"\x89PNG\r\n\x1a\n"), lambda: _holds(encoded, b"IEND")),
        (tf.equal(head(3), b"\xff\xd8\xff"), lambda: _holds(encoded, b"\xff\xd9")),
        (tf.equal(head(4), b"GIF8"), lambda: _holds(encoded, b"\x3b", 1)),
        (tf.equal(head(4), b"RIFF"), lambda: tf.cast(length, tf.int64) >= riff + 8)],
        default=lambda: tf.constant(True), exclusive=False)
