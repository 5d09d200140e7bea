"""Miniature data for the Keras tests: coloured squares on grey, their class as labels."""

import numpy as np

IGNORE = 255


def squares(count=8, size=33, seed=0, num_classes=3):
    """(images float32 [N, S, S, 3] in [0, 255], labels int32 [N, S, S, 1]).

    Class 1 is a red square, class 2 a blue one, 0 the grey background; the first two
    columns are the ignore label.
    """
    rng = np.random.default_rng(seed)
    images = np.full((count, size, size, 3), 128.0, np.float32)
    labels = np.zeros((count, size, size, 1), np.int32)
    side = size // 3
    colours = ((220, 30, 30), (30, 30, 220))[: num_classes - 1]
    for i in range(count):
        for cls, colour in enumerate(colours, start=1):
            y, x = rng.integers(0, size - side, size=2)
            images[i, y:y + side, x:x + side] = colour
            labels[i, y:y + side, x:x + side] = cls
    images += rng.normal(0, 5, images.shape).astype(np.float32)
    labels[:, :, :2] = IGNORE
    return np.clip(images, 0, 255), labels
