"""Training step side by side: this project's ``Trainer`` and the original's TF1 graph.

``compare_training`` runs two ``bench.worker`` processes, the idle one stopped (SIGSTOP):

* ``trainer``: the real ``train.loop.Trainer._train_step`` (loss with the ignore label,
  weight decay, gradient multipliers, momentum, batch-norm updates, label and finiteness
  checks), its outputs read back to the host as the loop reads them;
* ``original_graph``: one ``Session.run`` of ``peers.original_graph``'s training step, the
  original's formulation of the same network (always float32: the original had no mixed
  precision), in a process with TensorFlow's own choice of kernels for this CPU and glibc's
  malloc defaults, as the original ran (``worker.original_environment``:
  ``allocator.keep_freed_memory`` off there unless ``original_keeps_freed_memory``).

``trainer_environment`` sets variables for the trainer's process only (e.g.
``TF_ENABLE_ONEDNN_OPTS=1`` with ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN's AVX2 kernels for the
Trainer while the original's graph keeps TensorFlow's own, the AVX2 kind's default).

Both train from the same ``TrainConfig`` values on the same fixed batch
(``bench.train.synthetic_batch``: images uniform in [0, 255], ~5 % ignore pixels). Each
process makes ``warmup`` untimed steps, then ``rounds`` alternating rounds time one step of
each (the order rotated every round). Reported: median and best..worst seconds per step,
images/s, and ``ratio`` = trainer images/s / original_graph images/s (>= 1: the Trainer is at
least as fast).

Example:

>>> report = compare_training(ModelConfig(model_variant="xception_65",
...                                       atrous_rates=(6, 12, 18),
...                                       decoder_output_stride=(4,)).to_dict(), 513, 513, 2, 3)
>>> print(format_training_comparison(report))
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Dict, List, Optional

from deeplab_tf.bench.timing import Summary
from deeplab_tf.bench.train import IGNORE_LABEL, synthetic_dataset_fn
from deeplab_tf.bench.worker import Pool, Worker, original_environment

TRAINER, ORIGINAL = "trainer", "original_graph"
NAMES = (TRAINER, ORIGINAL)


def _train_config(batch_size: int, precision: str):
    from deeplab_tf.config import TrainConfig

    return TrainConfig(train_batch_size=batch_size, training_number_of_steps=1000,
                       base_learning_rate=1e-4, save_interval_steps=10 ** 6,
                       mixed_precision=precision, jit_compile=False, strategy="one_device")


def _trainer_factory(model_config_dict, height, width, batch_size, precision, logdir):
    """Worker factory: callable() -> cross-entropy of one ``Trainer._train_step``."""
    import tensorflow as tf

    from deeplab_tf.config import ModelConfig
    from deeplab_tf.train.loop import Trainer

    model_config = ModelConfig.from_dict(model_config_dict)
    dataset_fn = synthetic_dataset_fn(batch_size, height, width, model_config.num_classes)
    trainer = Trainer(model_config, _train_config(batch_size, precision), train_logdir=logdir,
                      dataset_fn=dataset_fn, ignore_label=IGNORE_LABEL)
    trainer._initialize()
    iterator = iter(trainer.strategy.distribute_datasets_from_function(dataset_fn))
    requests = tf.constant([0.0, 0.0])  # [stop, save]: neither

    def step():
        outputs = trainer._train_step(next(iterator), requests)
        values = {key: value.numpy() for key, value in outputs.items()}
        return float(values["cross_entropy"])

    return step, {"precision": trainer.config.mixed_precision}


def _original_factory(model_config_dict, height, width, batch_size):
    """Worker factory: callable() -> cross-entropy of one step of the original's graph."""
    from peers.original_graph import build_training_graph
    from deeplab_tf.config import ModelConfig

    peer = build_training_graph(ModelConfig.from_dict(model_config_dict), height, width,
                                batch_size, _train_config(batch_size, "float32"))
    step = peer.step_fn()
    return (lambda: float(step()["cross_entropy"])), {"precision": "float32"}


@dataclasses.dataclass
class TrainComparison:
    """``compare_training``'s report; ``summaries`` / ``losses`` / ``errors`` keyed by
    ``TRAINER`` and ``ORIGINAL`` (``losses``: cross-entropy of every step, warm-up first)."""

    model_config: dict
    height: int
    width: int
    batch_size: int
    precision: str
    rounds: int
    warmup: int
    original_keeps_freed_memory: bool = False
    trainer_environment: Dict[str, str] = dataclasses.field(default_factory=dict)
    summaries: Dict[str, Summary] = dataclasses.field(default_factory=dict)
    losses: Dict[str, List[float]] = dataclasses.field(default_factory=dict)
    build_seconds: Dict[str, float] = dataclasses.field(default_factory=dict)
    errors: Dict[str, str] = dataclasses.field(default_factory=dict)

    def images_per_second(self, name: str) -> Optional[float]:
        summary = self.summaries.get(name)
        return self.batch_size / summary.median if summary else None

    @property
    def ratio(self) -> Optional[float]:
        """Trainer images/s over original_graph images/s (None without both timings)."""
        ours, original = (self.images_per_second(n) for n in NAMES)
        return ours / original if ours and original else None

    def to_dict(self) -> dict:
        rows = {}
        for name in NAMES:
            summary = self.summaries.get(name)
            rows[name] = {"error": self.errors.get(name, ""),
                          "build_seconds": self.build_seconds.get(name),
                          "losses": self.losses.get(name, [])}
            if summary:
                rows[name].update(median_s=summary.median, best_s=summary.best,
                                  worst_s=summary.worst,
                                  images_per_s=self.images_per_second(name))
        return {"model_config": self.model_config, "height": self.height,
                "width": self.width, "batch_size": self.batch_size,
                "precision": self.precision, "rounds": self.rounds, "warmup": self.warmup,
                "original_keeps_freed_memory": self.original_keeps_freed_memory,
                "trainer_environment": dict(self.trainer_environment),
                "ratio_trainer_over_original": self.ratio, "results": rows}


