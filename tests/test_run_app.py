"""``run_app``: bad input is one ``error:`` line and exit status 1; a bug keeps its traceback."""

import errno
import os
import subprocess
import sys
import textwrap

import pytest

from deeplab_tf.cli._common import user_error_line
from deeplab_tf.errors import ConfigError, UserError

SCRIPT = textwrap.dedent("""
    import sys
    from deeplab_tf.cli._common import run_app
    from deeplab_tf.errors import UserError

    def main(argv):
        kind = sys.argv_kind
        if kind == "user":
            raise UserError("--thing=3 is not a thing (expected a colour)")
        if kind == "missing":
            open("/nonexistent/folder/file.txt")
        if kind == "bug":
            raise ValueError("an internal invariant broke")
        return 0

    sys.argv_kind = sys.argv.pop(1)
    run_app(main, "deeplab-eval")
""")


def _run(kind, tmp_path):
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("kind, line", [
    ("user", "error: --thing=3 is not a thing (expected a colour)"),
    ("missing", "error: /nonexistent/folder/file.txt: No such file or directory"),
])
def test_user_errors_are_one_line(kind, line, tmp_path):
    result = _run(kind, tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == line
    assert "Traceback" not in result.stderr


def test_a_bug_keeps_its_traceback(tmp_path):
    result = _run("bug", tmp_path)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "an internal invariant broke" in result.stderr


def test_which_errors_are_the_users():
    assert user_error_line(ConfigError("output_stride must be 8, 16 or 32.\n Received: 7")) == \
        "output_stride must be 8, 16 or 32. Received: 7"
    assert user_error_line(UserError("x")) == "x"
    full = OSError(errno.ENOSPC, "No space left on device")
    assert user_error_line(full) == "No space left on device"
    assert user_error_line(PermissionError(13, "Permission denied", "/r/o")) == \
        "/r/o: Permission denied"
    assert user_error_line(ValueError("bug")) is None
    assert user_error_line(KeyError("bug")) is None
    assert user_error_line(OSError("a socket broke")) is None
