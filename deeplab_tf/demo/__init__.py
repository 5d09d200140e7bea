"""The embedded demo: synthetic scenes (``scenes``) and the whole job on them (``run``:
``python -m deeplab_tf.demo --workdir=demo_output``, what ``make demo`` runs)."""
