"""Edge TPU readiness of a TFLite model: the documented operation set, and the compiler.

Coral's "TensorFlow models on the Edge TPU" lists what the Edge TPU runs: a fully 8-bit
quantized model (uint8 or int8 tensors), tensor sizes fixed at compile time, and only the
operations below, each with the documented limitations. The compiler maps the graph up to
the first operation it cannot run; that one and everything after it run on the CPU.
``edgetpu_problems`` checks an exported model against those rules (operations, fixed sizes,
integer tensors, no fused activation where the table forbids one, MEAN over height/width
only), ``deeplab-export --tflite_mode=edgetpu`` refuses a model with problems.

``edgetpu_compiler`` comes from Coral's own package repository (not PyPI or Debian) and
cannot be installed on this project's machines; where it is on the PATH,
``compile_edgetpu`` runs it and reports how many operations map to the TPU.

Example:

>>> problems = edgetpu_problems(open("deeplab_edgetpu.tflite", "rb").read())
>>> report = compile_edgetpu("deeplab_edgetpu.tflite")  # None without the compiler
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import List, Optional

import numpy as np

# The TFLite operators of Coral's table (older list) plus those of its newer table.
EDGETPU_OPERATIONS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN",
    "MINIMUM", "MUL", "PAD", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "TANH",
    # newer table
    "EXPAND_DIMS", "PACK", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
})
# Operators the table allows without a fused activation only.
_NO_FUSED_ACTIVATION = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION")
_INTEGER_TYPES = ("UINT8", "INT8", "INT32")  # INT32: biases and shape operands
COMPILER = "edgetpu_compiler"


def _names(enum_class) -> dict:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def model_operations(content: bytes):
    """(operations, model): [(operator name, options object or None, input tensor indices)]
    of a TFLite model's main graph and the parsed model, read from the flatbuffer (no
    interpreter, so no delegate hides them)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    operators = _names(schema.BuiltinOperator)
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    graph = model.subgraphs[0]
    return [(operators.get(codes[op.opcodeIndex], str(codes[op.opcodeIndex])),
             op.builtinOptions, list(op.inputs)) for op in graph.operators], model


def edgetpu_problems(content: bytes) -> List[str]:
    """What keeps a TFLite model (flatbuffer bytes) from running whole on the Edge TPU.

    Checks the operators against ``EDGETPU_OPERATIONS``, the documented limitations that
    can be read from the model (no fused activation on pooling and concatenation, MEAN over
    height and width only), fixed tensor sizes and integer tensors. An empty list: ready.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    operations, model = model_operations(content)
    graph = model.subgraphs[0]
    types = _names(schema.TensorType)
    problems = []
    for name, options, inputs in operations:
        if name not in EDGETPU_OPERATIONS:
            problems.append(f"operation {name} is not in the Edge TPU's supported set")
        elif name in _NO_FUSED_ACTIVATION and getattr(options, "fusedActivationFunction", 0):
            problems.append(f"{name} has a fused activation")
        elif name == "MEAN":
            buffer = model.buffers[graph.tensors[inputs[1]].buffer].data
            axes = sorted(int(a) % 4 for a in np.frombuffer(bytes(buffer), np.int32))
            if axes not in ([1], [2], [1, 2]):
                problems.append(f"MEAN over axes {axes} (height and width only)")
    for tensor in graph.tensors:
        name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
        signature = tensor.shapeSignature if tensor.shapeSignature is not None else []
        if any(int(d) < 0 for d in signature):
            problems.append(f"tensor {name} has a dynamic size")
        if types.get(tensor.type) not in _INTEGER_TYPES:
            problems.append(f"tensor {name} is {types.get(tensor.type, tensor.type)}")
    return problems


def parse_compiler_log(text: str) -> dict:
    """The operation counts of an ``edgetpu_compiler`` log (its summary lines)."""
    counts = {}
    for key, pattern in (("tpu_operations", r"operations that will run on Edge TPU:\s*(\d+)"),
                         ("cpu_operations", r"operations that will run on CPU:\s*(\d+)")):
        match = re.search(pattern, text)
        if match:
            counts[key] = int(match.group(1))
    version = re.search(r"Edge TPU Compiler version\s*([\w.]+)", text)
    if version:
        counts["compiler_version"] = version.group(1)
    return counts


def compile_edgetpu(path: str, output_dir: Optional[str] = None,
                    timeout: float = 600.0) -> Optional[dict]:
    """Runs ``edgetpu_compiler`` on ``path`` when it is on the PATH; else returns None.

    Returns:
        dict: ``returncode``, ``log`` (its output), ``tpu_operations``, ``cpu_operations``
        (when the log has them), ``compiled_path`` (``<name>_edgetpu.tflite``).
    """
    if shutil.which(COMPILER) is None:
        return None
    output_dir = output_dir or os.path.dirname(os.path.abspath(path))
    result = subprocess.run([COMPILER, "-s", "-o", output_dir, path], capture_output=True,
                            text=True, timeout=timeout, check=False)
    log = result.stdout + result.stderr
    stem = os.path.splitext(os.path.basename(path))[0]
    return {"returncode": result.returncode, "log": log,
            "compiled_path": os.path.join(output_dir, f"{stem}_edgetpu.tflite"),
            **parse_compiler_log(log)}
