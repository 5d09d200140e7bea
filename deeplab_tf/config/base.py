"""What every config dataclass shares: the dict / JSON round trips and value coercions."""

from __future__ import annotations

import dataclasses
import json
from deeplab_tf.errors import ConfigError

# --max_image_pixels' default for the input pipeline, deeplab-eval/-vis and the serving
# signatures (DataConfig, ExportConfig): the pixels one image really costs (padded size times
# the scale/flip passes: InferenceSpec.pixels; in training, resized at the largest scale and
# padded to the crop). Chosen from the measured peak memory of a serving request at the
# limit (benchmarks/serving_memory.py, docs/reliability.md).
DEFAULT_MAX_IMAGE_PIXELS = 10_000_000
# The converters' default limit on one decoded image (height x width): they hold one image.
DEFAULT_MAX_DECODED_PIXELS = 64_000_000


def check_pixel_limit(value) -> None:
    """ConfigError unless ``max_image_pixels`` is an integer >= 0 (0: no limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("max_image_pixels must be an integer >= 0 (0: no limit). "
                          f"Received: max_image_pixels={value!r}")


def _as_int_tuple(value, name):
    if value is None:
        return ()
    if isinstance(value, (int,)):
        return (int(value),)
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of integers. Received: {name}={value!r}")


def _plain(value):
    """A field value in JSON types: tuples become lists, values with a ``to_json`` (e.g. a
    Dense Prediction Cell's branches) their JSON form."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if hasattr(value, "to_json") and not isinstance(value, type):
        return value.to_json()
    return value


class ConfigMixin:
    """Dict / JSON round trips shared by every config dataclass.

    ``to_dict`` gives plain JSON types (tuples become lists); ``from_dict`` rejects unknown
    keys and lets ``__post_init__`` turn lists back into tuples, so
    ``cls.from_dict(config.to_dict()) == config`` for every config.
    """

    def to_dict(self) -> dict:
        return {field.name: _plain(getattr(self, field.name))
                for field in dataclasses.fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict):
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown {cls.__name__} fields: {unknown}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


def _as_size(value, name):
    """None, or an (h, w) pair of positive ints (one int means a square)."""
    if value is None:
        return None
    size = _as_int_tuple(value, name)
    if not size:
        return None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"{name} must be two positive integers (height, width). Received: {name}={list(size)}")
    return size
