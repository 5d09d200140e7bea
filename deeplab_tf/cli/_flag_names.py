"""Names of every flag some deeplab binary defines (generated; see tests/test_cli_flags.py).

A binary ignores these when it does not define them itself, so one recipe flagfile serves
every binary; any other unknown flag is an error.
"""

DEEPLAB_FLAG_NAMES = frozenset()