def compare_training(model_config_dict: dict, height: int, width: int, batch_size: int,
                     rounds: int, precision: str = "float32", warmup: int = 2,
                     original_keeps_freed_memory: bool = False,
                     trainer_environment: Optional[Dict[str, str]] = None,
                     log=print) -> TrainComparison:
    """Times the Trainer's step and the original's graph step side by side (module doc).

    A side that fails to build or to step is reported with its error (no ratio then).
    """
    from deeplab_tf.runtime.hardware import resolve_mixed_precision

    precision = resolve_mixed_precision(precision)[0]
    report = TrainComparison(dict(model_config_dict), height, width, batch_size, precision,
                             rounds, warmup, original_keeps_freed_memory,
                             dict(trainer_environment or {}))
    factories = {TRAINER: _trainer_factory, ORIGINAL: _original_factory}
    workers = []
    with tempfile.TemporaryDirectory(prefix="train_compare_") as logdir:
        try:
            for name in NAMES:
                args = (model_config_dict, height, width, batch_size)
                if name == TRAINER:
                    args += (precision, logdir)
                log(f"  building {name} ({height}x{width}, batch {batch_size}) ...")
                if name == TRAINER:
                    environment = report.trainer_environment
                else:
                    environment = original_environment(original_keeps_freed_memory)
                try:
                    worker = Worker(name, factories[name], args, environment=environment)
                except Exception as error:  # WorkerError: reported; no comparison then
                    report.errors[name] = str(error).splitlines()[0]
                    log(f"  {name}: {report.errors[name]}")
                    continue
                report.build_seconds[name] = worker.facts["build_seconds"]
                workers.append(worker)
            if len(workers) == len(NAMES):
                _time_rounds(Pool(workers), report, log)
        finally:
            for worker in workers:
                worker.close()
    return report


def _time_rounds(pool: Pool, report: TrainComparison, log):
    times = {name: [] for name in NAMES}
    report.losses = {name: [] for name in NAMES}
    for index in range(report.warmup + report.rounds):
        try:
            results = pool.round(index, want_output=True)
        except Exception as error:  # WorkerError names the side that failed
            report.errors["step"] = str(error).splitlines()[0]
            log(f"  {report.errors['step']}")
            return
        for name, (seconds, loss) in results.items():
            report.losses[name].append(loss)
            if index >= report.warmup:
                times[name].append(seconds)
        stage = ("warm-up" if index < report.warmup
                 else f"round {index - report.warmup + 1}/{report.rounds}")
        log(f"  {stage}: " + "  ".join(f"{name} {results[name][0]:.2f}s" for name in NAMES))
    report.summaries = {name: Summary.of(values) for name, values in times.items()}


def format_training_comparison(report: TrainComparison) -> str:
    """A Markdown table of ``compare_training``'s report, with the ratio."""
    config = report.model_config
    lines = [f"{config['model_variant']} OS{config['output_stride']}"
             f"{' decoder' if config.get('decoder_output_stride') else ''}, "
             f"{report.height}x{report.width}, batch {report.batch_size}, trainer "
             f"{report.precision} (original_graph float32, glibc malloc "
             f"{'as the trainer' if report.original_keeps_freed_memory else 'defaults'}); "
             f"median of {report.rounds} "
             f"alternating rounds after {report.warmup} warm-up steps, each in its own process"
             + "".join(f"; trainer's {name}={value}"
                       for name, value in sorted(report.trainer_environment.items())),
             "",
             "| training step | images/s | s/step (median) | best..worst (s) | first loss | "
             "build (s) |", "|---|---:|---:|---:|---:|---:|"]
    for name in NAMES:
        summary = report.summaries.get(name)
        build = report.build_seconds.get(name)
        build_text = "-" if build is None else f"{build:.0f}"
        if not summary:
            error = report.errors.get(name) or report.errors.get("step", "not timed")
            lines.append(f"| {name} | failed: {error} | | | | {build_text} |")
            continue
        losses = report.losses.get(name) or [float("nan")]
        lines.append(f"| {name} | {report.images_per_second(name):.3f} | "
                     f"{summary.median:.2f} | {summary.best:.2f}..{summary.worst:.2f} | "
                     f"{losses[0]:.3f} | {build_text} |")
    ratio = report.ratio
    lines.append("")
    lines.append("trainer / original_graph (images/s): "
                 + ("-" if ratio is None else f"{ratio:.2f}x")
                 + " (>= 1.00x: the Trainer's step is at least as fast)")
    return "\n".join(lines)
