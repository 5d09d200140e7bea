"""Side-by-side inference comparison: every contender in its own process, alternating rounds.

``compare`` builds each contender of ``bench.contenders`` in a ``bench.worker`` process (one
after another, the others paused), checks its labels against the Keras model's
(``tf_function``) on the same image, measures the machine's peak in the same run, then times
``rounds`` rounds that call each contender once in turn. Reported per contender: median and
spread (best..worst), ratio to the fastest, to ``tf_function`` and to the original's graph
(when given), GFLOP/s and utilisation of the peak of the contender's precision (float32,
bfloat16 or int8: ``timing.peak_flops``), argmax agreement, build time.

Example:

>>> report = compare(Setup(ModelConfig(model_variant="mobilenet_v2").to_dict(), 513, 513))
>>> print(format_comparison(report))
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

import numpy as np

from deeplab_tf.bench.contenders import DEFAULT_CONTENDERS, REFERENCE, Setup, build, make_image
from deeplab_tf.bench.timing import Summary, describe_peaks, precision_of
from deeplab_tf.bench.worker import Pool, Worker, original_environment


def _contender_factory(name: str, setup: Setup):
    """Worker factory (runs in the contender's process)."""
    image = make_image(setup)
    fn = build(name, setup)
    facts = {}
    if name == REFERENCE:
        from deeplab_tf.config import ModelConfig
        from deeplab_tf.model import build_model
        from deeplab_tf.modeling.madds import count_madds

        facts["madds"] = count_madds(build_model(ModelConfig.from_dict(setup.model_config)),
                                     setup.height, setup.width)
    return (lambda: np.asarray(fn(image))), facts


def _peak_factory(precisions=("float32",)):
    from deeplab_tf.bench.timing import peak_flops

    return (lambda: peak_flops(precisions=tuple(precisions))), {}


@dataclasses.dataclass
class ContenderResult:
    name: str
    summary: Optional[Summary] = None
    agreement: Optional[float] = None  # argmax agreement with the reference (fraction)
    build_seconds: float = 0.0
    error: str = ""


@dataclasses.dataclass
class Comparison:
    setup: Setup
    results: List[ContenderResult]
    peak: Dict[str, float]
    madds: Optional[int]
    rounds: int

    def result(self, name: str) -> Optional[ContenderResult]:
        return next((r for r in self.results if r.name == name and r.summary), None)

    @property
    def fastest(self) -> Optional[ContenderResult]:
        timed = [r for r in self.results if r.summary]
        return min(timed, key=lambda r: r.summary.median) if timed else None

    def speedup(self, name: str, over: str) -> Optional[float]:
        """median(over) / median(name): > 1 when ``name`` is faster."""
        a, b = self.result(name), self.result(over)
        return b.summary.median / a.summary.median if a and b else None

    def to_dict(self) -> dict:
        """The report as JSON-ready values; ``vs_*``: ``speedup(name, *)`` (None when either
        side has no timing)."""
        fastest = self.fastest
        rows = []
        for r in self.results:
            row = {"name": r.name, "precision": precision_of(r.name), "error": r.error,
                   "agreement": r.agreement, "build_seconds": r.build_seconds}
            if r.summary:
                row.update(median_s=r.summary.median, best_s=r.summary.best,
                           worst_s=r.summary.worst,
                           vs_fastest=self.speedup(r.name, fastest.name),
                           vs_tf_function=self.speedup(r.name, REFERENCE),
                           vs_original=self.speedup(r.name, "original"))
            rows.append(row)
        return {"setup": dataclasses.asdict(self.setup), "peak": self.peak,
                "madds": self.madds, "rounds": self.rounds, "results": rows}


def compare(setup: Setup, contenders: Sequence[str] = DEFAULT_CONTENDERS, *, rounds: int = 5,
            warmup: int = 1, environments: Optional[Dict[str, Dict[str, str]]] = None,
            log=print) -> Comparison:
    """Times ``contenders`` (plus ``original`` when ``setup.frozen_graph``) side by side.

    ``environments``: variables for one contender's process, by name, over its defaults
    (e.g. ``{"tf_folded": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}``); the peak is measured in the
    reference's (``tf_function``).

    A contender that fails to build is reported with its error, the others still run. The
    reference ``tf_function`` is always built (it gives the agreement and the multiply-adds).
    """
    names = list(dict.fromkeys([REFERENCE, *contenders]
                               + (["original"] if setup.frozen_graph else [])))
    workers, results = [], {name: ContenderResult(name) for name in names}
    try:
        precisions = tuple(dict.fromkeys(["float32"] + [precision_of(n) for n in names]))
        log(f"  measuring the peak (large matmul / 3x3 conv; {', '.join(precisions)}) ...")
        # The peak as the contenders' processes see it (the reference's environment).
        peak_worker = Worker("peak", _peak_factory, (precisions,),
                             (environments or {}).get(REFERENCE, {}))
        peak = peak_worker.call(want_output=True)[1]
        peak_worker.close()
        for name in names:
            log(f"  building {name} ...")
            try:
                # The original's graph runs with TensorFlow's kernels for this CPU and
                # glibc's malloc defaults, as it ran.
                environment = original_environment() if name == "original" else {}
                environment.update((environments or {}).get(name, {}))
                worker = Worker(name, _contender_factory, (name, setup), environment)
            except Exception as error:  # WorkerError: reported, the others go on
                results[name].error = str(error).splitlines()[0]
                log(f"  {name}: {results[name].error}")
                continue
            results[name].build_seconds = worker.facts["build_seconds"]
            workers.append(worker)
        madds = next((w.facts["madds"] for w in workers if "madds" in w.facts), None)
        pool = Pool(workers)
        labels = {}
        for index in range(warmup):
            for name, (_, output) in pool.round(index, want_output=index == 0).items():
                if output is not None:
                    labels[name] = output
        reference = labels.get(REFERENCE)
        # The original's graph too: its weights equal the others' when it was written from
        # the same checkpoint or seed (the table's footer says so).
        for name, output in labels.items():
            if reference is not None and output.shape == reference.shape:
                results[name].agreement = float((output == reference).mean())
        times = {w.name: [] for w in workers}
        for index in range(rounds):
            for name, (seconds, _) in pool.round(index).items():
                times[name].append(seconds)
            log(f"  round {index + 1}/{rounds}: " + "  ".join(
                f"{name} {times[name][-1]:.3f}s" for name in times))
        for name, values in times.items():
            results[name].summary = Summary.of(values)
    finally:
        for worker in workers:
            worker.close()
    return Comparison(setup, [results[n] for n in names], peak, madds, rounds)


def _ratio(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}x"


def format_comparison(report: Comparison) -> str:
    """A Markdown table of ``compare``'s report, with the peak and the reading rules."""
    config = report.setup.model_config
    fastest = report.fastest
    has_original = report.result("original") is not None
    peaks = report.peak.get("peaks", {"float32": report.peak["peak_flops"]})
    lines = [
        f"{config['model_variant']} OS{config['output_stride']}"
        f"{' decoder' if config.get('decoder_output_stride') else ''}, "
        f"{report.setup.height}x{report.setup.width}, batch 1; median of {report.rounds} "
        "alternating rounds, each contender in its own process",
        f"peak (best of a large matmul / 3x3 conv, this run): {describe_peaks(report.peak)} "
        f"(float32 matmul {report.peak['matmul_flops'] / 1e9:.1f}, conv "
        f"{report.peak['conv_flops'] / 1e9:.1f})", "",
        "| contender | median (ms) | best..worst (ms) | vs fastest | vs tf_function |"
        + (" vs original |" if has_original else "")
        + " GFLOP/s | util. (of its precision's peak) | argmax agreement |",
        "|---|---:|---:|---:|---:|" + ("---:|" if has_original else "") + "---:|---:|---:|"]
    for r in report.results:
        if not r.summary:
            lines.append(f"| {r.name} | failed: {r.error} |")
            continue
        s = r.summary
        gflops = (2.0 * report.madds / s.median / 1e9) if report.madds else None
        precision = precision_of(r.name) if precision_of(r.name) in peaks else "float32"
        peak = peaks[precision]
        agreement = ("-" if r.agreement is None else f"{100 * r.agreement:.3f} %")
        lines.append(
            f"| {r.name} | {s.median * 1e3:.1f} | {s.best * 1e3:.1f}..{s.worst * 1e3:.1f} | "
            f"{_ratio(fastest.summary.median / s.median)} | "
            f"{_ratio(report.speedup(r.name, REFERENCE))} |"
            + (f" {_ratio(report.speedup(r.name, 'original'))} |" if has_original else "")
            + (f" {gflops:.1f} | {100 * gflops * 1e9 / peak:.1f} % {precision} |" if gflops
               else " - | - |")
            + f" {agreement} |")
    lines.append("")
    lines.append("ratios: median of the column's contender / median of this row (> 1: this row "
                 "is faster); agreement: labels equal to tf_function's (Keras model as trained"
                 + (f", weights of {report.setup.checkpoint_path}" if report.setup.checkpoint_path
                    else f", random weights of seed {report.setup.seed}") + ")")
    if has_original:
        lines.append("original: its graph's own weights; equal to the others' only when it was "
                     "written from the same checkpoint, or by benchmarks/original_frozen_graph.py "
                     "with the same --seed")
    return "\n".join(lines)
