"""``python -m deeplab_tf.demo``: the demo end to end (``deeplab_tf.demo.run``)."""

from deeplab_tf.demo.run import main

if __name__ == "__main__":
    main()
