"""Before/after timing of the training step: run it from each checkout's own venv.

Times ``Trainer._train_step`` (the real step: loss at label size, weight decay, gradient
multipliers, momentum, batch-norm updates) of whichever ``deeplab_tf`` the interpreter imports,
so the same script times an older checkout (e.g. a ``git worktree`` at 387d6d2) and this one:
xception_65 OS16 + decoder, batch 2, synthetic images; 2 warm-up steps, then STEPS timed;
prints one JSON line (not a test).

Usage, from a checkout's root:
  .venv/bin/python /path/to/benchmarks/train_step_ab.py [PRECISION=float32] [STEPS=5] [SIZE=513]
"""

import inspect
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from deeplab_tf.config import ModelConfig, TrainConfig  # noqa: E402
from deeplab_tf.train.loop import Trainer  # noqa: E402

BATCH, CLASSES = 2, 21


def main():
    precision = sys.argv[1] if len(sys.argv) > 1 else "float32"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 513
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (BATCH, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, CLASSES, (BATCH, size, size, 1)).astype(np.int32)

    def dataset_fn(input_context):
        return tf.data.Dataset.from_tensors((images, labels)).repeat()

    model_config = ModelConfig(model_variant="xception_65", num_classes=CLASSES,
                               output_stride=16, atrous_rates=(6, 12, 18),
                               decoder_output_stride=(4,))
    train_config = TrainConfig(train_batch_size=BATCH, training_number_of_steps=100,
                               base_learning_rate=1e-4, save_interval_steps=1000,
                               mixed_precision=precision, jit_compile=False,
                               strategy="one_device")
    with tempfile.TemporaryDirectory() as logdir:
        trainer = Trainer(model_config, train_config, train_logdir=logdir,
                          dataset_fn=dataset_fn, ignore_label=255)
        trainer._initialize()
        iterator = iter(trainer.strategy.distribute_datasets_from_function(dataset_fn))
        # The step's second argument: older checkouts take a stop flag, newer ones
        # [stop, save] requests.
        old = "stop" in inspect.signature(trainer._train_step_fn).parameters
        requests = tf.constant(0.0) if old else tf.constant([0.0, 0.0])
        times, loss = [], None
        for _ in range(2 + steps):
            batch = next(iterator)
            started = time.perf_counter()
            loss = float(trainer._train_step(batch, requests)["cross_entropy"].numpy())
            times.append(time.perf_counter() - started)
    timed = sorted(times[2:])
    print(json.dumps({"tree": os.path.dirname(os.path.dirname(inspect.getfile(Trainer))),
                      "precision": precision, "size": size, "median_s": timed[len(timed) // 2],
                      "best_s": timed[0], "worst_s": timed[-1], "warmup_s": times[:2],
                      "images_per_s": BATCH / timed[len(timed) // 2], "loss": loss}))


if __name__ == "__main__":
    main()
