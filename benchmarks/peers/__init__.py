"""The original's graphs rebuilt TF1 style (its variable names, fused batch norm, slim L2,
one ``Session.run`` per step), as same-machine speed peers of this project's training step
and inference: not part of the installed package. Scripts in ``benchmarks/`` import them as
``peers.*`` (their folder is on ``sys.path`` when run as ``python benchmarks/SCRIPT.py``)."""
