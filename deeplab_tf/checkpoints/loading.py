"""Loading checkpoints into a DeepLab model: the original's TF1 checkpoints and this project's.

Every ``OriginalLayer`` (``ConvBN`` ...) knows the original variable names of its weights
(``layers.original_layer.original_variable_map``), so both kinds of checkpoint load the same way:

1. read the checkpoint with ``tf.train.load_checkpoint`` (no slim needed);
2. pair each model variable with a checkpoint key — the original name itself for a TF1
   checkpoint (model-zoo or ImageNet backbone-only), or the object-graph key of the
   variable for a checkpoint written by ``tf.train.Checkpoint(model=...)`` (deeplab-train);
3. check every shape, then assign.

A shape mismatch is an error naming both variables and shapes, unless the variable belongs
to the last layers and ``initialize_last_layer=False`` (a new class count): those are skipped
and reported. Variables present on one side only are reported, not errors (an ImageNet
checkpoint has no ASPP/decoder; a model-zoo checkpoint has optimizer slots and global_step).
Inference loads with the strict rule of ``checkpoints.strict.load_for_inference``.
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from typing import List, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf.checkpoints.paths import (CheckpointError, newest_checkpoint,
                                          resolve_checkpoint_path)
from deeplab_tf.errors import error_text
from deeplab_tf.modeling.layers.original_layer import original_variable_map
from deeplab_tf.modeling.scopes import in_scopes, last_layer_scopes

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


@dataclasses.dataclass
class LoadReport:
    """What ``load_checkpoint`` did."""

    path: str
    kind: str  # "original" or "project"
    loaded: List[str] = dataclasses.field(default_factory=list)
    skipped_last_layers: List[Tuple[str, tuple, tuple]] = dataclasses.field(default_factory=list)
    missing_in_checkpoint: List[str] = dataclasses.field(default_factory=list)
    unused_in_checkpoint: List[str] = dataclasses.field(default_factory=list)
    ignored: List[str] = dataclasses.field(default_factory=list)  # slots, step, EMA shadows

    def summary(self) -> str:
        lines = [f"Loaded {len(self.loaded)} variables from {self.kind} checkpoint {self.path}."]
        if self.skipped_last_layers:
            lines.append(f"Skipped {len(self.skipped_last_layers)} last-layer variables "
                         "(initialize_last_layer=False): " + ", ".join(
                             f"{n} {list(c)}->{list(m)}" for n, c, m in self.skipped_last_layers))
        if self.missing_in_checkpoint:
            lines.append(f"{len(self.missing_in_checkpoint)} model variables not in the "
                         "checkpoint keep their initial values: "
                         + _abbreviate(self.missing_in_checkpoint))
        if self.unused_in_checkpoint:
            lines.append(f"{len(self.unused_in_checkpoint)} checkpoint variables unused: "
                         + _abbreviate(self.unused_in_checkpoint))
        if self.ignored:
            lines.append(f"Ignored {len(self.ignored)} non-model checkpoint variables "
                         "(optimizer slots, global_step, moving-average shadows): "
                         + _abbreviate(self.ignored))
        return "\n".join(lines)


def _abbreviate(names, limit=8):
    names = sorted(names)
    text = ", ".join(names[:limit])
    return text + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


# How many times ``load_checkpoint`` loaded weights into each live model.
_LOADS = weakref.WeakKeyDictionary()


def weights_version(model) -> int:
    """A counter that ``load_checkpoint`` increases each time it loads weights into ``model``
    (so an inference formulation prepared from the old weights knows to rebuild itself)."""
    return _LOADS.get(model, 0)


def _mark_weights_changed(model) -> None:
    _LOADS[model] = weights_version(model) + 1


def latest_checkpoint(directory: str):
    """The newest checkpoint prefix in ``directory``, or None: the one its ``checkpoint`` state
    file names, or, when that one is missing or the state file is damaged or absent, the
    newest complete checkpoint present (``paths.newest_checkpoint``)."""
    if not os.path.isdir(directory):
        return None
    return newest_checkpoint(directory)[0]


# What a damaged checkpoint raises: TensorFlow errors (a bad index, a checksum mismatch),
# IndexError (a data file cut short), protobuf's DecodeError (a damaged object graph).
_READ_ERRORS = (tf.errors.OpError, ValueError, IndexError)


def _unreadable(path, error) -> CheckpointError:
    message = error_text(error)[:300]
    return CheckpointError(f"Cannot read checkpoint {path}: {message} "
                           "(a damaged or truncated .index / .data file?)")


def _reader(path):
    try:
        return tf.train.load_checkpoint(path)
    except _READ_ERRORS as error:
        raise _unreadable(path, error) from None


def read_tensor(reader, key: str, path: str):
    """``reader.get_tensor(key)``; CheckpointError naming ``path`` if the files are damaged."""
    try:
        return reader.get_tensor(key)
    except _READ_ERRORS as error:
        raise _unreadable(path, error) from None


def _model_variable_keys(model, reader, path):
    """({id(model variable): checkpoint key}, every variable key under the checkpoint's model).

    Walks the checkpoint's object graph from its ``model`` child along the model's own
    object structure, as ``tf.train.Checkpoint(model=model).restore`` matches objects. The
    keys are not always ``model/...`` paths: a checkpoint names each variable by its
    shortest path from the root, so in deeplab-train's ``Checkpoint(model, optimizer, step)``
    the trainable variables are saved as ``optimizer/_trainable_variables/<i>/...``.
    """
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(read_tensor(reader, _OBJECT_GRAPH_KEY, path))
    except Exception as error:  # noqa: BLE001 -- protobuf's DecodeError
        if isinstance(error, CheckpointError):
            raise
        raise _unreadable(path, error) from None
    model_node = next((child.node_id for child in graph.nodes[0].children
                       if child.local_name == "model"), None)
    if model_node is None:
        return {}, set()
    return _walk(graph, *_matching_roots(graph, model, model_node))


def _nested_network_node(graph, node_id):
    """The checkpoint node of the single-scale network nested in an image-pyramid model
    (a functional model among the model's ``_operations``), or None."""
    def child(node, name):
        return next((c.node_id for c in graph.nodes[node].children if c.local_name == name),
                    None)

    operations = child(node_id, "_operations")
    for ref in graph.nodes[operations].children if operations is not None else ():
        if child(ref.node_id, "_operations") is not None:
            return ref.node_id
    return None


def _matching_roots(graph, model, model_node):
    """(model object, checkpoint node) to walk from. An image pyramid nests the single-scale
    network in the model, with the same variables as the plain model: a checkpoint of either
    loads into the other (as the original's, whose names do not depend on the pyramid)."""
    network = next((layer for layer in getattr(model, "layers", ())
                    if isinstance(layer, keras.Model)), None)
    nested_node = _nested_network_node(graph, model_node)
    if network is not None and nested_node is None:
        return network, model_node
    if network is None and nested_node is not None:
        return model, nested_node
    return model, model_node


def _walk(graph, model, model_node):
    by_id, all_keys = {}, set()
    stack = [(model, model_node)]
    seen = set()
    while stack:
        obj, node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        node = graph.nodes[node_id]
        values = [a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"]
        if values:
            all_keys.add(values[0])
            if obj is not None:
                by_id[id(obj)] = values[0]
            continue
        children = {}
        if obj is not None and hasattr(obj, "_trackable_children"):
            try:
                children = obj._trackable_children(save_type="checkpoint")
            except (TypeError, ValueError):
                children = {}
        for ref in node.children:
            stack.append((children.get(ref.local_name), ref.node_id))
    return by_id, all_keys


def _pairs(model, reader, kind, path):
    """[(original name, checkpoint key or None, variable)] for every mapped model variable."""
    names = original_variable_map(model)
    keys = set(reader.get_variable_to_shape_map())
    if kind == "original":
        return [(name, name if name in keys else None, var) for name, var in names.items()], \
            sorted(keys - set(names))
    by_id, model_keys = _model_variable_keys(model, reader, path)
    pairs = [(name, by_id.get(id(var)), var) for name, var in names.items()]
    used = {key for _, key, _ in pairs if key}
    return pairs, sorted(model_keys - used)


def load_checkpoint(model, path, initialize_last_layer=True,
                    last_layers_contain_logits_only=False) -> LoadReport:
    """Loads an original TF1 checkpoint or this project's checkpoint into ``model``.

    Args:
        model: a model from ``build_model``.
        path: checkpoint prefix, or a directory (its latest checkpoint).
        initialize_last_layer: bool. If false, the last layers (see ``last_layer_scopes``)
            are not loaded, so a checkpoint with another class count can be used.
        last_layers_contain_logits_only: bool. Last layers = logits only.

    Returns:
        A ``LoadReport``.

    Raises:
        CheckpointError: unreadable checkpoint, nothing in common with the model, or a
            shape mismatch (naming both variables and shapes).
    """
    path = resolve_checkpoint_path(path)
    reader = _reader(path)
    shapes = reader.get_variable_to_shape_map()
    kind = shapes_kind(shapes)
    pairs, unused = _pairs(model, reader, kind, path)
    skip_scopes = () if initialize_last_layer else last_layer_scopes(last_layers_contain_logits_only)
    report = LoadReport(path=path, kind=kind, unused_in_checkpoint=unused)
    to_assign = []
    for name, key, var in pairs:
        if key is None:
            report.missing_in_checkpoint.append(name)
            continue
        ckpt_shape = tuple(shapes[key])
        model_shape = tuple(var.shape)
        if in_scopes(name, skip_scopes):
            report.skipped_last_layers.append((name, ckpt_shape, model_shape))
            continue
        if ckpt_shape != model_shape:
            hint = ""
            if "weights_quant/" in name:
                hint = (" (its weights are quantized per tensor where the model's are per "
                        "channel, or the reverse: set --weight_quantization="
                        f"{'per_tensor' if not ckpt_shape else 'per_channel'})")
            elif in_scopes(name, last_layer_scopes(False)) and skip_scopes:
                hint = (" (--last_layers_contain_logits_only loads this head layer; if it "
                        "computes the logits (--decoder_output_is_logits) of another class "
                        "count, drop that flag)")
            elif in_scopes(name, last_layer_scopes(False)):
                hint = (" (a different number of classes? use --initialize_last_layer=false "
                        "to skip the last layers)")
            raise CheckpointError(
                f"Shape mismatch: checkpoint variable {key} has shape {list(ckpt_shape)} but "
                f"model variable {name} ({var.path}) has shape {list(model_shape)}{hint}")
        to_assign.append((name, key, var))
    if not to_assign:
        raise CheckpointError(
            f"No variable of checkpoint {path} matches the model "
            f"(model '{model.name}'; is --model_variant right?)")
    for name, key, var in to_assign:
        var.assign(np.asarray(read_tensor(reader, key, path), dtype=var.dtype))
        report.loaded.append(name)
    _mark_weights_changed(model)
    return report


def load_original_checkpoint(model, path, initialize_last_layer=True,
                             last_layers_contain_logits_only=False) -> LoadReport:
    """Loads a checkpoint of the original TF1 DeepLab into ``model`` (see ``load_checkpoint``).

    Accepts full model-zoo checkpoints and ImageNet-pretrained backbone-only checkpoints;
    variables are matched by their original names, e.g.
    ``xception_65/entry_flow/conv1_1/BatchNorm/moving_variance`` or ``logits/semantic/biases``.
    """
    path = resolve_checkpoint_path(path)
    if checkpoint_kind(path) != "original":
        raise CheckpointError(f"{path} is not an original TF1 checkpoint")
    return load_checkpoint(model, path, initialize_last_layer, last_layers_contain_logits_only)


def variable_shapes(path: str) -> dict:
    """{checkpoint key: shape} of a checkpoint prefix or directory (CheckpointError if unreadable)."""
    return _reader(resolve_checkpoint_path(path)).get_variable_to_shape_map()


def logits_classes(shapes: dict):
    """The class count of an original checkpoint's {name: shape}, or None.

    The logits' biases (``logits/semantic/biases``); where the decoder outputs the logits
    (``--decoder_output_is_logits``: no logits layer), its convolutions' biases.
    """
    bias = shapes.get("logits/semantic/biases")
    if bias is None and not any(name.startswith("logits/") for name in shapes):
        bias = next((shape for name, shape in sorted(shapes.items())
                     if name.startswith("decoder/decoder_conv") and name.endswith("/biases")),
                    None)
    return int(bias[0]) if bias else None


def shapes_kind(shapes: dict) -> str:
    """"project" if ``shapes`` (a checkpoint's {key: shape}) holds tf.train.Checkpoint's object
    graph, else "original" (TF1, variables named by scope)."""
    return "project" if _OBJECT_GRAPH_KEY in shapes else "original"


def checkpoint_kind(path: str) -> str:
    """"original" (TF1, variables named by scope) or "project" (tf.train.Checkpoint)."""
    return shapes_kind(variable_shapes(path))


def save_model_checkpoint(model, directory: str, step: int = 0) -> str:
    """Writes ``directory/ckpt-<step>`` in this project's format (as deeplab-train does).

    The directory gets the ``checkpoint`` state file too, so ``latest_checkpoint`` and every
    ``--checkpoint_dir`` / ``--tf_initial_checkpoint`` flag accept the directory itself.
    """
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), directory,
                                         max_to_keep=None, checkpoint_name="ckpt")
    return manager.save(checkpoint_number=step)


def checkpoint_step(path: str) -> Optional[int]:
    """The training step of a checkpoint: its ``step`` / ``global_step`` variable, else the
    number after the last '-' of its name; None if neither exists."""
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        for key in ("step/.ATTRIBUTES/VARIABLE_VALUE", "global_step"):
            if key in shapes:
                return int(reader.get_tensor(key))
    except _READ_ERRORS:
        pass
    suffix = os.path.basename(path).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else None
