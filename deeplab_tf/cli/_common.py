"""What every binary shares: running an absl main with one-line errors for bad input.

``run_app(main, binary)`` runs ``main`` under ``absl.app.run`` with every deeplab flag known
(``deeplab_tf.cli.flags.parsing``). Errors caused by the input, the flags, the file system or
the disk become ``error: <one line>`` on stderr and exit status 1:

* a ``deeplab_tf.errors.UserError`` (raised on purpose by the library and the binaries: bad
  option values, unusable checkpoints, data, exports, run directories);
* an ``OSError`` about a path (missing, unreadable, unwritable, a file where a folder was
  expected) or about the disk (full, read-only, over quota);
* a TensorFlow error about a file: not found, permission denied, data loss (a corrupt record
  or checkpoint), a full disk; an input-pipeline error that names its shard and record; an
  image of the input data that its decoder refused.

Anything else is a bug and keeps its traceback. Unknown or malformed flags are absl's own
errors (exit 1).

Recipes (``configs/<dataset>/<recipe>.flags``) hold the flags of the whole job (model, data,
training, evaluation), and every binary accepts them: every deeplab flag is defined once in
``deeplab_tf.cli.flags`` and known to every binary; a flag no binary defines (a typo) is an
error.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from typing import Optional

from absl import app

from deeplab_tf.errors import DISK_WORDS, UserError, error_text, one_line, write_failure

# errno values that describe the disk or the file system, not the program.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG}


def _os_error_line(error: OSError) -> Optional[str]:
    if error.filename is None and error.errno not in _DISK_ERRNOS:
        return None
    reason = error.strerror or one_line(error)
    if error.filename is None:
        return reason
    where = f"{error.filename} -> {error.filename2}" if error.filename2 else error.filename
    return f"{where}: {reason}"


def _tensorflow_error_line(error) -> Optional[str]:
    tf = sys.modules.get("tensorflow")
    if tf is None or not isinstance(error, tf.errors.OpError):
        return None
    from deeplab_tf.data.records import error_message  # the shard/record line

    record_line = error_message(error)
    if record_line:
        return record_line
    message = error_text(error)
    if isinstance(error, tf.errors.InvalidArgumentError) and "DecodeImage" in error.message:
        # The input pipeline decoded a record that passed its checks but not the decoder.
        return f"an image or label of the input data could not be decoded ({message})"
    if isinstance(error, (tf.errors.NotFoundError, tf.errors.PermissionDeniedError,
                          tf.errors.DataLossError)):
        return message
    if any(words in message for words in DISK_WORDS):
        return message
    return None


def user_error_line(error: BaseException) -> Optional[str]:
    """The one line an error caused by the input prints, or None for a bug (see the module
    docstring)."""
    if isinstance(error, UserError):
        return one_line(error)
    if isinstance(error, OSError):
        return _os_error_line(error)
    return _tensorflow_error_line(error)


@contextlib.contextmanager
def writing(what: str, destination: str):
    """Turns a failed write in the block (a full or read-only disk, a path through a file:
    any error ``user_error_line`` counts as the user's) into one UserError naming
    ``destination`` (TensorFlow's own message names its temporary files); bugs pass."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:  # noqa: BLE001 -- sorted by user_error_line below
        if user_error_line(error) is None:
            raise
        raise UserError(f"Writing {what} to {destination} failed ({write_failure(error)}); "
                        "nothing was published there") from None


def run_app(main, binary: str):
    """``absl.app.run(main)`` for console script ``binary``: every deeplab flag known (see
    ``deeplab_tf.cli.flags.parsing``), one-line errors for bad input, tracebacks for bugs."""
    from deeplab_tf.cli.flags import flags_parser

    def guarded(argv):
        try:
            return main(argv)
        except Exception as error:
            line = user_error_line(error)
            if line is None:
                raise
            print(f"error: {line}", file=sys.stderr)
            sys.exit(1)

    app.run(guarded, flags_parser=flags_parser(binary))
