"""Parsing for every binary: one recipe flagfile serves them all, a typo is an error.

Every binary imports ``deeplab_tf.cli.flags``, which defines every deeplab flag, so absl
itself rejects a flag no binary defines ("Unknown command line flag"). ``USES`` says which
flag groups (modules of this package) or single flags each binary reads; the rest it
*knows* and ignores. A flag of another binary given in a flagfile (a recipe) is ignored
quietly; given on the command line it gets a one-line notice, e.g.
``--crop_size is a deeplab-export flag; deeplab-train ignores it``. Then the original's
legacy flags are checked (``legacy.LEGACY``): a notice, or an error before any work.
"""

from __future__ import annotations

import sys
from typing import Iterable, List, Set

from absl import flags

from deeplab_tf.errors import UserError
from deeplab_tf.fileio import read_text

FLAGS = flags.FLAGS
_EXPLICIT: Set[str] = set()
_PACKAGE = "deeplab_tf.cli.flags."

_INFERENCE = ("model", "data", "inference", "quantize")
# Which groups (module names of this package) or single flags ("--name") each binary reads.
USES = {
    "deeplab-train": ("model", "data", "train", "quantize"),
    "deeplab-eval": _INFERENCE + ("eval",),
    "deeplab-vis": _INFERENCE + ("vis", "--image_dir"),  # --image_dir: the old --vis_image_dir
    "deeplab-export": _INFERENCE + ("export",),
    "deeplab-bench": ("model", "data", "bench", "--crop_size", "--checkpoint_path"),
    "deeplab-model-stats": ("model", "data", "--crop_size", "--json"),
    "deeplab-convert-checkpoint": ("model", "convert", "--initialize_last_layer",
                                   "--last_layers_contain_logits_only"),
    "deeplab-build-voc2012": ("converters", "--max_image_pixels"),
    "deeplab-build-cityscapes": ("converters", "--max_image_pixels"),
    "deeplab-build-ade20k": ("converters", "--max_image_pixels"),
    "deeplab-build-folder": ("converters", "--max_image_pixels", "--num_classes"),
}


def group_of(name: str):
    """The group (module name in this package) that defines flag ``name``, or None."""
    module = FLAGS.find_module_defining_flag(name)
    if module and module.startswith(_PACKAGE):
        return module[len(_PACKAGE):]
    return None


def uses(binary: str, name: str) -> bool:
    """Whether ``binary`` reads flag ``name``."""
    group = group_of(name)
    if group == "legacy":  # the original's flags: read by the binaries that replace its scripts
        from deeplab_tf.cli.flags import legacy

        return binary in legacy.BY_NAME[name].binaries
    used = USES[binary]
    return f"--{name}" in used or group in used


def users(name: str) -> List[str]:
    """The binaries that read flag ``name``."""
    return [binary for binary in USES if uses(binary, name)]


def command_line_names(args: Iterable[str]) -> Set[str]:
    """Flag names given directly in ``args`` (not through a --flagfile)."""
    names = set()
    for arg in args:
        if arg == "--":
            break
        if not arg.startswith("-") or arg == "-":
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if name not in FLAGS and name.startswith("no") and name[2:] in FLAGS:
            name = name[2:]
        if name in FLAGS and name != "flagfile":
            names.add(name)
    return names


def given_on_command_line(name: str) -> bool:
    """Whether flag ``name`` was given on the command line (not only in a flagfile)."""
    return name in _EXPLICIT


def other_binary_notices(binary: str, explicit: Iterable[str]) -> List[str]:
    """One line per flag given on the command line that ``binary`` does not read."""
    lines = []
    for name in sorted(explicit):
        if group_of(name) is None or uses(binary, name):
            continue
        owners = users(name)
        lines.append(f"--{name} is a {' / '.join(owners)} flag; {binary} ignores it")
    return lines


def legacy_messages(binary: str):
    """(notices, errors): lines for the original's legacy flags given with another value."""
    from deeplab_tf.cli.flags import legacy

    notices, errors = [], []
    for entry in legacy.LEGACY:
        if binary in entry.binaries and entry.fires():
            line = f"--{entry.holder.name}={_shown(entry.holder.value)}: {entry.text}"
            (errors if entry.kind == "error" else notices).append(line)
    return notices, errors


def _shown(value) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _flagfiles(args: Iterable[str]) -> List[str]:
    """The --flagfile paths named in ``args`` (``--flagfile=x`` or ``--flagfile x``)."""
    args, paths = list(args), []
    for index, arg in enumerate(args):
        name, _, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "flagfile":
            if value or "=" in arg:
                paths.append(value)
            elif index + 1 < len(args):
                paths.append(args[index + 1])
    return paths


def undecodable_flagfile(args: Iterable[str], seen=None) -> str:
    """The line saying which --flagfile (given in ``args``, or nested in one) is not UTF-8
    text, for absl's UnicodeDecodeError (which names no file); "" if none is found."""
    seen = set() if seen is None else seen
    for path in _flagfiles(args):
        if path in seen:
            continue
        seen.add(path)
        try:
            text = read_text(path, "one --flag=value per line")
        except UserError as error:
            return f"--flagfile={error}"
        except OSError:
            continue
        found = undecodable_flagfile(text.split(), seen)
        if found:
            return found
    return ""


def flags_parser(binary: str):
    """An ``absl.app.run`` flags_parser for ``binary`` (see the module docstring)."""

    def parse(argv):
        try:
            rest = FLAGS(argv)
        except flags.Error as error:
            print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
            print("Pass --helpfull to see help on flags.", file=sys.stderr)
            sys.exit(1)
        except UnicodeDecodeError as error:  # absl reads flagfiles as text, naming none
            line = undecodable_flagfile(argv[1:]) or (
                f"a --flagfile is not UTF-8 text ({error.reason} at offset {error.start})")
            print(f"error: {line}", file=sys.stderr)
            sys.exit(1)
        explicit = command_line_names(argv[1:])
        _EXPLICIT.clear()
        _EXPLICIT.update(explicit)
        for line in other_binary_notices(binary, explicit):
            print(line, file=sys.stderr)
        notices, errors = legacy_messages(binary)
        for line in notices:
            print(f"note: {line}", file=sys.stderr)
        if errors:
            print(f"error: {errors[0]}", file=sys.stderr)
            sys.exit(1)
        return rest

    return parse
