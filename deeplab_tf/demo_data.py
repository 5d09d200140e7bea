"""The embedded demo dataset: deterministic synthetic scenes in the PASCAL VOC 2012 layout.

Each scene is a textured background with one to three coloured shapes (disc, square,
triangle, bar), written as ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg`` with a palette PNG label
in ``SegmentationClass/<id>.png`` (class indices in the VOC palette; a one-pixel band of 255
around every shape, like VOC's boundary annotations) and the ``ImageSets/Segmentation`` split
lists. So the demo exercises the real VOC converter, ``deeplab-build-voc2012``.

Shapes use VOC class indices 1-4 (DEMO_CLASSES names what they draw); the same seed always
gives the same files.

    python -m deeplab_tf.demo_data --output_dir=demo_output/raw --num_train=300 --num_val=60
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image

DEMO_CLASSES = ("background", "disc", "square", "triangle", "bar")
# Mean colour of each shape class (RGB); each instance varies around it.
_COLOURS = {1: (220, 50, 40), 2: (40, 200, 60), 3: (50, 80, 230), 4: (235, 210, 40)}


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
        colour = np.array(_COLOURS[kind], np.float32) * rng.uniform(0.8, 1.1)
        image[mask] = colour + rng.normal(0, 8, size=(int(mask.sum()), 3))
        label[mask] = kind
    label[_boundary(label)] = 255
    return np.clip(image, 0, 255).astype(np.uint8), label


def write_voc_layout(output_dir, num_train=300, num_val=60, size=(112, 112), seed=0):
    """Writes the demo scenes under ``output_dir/VOCdevkit/VOC2012``; returns that path.

    Existing files with the same content are left as they are (re-running is cheap).
    """
    from deeplab_tf.data.palettes import pascal_palette

    root = os.path.join(output_dir, "VOCdevkit", "VOC2012")
    for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    palette = pascal_palette(256).astype(np.uint8).reshape(-1).tolist()
    rng = np.random.default_rng(seed)
    names = {"train": [], "val": []}
    for index in range(num_train + num_val):
        split = "train" if index < num_train else "val"
        name = f"demo_{index:05d}"
        image, label = make_scene(rng, size)
        _save_atomic(Image.fromarray(image), os.path.join(root, "JPEGImages", name + ".jpg"),
                     quality=95)
        png = Image.fromarray(label, mode="P")
        png.putpalette(palette)
        _save_atomic(png, os.path.join(root, "SegmentationClass", name + ".png"))
        names[split].append(name)
    lists = dict(names, trainval=names["train"] + names["val"])
    for split, items in lists.items():
        path = os.path.join(root, "ImageSets", "Segmentation", split + ".txt")
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(items) + "\n")
        os.replace(path + ".tmp", path)
    return root


def _save_atomic(image, path, **kwargs):
    tmp = path + ".tmp"
    image.save(tmp, format="JPEG" if path.endswith(".jpg") else "PNG", **kwargs)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_train", type=int, default=300)
    parser.add_argument("--num_val", type=int, default=60)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    root = write_voc_layout(args.output_dir, args.num_train, args.num_val,
                            (args.size, args.size), args.seed)
    print(f"Wrote {args.num_train} train + {args.num_val} val scenes under {root}")


if __name__ == "__main__":
    main()
