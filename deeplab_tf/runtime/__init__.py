"""How the process runs on this machine: the allocator setting and the oneDNN choice that
``import deeplab_tf`` applies before TensorFlow loads (``allocator``, ``onednn``), and what
the hardware computes fast (``hardware``: ``--mixed_precision=auto``)."""
