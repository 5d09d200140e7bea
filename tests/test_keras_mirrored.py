"""fit under MirroredStrategy (2 logical CPUs) makes the same update as on one device with
the global batch: SegmentationLoss averages over the global batch's pixels, the weight decay
counts once, synchronised batch norm normalises with the global batch's statistics (see
tests/keras_mirrored_script.py for what is compared and why)."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


@pytest.mark.slow  # about 70 s on 2 cores: four fits of the tiny model, each traced anew
def test_mirrored_fit_step_equals_one_device_step():
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "keras_mirrored_script.py")], capture_output=True,
        text=True, timeout=600, env=dict(os.environ, PYTHONPATH=HERE))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.rstrip().endswith("OK"), result.stdout[-3000:]
