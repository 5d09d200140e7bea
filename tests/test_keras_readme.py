"""The README's "## Keras" section runs as written: its Python blocks are executed in order in
one namespace, in a temporary folder, with ``ZOO_TARBALL`` a zoo tarball built by the test."""

import os
import re

from test_presets import make_zoo_tarball

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def keras_blocks():
    with open(README) as f:
        text = f.read()
    section = text.split("\n## Keras\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_keras_blocks_run(tmp_path, monkeypatch, capsys):
    blocks = keras_blocks()
    assert len(blocks) == 2 and "from_preset" in blocks[1]
    tarball, _ = make_zoo_tarball(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    namespace = {"ZOO_TARBALL": tarball}
    for block in blocks:
        exec(compile(block, "README.md (Keras)", "exec"), namespace)
    assert os.path.isfile(tmp_path / "deeplab.keras")
    assert namespace["labels_at_input_size"].shape == (4, 33, 33)
    assert namespace["labels"].shape == (4, 33, 33)
    printed = capsys.readouterr().out
    assert "(4, 33, 33)" in printed and "xception71_dpc_cityscapes_trainfine" in printed
