"""The embedded demo dataset: deterministic synthetic scenes as an images + masks folder.

Each scene is a textured background with one to three coloured shapes; its classes are the
demo's own, ``DEMO_CLASSES`` (background, disc, square, triangle, bar), with a one-pixel band
of the ignore label (255) around every shape. ``write_folder_layout`` writes the scenes as
JPEG images and RGB colour masks with a palette file and train / val split lists, which
``deeplab-build-folder`` converts into a custom dataset with a manifest (the workflow of a
user's own data); the same seed always gives the same files.

    python -m deeplab_tf.demo.scenes --output_dir=demo_output/raw --num_train=300 --num_val=60
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

from deeplab_tf.fileio import atomic_path, atomic_write_text

DEMO_CLASSES = ("background", "disc", "square", "triangle", "bar")
DATASET_NAME = "demo_shapes"
IGNORE_LABEL = 255
# Mask colour of each class (RGB), and of the ignore band; a shape is drawn in its class's
# colour, each instance varying around it.
DEMO_PALETTE = ((0, 0, 0), (220, 50, 40), (40, 200, 60), (50, 80, 230), (235, 210, 40))
IGNORE_COLOUR = (255, 255, 255)


def _background(rng, size):
    h, w = size
    coarse = rng.uniform(40, 170, size=(h // 16 + 2, w // 16 + 2, 3))
    image = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((w, h), Image.BILINEAR),
                       np.float32)
    image += rng.normal(0, 12, size=(h, w, 3))  # texture
    stripes = 15 * np.sin(np.arange(w) / rng.uniform(2, 6))[None, :, None]
    return image + stripes


def _shape_mask(kind, rng, size):
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    r = rng.uniform(0.10, 0.22) * min(h, w)
    if kind == 1:  # disc
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
    if kind == 2:  # axis-aligned square
        return (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
    if kind == 3:  # upward triangle
        top, bottom = cy - r, cy + r
        half_width = (yy - top) / (2 * r) * r * 1.2
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
    # bar: a long thin rectangle
    if rng.uniform() < 0.5:
        return (np.abs(yy - cy) <= r * 0.35) & (np.abs(xx - cx) <= r * 1.6)
    return (np.abs(yy - cy) <= r * 1.6) & (np.abs(xx - cx) <= r * 0.35)


def _boundary(label):
    """Pixels whose 4-neighbourhood holds another class: VOC-style 255 band."""
    edge = np.zeros(label.shape, bool)
    edge[1:] |= label[1:] != label[:-1]
    edge[:-1] |= label[1:] != label[:-1]
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[:, :-1] |= label[:, 1:] != label[:, :-1]
    return edge


def make_scene(rng, size=(112, 112)):
    """(image uint8 [h, w, 3], label uint8 [h, w]) for one scene."""
    image = _background(rng, size)
    label = np.zeros(size, np.uint8)
    for _ in range(rng.integers(1, 4)):
        kind = int(rng.integers(1, 5))
        mask = _shape_mask(kind, rng, size)
        colour = np.array(DEMO_PALETTE[kind], np.float32) * rng.uniform(0.8, 1.1)
        image[mask] = colour + rng.normal(0, 8, size=(int(mask.sum()), 3))
        label[mask] = kind
    label[_boundary(label)] = IGNORE_LABEL
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_palette_file(path: str) -> str:
    """Writes the demo's ``deeplab-build-folder`` palette file (mask colour -> class)."""
    lines = [f"{r} {g} {b}  # {name}" for (r, g, b), name in zip(DEMO_PALETTE, DEMO_CLASSES)]
    lines.append("{} {} {} {}  # shape boundaries: the ignore label".format(
        *IGNORE_COLOUR, IGNORE_LABEL))
    return atomic_write_text(path, "\n".join(lines) + "\n")


def folder_layout(output_dir) -> dict:
    """Paths of the demo's folder layout under ``output_dir`` (see ``write_folder_layout``)."""
    return {"images": os.path.join(output_dir, "images"),
            "masks": os.path.join(output_dir, "masks"),
            "palette": os.path.join(output_dir, "palette.txt"),
            "train": os.path.join(output_dir, "train.txt"),
            "val": os.path.join(output_dir, "val.txt")}


def write_folder_layout(output_dir, num_train=300, num_val=60, size=(112, 112), seed=0):
    """Writes the demo scenes as an images folder and a colour-masks folder.

    ``output_dir/images/<id>.jpg``, ``output_dir/masks/<id>.png`` (RGB: ``DEMO_PALETTE``, the
    ignore band in ``IGNORE_COLOUR``), ``output_dir/palette.txt`` (``write_palette_file``) and
    the split lists ``output_dir/train.txt`` / ``val.txt`` (one stem per line): what
    ``deeplab-build-folder`` takes. Returns ``folder_layout(output_dir)``. Files are replaced
    atomically and ``val.txt`` comes last, so its presence means the layout is complete.
    """
    paths = folder_layout(output_dir)
    os.makedirs(paths["images"], exist_ok=True)
    os.makedirs(paths["masks"], exist_ok=True)
    colours = np.zeros((256, 3), np.uint8)
    colours[:len(DEMO_PALETTE)] = DEMO_PALETTE
    colours[IGNORE_LABEL] = IGNORE_COLOUR
    rng = np.random.default_rng(seed)
    names = {"train": [], "val": []}
    for index in range(num_train + num_val):
        name = f"demo_{index:05d}"
        image, label = make_scene(rng, size)
        _save_atomic(Image.fromarray(image), os.path.join(paths["images"], name + ".jpg"),
                     quality=95)
        _save_atomic(Image.fromarray(colours[label]), os.path.join(paths["masks"], name + ".png"))
        names["train" if index < num_train else "val"].append(name)
    write_palette_file(paths["palette"])
    for split in ("train", "val"):
        atomic_write_text(paths[split], "\n".join(names[split]) + "\n")
    return paths


def _save_atomic(image, path, **kwargs):
    with atomic_path(path) as tmp:
        image.save(tmp, format="JPEG" if path.endswith(".jpg") else "PNG", **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_train", type=int, default=300)
    parser.add_argument("--num_val", type=int, default=60)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_folder_layout(args.output_dir, args.num_train, args.num_val, (args.size, args.size),
                        args.seed)
    print(f"Wrote {args.num_train} train + {args.num_val} val scenes under {args.output_dir}")


if __name__ == "__main__":
    main()
