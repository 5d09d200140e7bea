"""Defaults taken from the config dataclasses, and the parsers every flag group shares.

A flag's default is read from its config field (``default(ModelConfig, "output_stride")``),
so it is written once. ``parse_size`` is the one parser of every size flag: both list forms
the original used are accepted (``--crop_size=513,513`` and ``--crop_size=513
--crop_size=513``), one value means a square, and when a recipe's size is followed by
another on the command line the last one given wins.
"""

from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from deeplab_tf.errors import ConfigError


class FlagValueError(ConfigError):
    """A flag value that cannot be used: the message names the flag and the value."""


def default(config_cls, field_name: str):
    """The default of ``config_cls.field_name`` (a dataclass field)."""
    for field in dataclasses.fields(config_cls):
        if field.name == field_name:
            if field.default is not dataclasses.MISSING:
                return field.default
            return field.default_factory()
    raise KeyError(f"{config_cls.__name__} has no field {field_name!r}")


def list_default(config_cls, field_name: str) -> Optional[List[str]]:
    """A config tuple default as an absl list/multi flag default (None when empty)."""
    value = default(config_cls, field_name)
    if value is None or value == ():
        return None
    return [str(v) for v in value] if not isinstance(value, str) else [value]


def size_default(config_cls, field_name: str) -> Optional[List[str]]:
    """A config (h, w) default as a size flag's default (``["513,513"]``), or None."""
    value = default(config_cls, field_name)
    return None if not value else [",".join(str(v) for v in value)]


def _tokens(values: Sequence[str]) -> List[str]:
    return [str(v).strip() for v in values if str(v).strip()]


def parse_size(values, flag_name: str) -> Optional[Tuple[int, int]]:
    """(height, width) from a size flag's values; None when the flag is empty.

    Args:
        values: list of str. The flag's occurrences, e.g. ``["513,513"]`` or
            ``["513", "513"]``; several occurrences (a recipe's, then the command line's):
            the last complete size wins.
        flag_name: str. For the error message.

    Raises:
        FlagValueError: not one or two positive integers.
    """
    tokens = _tokens(values or [])
    if not tokens:
        return None
    received = " ".join(f"--{flag_name}={t}" for t in tokens)
    last_pair = max((i for i, t in enumerate(tokens) if "," in t), default=-1)
    singles = tokens[last_pair + 1:]
    if not singles:
        parts = tokens[last_pair].split(",")
    elif len(singles) == 1:
        parts = singles * 2
    elif len(singles) % 2 == 0:
        parts = singles[-2:]
    else:
        raise FlagValueError(
            f"--{flag_name} must be 'height,width' (or given twice: height, then width). "
            f"Received: {received}")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise FlagValueError(
            f"--{flag_name} must be two integers 'height,width'. Received: {received}") from None
    if height < 1 or width < 1:
        raise FlagValueError(f"--{flag_name} must be positive. Received: {received}")
    return height, width


def parse_ints(values, flag_name: str) -> Tuple[int, ...]:
    """A tuple of ints from a list flag (``--decoder_output_stride=8,4``); () when empty."""
    tokens = [t for v in _tokens(values or []) for t in v.split(",") if t.strip()]
    try:
        return tuple(int(t) for t in tokens)
    except ValueError:
        raise FlagValueError(
            f"--{flag_name} must be integers. Received: --{flag_name}={','.join(tokens)}") from None
