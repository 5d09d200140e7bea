"""Placeholder: being written (see issue 2)."""


def build(images, config, variant):
    raise NotImplementedError("mobilenet_v2 backbone is not written yet")
