"""docs/keras.md (the Keras page the README links to) runs as written: its Python blocks are
executed in order in one namespace, in a temporary folder, with ``ZOO_TARBALL`` a zoo tarball
built by the test."""

import os
import re

from test_presets import make_zoo_tarball

KERAS_PAGE = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "keras.md")


def keras_blocks():
    with open(KERAS_PAGE) as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_keras_page_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = keras_blocks()
    assert len(blocks) == 2 and "from_preset" in blocks[1]
    tarball, _ = make_zoo_tarball(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    namespace = {"ZOO_TARBALL": tarball}
    for block in blocks:
        exec(compile(block, "docs/keras.md", "exec"), namespace)
    assert os.path.isfile(tmp_path / "deeplab.keras")
    assert namespace["labels_at_input_size"].shape == (4, 33, 33)
    assert namespace["labels"].shape == (4, 33, 33)
    printed = capsys.readouterr().out
    assert "(4, 33, 33)" in printed and "xception71_dpc_cityscapes_trainfine" in printed
