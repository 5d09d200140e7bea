"""Training throughput: images/s of the real training step (``train.loop.Trainer``).

Each combination of precision and XLA runs in its own process, one after another (a
513x513 xception_65 step holds several GB): a ``Trainer`` on synthetic data (images uniform in
[0, 255], labels with 5 % ignore pixels) runs ``warmup + steps`` steps through
``Trainer.run`` — loss with the ignore label, weight decay, gradient multipliers, momentum
update, label checks — and every step's wall time is recorded; the first ``warmup`` steps
(tracing, XLA compilation) are left out. ``"auto"`` precision is resolved by
``hardware.resolve_mixed_precision`` and reported with its reason.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deeplab_tf.bench.timing import Summary
from deeplab_tf.bench.worker import Worker

IGNORE_LABEL = 255


@dataclasses.dataclass
class TrainResult:
    precision: str
    jit_compile: bool
    batch_size: int
    summary: Optional[Summary] = None
    reason: str = ""
    error: str = ""
    loss: Optional[float] = None

    @property
    def images_per_second(self) -> Optional[float]:
        return self.batch_size / self.summary.median if self.summary else None

    @property
    def name(self) -> str:
        return f"train/{self.precision}{'/xla' if self.jit_compile else ''}"


def synthetic_batch(batch_size, height, width, num_classes, seed=0):
    """(images float32 [b, h, w, 3] uniform in [0, 255], labels int32 [b, h, w, 1] with
    about 5 % ``IGNORE_LABEL``): the fixed batch every training benchmark steps on."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch_size, height, width, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, (batch_size, height, width, 1)).astype(np.int32)
    labels[rng.random(labels.shape) < 0.05] = IGNORE_LABEL
    return images, labels


def synthetic_dataset_fn(batch_size, height, width, num_classes, seed=0):
    """A ``Trainer`` dataset_fn that repeats ``synthetic_batch`` (each replica its share):
    what the training benchmarks and the original-graph peer step on."""
    import tensorflow as tf

    images, labels = synthetic_batch(batch_size, height, width, num_classes, seed)

    def dataset_fn(input_context):
        per_replica = input_context.get_per_replica_batch_size(batch_size)
        return tf.data.Dataset.from_tensors((images[:per_replica],
                                             labels[:per_replica])).repeat()

    return dataset_fn


def time_trainer_steps(model_config_dict: dict, height: int, width: int, batch_size: int,
                       precision: str, jit_compile: bool, steps: int, warmup: int,
                       strategy: str = "one_device") -> Tuple[List[float], float]:
    """(wall seconds of each step after ``warmup``, last loss) of ``Trainer.run``."""
    from deeplab_tf.config import ModelConfig, TrainConfig
    from deeplab_tf.train.loop import Trainer

    model_config = ModelConfig.from_dict(model_config_dict)
    total = warmup + steps
    train_config = TrainConfig(
        train_batch_size=batch_size, training_number_of_steps=total, base_learning_rate=1e-4,
        log_steps=total, save_interval_steps=10 * total, mixed_precision=precision,
        jit_compile=jit_compile, strategy=strategy)
    with tempfile.TemporaryDirectory() as logdir:
        trainer = Trainer(model_config, train_config, train_logdir=logdir,
                          dataset_fn=synthetic_dataset_fn(batch_size, height, width,
                                                 model_config.num_classes),
                          ignore_label=IGNORE_LABEL)
        step_fn = trainer._train_step  # the loop's compiled step, timed where run() calls it
        times = []

        def timed(*args, **kwargs):
            start = time.perf_counter()
            outputs = step_fn(*args, **kwargs)
            for value in outputs.values():  # the loop reads them right after
                value.numpy()
            times.append(time.perf_counter() - start)
            return outputs

        trainer._train_step = timed
        result = trainer.run()
    return times[warmup:], float(result.loss)


def _train_factory(*args):
    return (lambda: time_trainer_steps(*args)), {}


def train_benchmarks(model_config_dict: dict, height: int, width: int, batch_size: int = 2,
                     precisions: Sequence[str] = ("float32", "bfloat16"),
                     jit: Sequence[bool] = (False, True), steps: int = 3, warmup: int = 1,
                     strategy: str = "one_device", log=print) -> List[TrainResult]:
    """Trainer-step throughput for every precision x XLA combination (see the module doc)."""
    from deeplab_tf.runtime.hardware import resolve_mixed_precision

    results = []
    for jit_compile in jit:
        for asked in precisions:
            precision, reason = resolve_mixed_precision(asked)
            result = TrainResult(precision, bool(jit_compile), batch_size, reason=reason)
            log(f"  timing {result.name} (batch {batch_size}, {height}x{width}; {reason}) ...")
            worker = None
            try:
                worker = Worker(result.name, _train_factory,
                                (model_config_dict, height, width, batch_size, precision,
                                 bool(jit_compile), steps, warmup, strategy))
                times, result.loss = worker.call(want_output=True)[1]
                result.summary = Summary.of(times)
            except Exception as error:  # reported in the table; the others still run
                result.error = str(error).splitlines()[0]
                log(f"  {result.name}: {result.error}")
            finally:
                if worker:
                    worker.close()
            results.append(result)
    return results


def format_train(results: List[TrainResult], madds: Optional[int] = None,
                 peak: Optional[float] = None) -> str:
    """Markdown table: images/s, s/step (median, best..worst) per combination."""
    lines = ["| training step | batch | images/s | s/step (median) | best..worst (s) |"
             + (" util. |" if madds and peak else ""),
             "|---|---:|---:|---:|---:|" + ("---:|" if madds and peak else "")]
    for r in results:
        if not r.summary:
            lines.append(f"| {r.name} | {r.batch_size} | failed: {r.error} |")
            continue
        s = r.summary
        row = (f"| {r.name} | {r.batch_size} | {r.images_per_second:.3f} | {s.median:.2f} | "
               f"{s.best:.2f}..{s.worst:.2f} |")
        if madds and peak:  # forward + two backward products: 3 x forward FLOPs
            row += f" {100 * 3 * 2.0 * madds * r.batch_size / s.median / peak:.1f} % |"
        lines.append(row)
    return "\n".join(lines)
