"""Names of every flag some deeplab binary defines (generated; see tests/test_cli_flags.py).

A binary ignores these when it does not define them itself, so one recipe flagfile serves
every binary; any other unknown flag is an error. Regenerate after adding a flag:

    python -m deeplab_tf.cli._flag_names
"""

BINARIES = {
    "deeplab-train": "deeplab_tf.cli.train",
    "deeplab-eval": "deeplab_tf.cli.eval",
    "deeplab-vis": "deeplab_tf.cli.vis",
    "deeplab-export": "deeplab_tf.cli.export",
    "deeplab-convert-checkpoint": "deeplab_tf.cli.convert_checkpoint",
    "deeplab-bench": "deeplab_tf.cli.bench",
    "deeplab-model-stats": "deeplab_tf.cli.model_stats",
    "deeplab-build-voc2012": "deeplab_tf.cli.build_voc2012",
    "deeplab-build-cityscapes": "deeplab_tf.cli.build_cityscapes",
    "deeplab-build-ade20k": "deeplab_tf.cli.build_ade20k",
    "deeplab-build-folder": "deeplab_tf.cli.build_folder",
}

DEEPLAB_FLAG_NAMES = frozenset()


def flags_of(module: str):
    """Sorted names of the flags that importing ``module`` defines (in a fresh process)."""
    import json
    import subprocess
    import sys

    code = ("import importlib, json; from absl import flags; importlib.import_module(%r); "
            "print(json.dumps(sorted({f.name for m, fl in flags.FLAGS.flags_by_module_dict()"
            ".items() if m.startswith('deeplab_tf') for f in fl})))" % module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def all_flag_names():
    names = set()
    for module in BINARIES.values():
        names.update(flags_of(module))
    return sorted(names)


if __name__ == "__main__":
    import os
    import re

    path = os.path.abspath(__file__)
    text = open(path).read()
    body = "frozenset({\n" + "".join(f"    {n!r},\n" for n in all_flag_names()) + "})"
    text = re.sub(r"DEEPLAB_FLAG_NAMES = frozenset\((?:\{.*?\})?\)", lambda m: "DEEPLAB_FLAG_NAMES = " + body,
                  text, count=1, flags=re.S)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    print(f"Wrote {path}")
