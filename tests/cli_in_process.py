"""Runs a console script's entry point in the test process, as its command line would.

A ``deeplab-*`` console script is ``run()`` of its ``deeplab_tf.cli`` module: ``run_app(main,
binary)`` parses ``sys.argv`` with the binary's parser and turns bad input into one
``error: ...`` line and exit status 1. Calling that ``run()`` here, with ``sys.argv`` set,
runs the same code as the subprocess without starting Python and importing TensorFlow again
(5-10 s a run on two cores), so the tests of error lines take seconds. Each test file keeps
at least one run of the real binary in a subprocess.

Example:
    result = run_in_process(train.run, ["deeplab-train", "--train_logdir=..."], capfd)
    assert result.returncode == 1 and "error: ..." in result.stderr
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def run_in_process(entry, argv, capfd=None) -> subprocess.CompletedProcess:
    """Calls ``entry()`` (a cli module's ``run``) with ``sys.argv = argv``.

    absl parses flags once per process: the parse is allowed again here and undone
    afterwards (every flag value restored). An exception that is not the binary's own exit
    (a traceback, for the subprocess) propagates to the test.

    Args:
        entry: the console script's function, e.g. ``deeplab_tf.cli.train.run``.
        argv: the command line, program name first.
        capfd: the test's pytest fixture, to capture the output; None (e.g. in a
            module-scoped fixture) leaves it to pytest's own capture.

    Returns:
        subprocess.CompletedProcess with the exit status and what was written to the
        stdout and stderr file descriptors during the run ("" without ``capfd``).
    """
    from absl import app, flags
    from absl.testing import flagsaver

    if capfd is not None:
        capfd.readouterr()  # what the test printed before is not the binary's output
    was_parsed = flags.FLAGS.is_parsed()
    code = 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(app._register_and_parse_flags_with_usage, "done", False)
        patch.setattr(sys, "argv", [str(arg) for arg in argv])
        try:
            with flagsaver.flagsaver():
                try:
                    entry()
                except SystemExit as exit_:
                    code = 0 if exit_.code is None else exit_.code
        finally:
            if not was_parsed:
                flags.FLAGS.unparse_flags()
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = capfd.readouterr() if capfd is not None else ("", "")
    return subprocess.CompletedProcess(list(argv), code, out, err)
