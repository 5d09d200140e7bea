"""Placeholder: being written (see issue 2)."""


def build(images, config, variant):
    raise NotImplementedError("resnet_v1 backbone is not written yet")
