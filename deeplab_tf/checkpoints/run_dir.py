"""The run directory's contract: what deeplab-train and deeplab-convert-checkpoint write beside
their checkpoints, and how eval, vis, export and bench read it.

Files:

* ``config.json``: ``{"model": ModelConfig, "data": DataConfig, "train": TrainConfig}`` of a
  training run, or ``{"model": ModelConfig, "converted_from": path}`` of a converted
  checkpoint. Every config as its ``to_dict``.
* ``flags.txt``: the resolved flags of a training run, one per line (``deeplab-train
  --flagfile=RUN/flags.txt`` repeats it).

A start that fails (bad data at the first batch, a checkpoint that cannot be resumed, an
interrupted set-up) leaves the run directory as it was: ``failed_start_guard`` removes what
the run created and puts back the files it rewrote, as long as no training step ran.

Reading the model: the run's ``ModelConfig`` is the base and the model flags given
explicitly (on the command line or in a flagfile) override it field by field
(``resolve_model_config``); without a run config the flags describe the model, as in the
original. When the checkpoint then does not fit the model, ``explain_mismatch`` names the
fields where the flags overrode the run (``depth_multiplier: run 0.5, flags 1.0``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Callable, Dict, Iterable, Optional, Tuple

from deeplab_tf.config import ModelConfig
from deeplab_tf.errors import UserError
from deeplab_tf.fileio import atomic_write_bytes, atomic_write_text

CONFIG_JSON = "config.json"
FLAGS_TXT = "flags.txt"
# ModelConfig fields that do not change the network's variables or its inference.
TRAINING_ONLY_FIELDS = ("weight_decay", "sync_batch_norm", "fine_tune_batch_norm",
                        "drop_path_keep_prob")


class RunDirError(UserError):
    """A run directory whose files cannot be used (one-line message)."""


@dataclasses.dataclass(frozen=True)
class ResolvedModel:
    """The ModelConfig to build and where it came from.

    Attributes:
        config: ModelConfig.
        source: str. One line for the user ("Model: RUN/config.json ...").
        overrides: {field: (run value, flag value)} where explicit flags changed the run's
            config (fields that matter for the network only).
    """

    config: ModelConfig
    source: str
    overrides: Dict[str, Tuple[object, object]] = dataclasses.field(default_factory=dict)

    def explain_mismatch(self) -> str:
        """The overridden fields as text ("" when the flags changed nothing)."""
        if not self.overrides:
            return ""
        parts = [f"{name}: run {run!r}, flags {flag!r}"
                 for name, (run, flag) in sorted(self.overrides.items())]
        return "the model flags override the run's config.json in " + "; ".join(parts)


def config_path(directory: str) -> str:
    return os.path.join(directory, CONFIG_JSON)


def read_run_config(directory: Optional[str]) -> Optional[dict]:
    """``directory/config.json`` as a dict, or None when there is none.

    Raises:
        RunDirError: the file exists but is not a run config (naming the file and why).
    """
    if not directory:
        return None
    path = config_path(directory)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        if not isinstance(values, dict) or not isinstance(values.get("model"), dict):
            raise ValueError("no 'model' object")
        return values
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise RunDirError(f"Cannot read the run config {path}: {' '.join(str(error).split())}"
                          f" (expected a JSON object with a 'model' object)") from None


def run_model_config(directory: Optional[str]) -> Optional[ModelConfig]:
    """The ModelConfig of ``directory/config.json``, or None when there is none."""
    values = read_run_config(directory)
    if values is None:
        return None
    try:
        return ModelConfig.from_dict(values["model"])
    except (TypeError, ValueError) as error:
        raise RunDirError(f"The model config of {config_path(directory)} is not valid: "
                          f"{' '.join(str(error).split())}") from None


def resolve_model_config(directory: Optional[str], flag_config: ModelConfig,
                         explicit: Iterable[str]) -> ResolvedModel:
    """The run's ModelConfig with the ``explicit`` flags' values on top, field by field.

    Args:
        directory: the folder of the checkpoint (may hold config.json), or None.
        flag_config: the ModelConfig the model flags describe (defaults where not given).
        explicit: names of the ModelConfig fields whose flags were given explicitly.
    """
    run_config = run_model_config(directory)
    explicit = sorted(set(explicit))
    if run_config is None:
        return ResolvedModel(flag_config, "Model: from the model flags.")
    run_values, flag_values = run_config.to_dict(), flag_config.to_dict()
    values = dict(run_values, **{name: flag_values[name] for name in explicit})
    config = ModelConfig.from_dict(values)
    overrides = {name: (run_values[name], values[name]) for name in explicit
                 if run_values[name] != values[name] and name not in TRAINING_ONLY_FIELDS}
    source = f"Model: {config_path(directory)}"
    if overrides:
        source += " with " + ", ".join(f"{name}={values[name]!r}" for name in sorted(overrides))
        source += " from the flags."
    else:
        source += "."
    return ResolvedModel(config, source, overrides)


def write_training_run(train_logdir: str, configs: dict, flags_text: str) -> None:
    """Writes ``flags.txt`` and ``config.json`` (``configs``: {"model": ModelConfig, "data":
    DataConfig, "train": TrainConfig}) atomically."""
    atomic_write_text(os.path.join(train_logdir, FLAGS_TXT), flags_text)
    atomic_write_text(config_path(train_logdir), json.dumps(
        {key: value.to_dict() for key, value in configs.items()}, indent=2,
        sort_keys=True) + "\n")


def write_converted(directory: str, model_config: ModelConfig, converted_from: str) -> None:
    """Writes ``config.json`` of a converted checkpoint."""
    atomic_write_text(config_path(directory), json.dumps(
        {"model": model_config.to_dict(), "converted_from": converted_from}, indent=2) + "\n")


def check_resumable(train_logdir: str, model_config: ModelConfig, has_checkpoint: bool) -> None:
    """A train_logdir with checkpoints is resumed only with the model it was trained with.

    Raises:
        RunDirError: naming the fields that differ and the flagfile that repeats the run.
    """
    values = read_run_config(train_logdir)
    if not has_checkpoint or values is None:
        return
    previous, current = values["model"], model_config.to_dict()
    differ = sorted(k for k in set(current) | set(previous) if current.get(k) != previous.get(k))
    if differ:
        raise RunDirError(
            f"--train_logdir={train_logdir} holds checkpoints of another model (its "
            f"{CONFIG_JSON} differs in {', '.join(differ)}): resume with the flags of "
            f"{os.path.join(train_logdir, FLAGS_TXT)} or use a new --train_logdir")


_KEPT_FILES = (CONFIG_JSON, FLAGS_TXT, "checkpoint")  # rewritten by a start; put back


@contextlib.contextmanager
def failed_start_guard(train_logdir: str, started: Callable[[], bool]):
    """On an exception, unless ``started()`` (a training step ran), leaves ``train_logdir`` as
    it was before the block: the entries it did not hold are removed (the folder too, if the
    block created it) and ``config.json``, ``flags.txt`` and the ``checkpoint`` state file
    get their old bytes back."""
    existed = os.path.isdir(train_logdir)
    before = set(os.listdir(train_logdir)) if existed else set()
    saved = {}
    for name in _KEPT_FILES:
        path = os.path.join(train_logdir, name)
        if existed and os.path.isfile(path):
            with open(path, "rb") as f:
                saved[name] = f.read()
    try:
        yield
    except BaseException:
        if not started() and os.path.isdir(train_logdir):
            _undo(train_logdir, existed, before, saved)
        raise


def _made_by_this_process(name: str) -> bool:
    """Entries a start writes: the run files, this process' TensorBoard events file(s) and
    the non-chief workers' scratch folder; never another process' files or a checkpoint."""
    if name in (CONFIG_JSON, FLAGS_TXT, ".workers"):
        return True
    return name.startswith("events.out.tfevents.") and f".{os.getpid()}." in name


def _undo(train_logdir, existed, before, saved):
    for name in set(os.listdir(train_logdir)) - before:
        path = os.path.join(train_logdir, name)
        if not _made_by_this_process(name):
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(path)
    if not existed:
        with contextlib.suppress(OSError):
            os.rmdir(train_logdir)  # only if now empty
        return
    for name, data in saved.items():
        path = os.path.join(train_logdir, name)
        try:
            with open(path, "rb") as f:
                unchanged = f.read() == data
        except OSError:
            unchanged = False
        if not unchanged:
            with contextlib.suppress(OSError):
                atomic_write_bytes(path, data)
