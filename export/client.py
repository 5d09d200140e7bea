#!/usr/bin/env python3
"""Send an image to a DeepLab model in TF Serving and write the coloured prediction.

    # REST (port 8501), no extra package needed:
    python export/client.py --image=photo.jpg --output=photo_seg.png --rest=localhost:8501
    # gRPC (port 8500), needs `pip install tensorflow-serving-api` in the client's environment:
    python export/client.py --image=photo.jpg --output=photo_seg.png --grpc=localhost:8500

The model is a ``deeplab-export --format=saved_model`` export served as ``--model_name``
(see export/serve.sh). The image is sent encoded (JPEG/PNG bytes; base64 ``{"b64": ...}`` in
REST JSON) to the ``serving_default`` signature, which decodes and predicts it at its own
size; the int32 labels come back as ``semantic_predictions`` and are coloured with the
dataset's palette (``--palette``: pascal, cityscapes or ade20k).

tensorflow-serving-api is not a deeplab_tf dependency (it pins TensorFlow versions): it is
imported only for ``--grpc``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.request
from typing import List, Sequence

import numpy as np

SIGNATURE = "serving_default"
INPUT = "image_bytes"
PREDICTIONS = "semantic_predictions"
HEIGHT = "image_height"
WIDTH = "image_width"
PALETTES = ("pascal", "cityscapes", "ade20k")


# --- REST -----------------------------------------------------------------------------------

def rest_url(host: str, model_name: str = "deeplab", version=None) -> str:
    """TF Serving's REST predict URL, e.g. http://localhost:8501/v1/models/deeplab:predict."""
    if not host.startswith(("http://", "https://")):
        host = "http://" + host
    path = f"/v1/models/{model_name}" + (f"/versions/{version}" if version else "")
    return f"{host.rstrip('/')}{path}:predict"


def build_rest_request(images: Sequence[bytes], signature_name: str = SIGNATURE) -> dict:
    """The JSON body of a REST predict request: one ``{"b64": ...}`` instance per image."""
    return {"signature_name": signature_name,
            "instances": [{"b64": base64.b64encode(data).decode("ascii")} for data in images]}


def parse_rest_response(response: dict) -> List[np.ndarray]:
    """int32 [h, w] label maps from a REST predict response (row format, ``predictions``).

    Each prediction is cropped to its image's size (``image_height`` / ``image_width``), as
    images of different sizes come back padded to the batch's largest.
    """
    if "error" in response:
        raise RuntimeError(f"TF Serving error: {response['error']}")
    labels = []
    for row in response["predictions"]:
        if isinstance(row, dict):
            array = np.asarray(row[PREDICTIONS], np.int32)
            if HEIGHT in row and WIDTH in row:
                array = array[:int(row[HEIGHT]), :int(row[WIDTH])]
        else:  # A signature with semantic_predictions as its only output.
            array = np.asarray(row, np.int32)
        labels.append(array)
    return labels


def predict_rest(host: str, images: Sequence[bytes], model_name: str = "deeplab", version=None,
                 signature_name: str = SIGNATURE, timeout: float = 60.0) -> List[np.ndarray]:
    """Label maps of encoded images from a TF Serving REST endpoint."""
    body = json.dumps(build_rest_request(images, signature_name)).encode("utf-8")
    request = urllib.request.Request(rest_url(host, model_name, version), data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return parse_rest_response(json.load(reply))
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"TF Serving answered HTTP {error.code}: "
                           f"{error.read().decode('utf-8', 'replace')[:500]}") from None


# --- gRPC -----------------------------------------------------------------------------------

def _serving_apis():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
    except ImportError:
        raise ImportError(
            "The gRPC client needs tensorflow-serving-api: pip install tensorflow-serving-api "
            "(it pins a TensorFlow version, so install it where the client runs, not into "
            "deeplab_tf's environment), or use --rest") from None
    return predict_pb2, prediction_service_pb2_grpc


def image_tensor_proto(images: Sequence[bytes]):
    """The ``image_bytes`` input as a TensorProto (DT_STRING [batch])."""
    import tensorflow as tf

    return tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)])


def build_grpc_request(images: Sequence[bytes], model_name: str = "deeplab", version=None,
                       signature_name: str = SIGNATURE):
    """A ``tensorflow.serving.PredictRequest`` for encoded images."""
    predict_pb2, _ = _serving_apis()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version:
        request.model_spec.version.value = int(version)
    request.inputs[INPUT].CopyFrom(image_tensor_proto(images))
    return request


def parse_outputs(outputs) -> List[np.ndarray]:
    """Label maps from output TensorProtos (a gRPC ``PredictResponse.outputs`` map)."""
    import tensorflow as tf

    labels = tf.make_ndarray(outputs[PREDICTIONS]).astype(np.int32)
    heights = tf.make_ndarray(outputs[HEIGHT]) if HEIGHT in outputs else None
    widths = tf.make_ndarray(outputs[WIDTH]) if WIDTH in outputs else None
    result = []
    for index, array in enumerate(labels):
        if heights is not None and widths is not None:
            array = array[:int(heights[index]), :int(widths[index])]
        result.append(array)
    return result


def predict_grpc(host: str, images: Sequence[bytes], model_name: str = "deeplab", version=None,
                 signature_name: str = SIGNATURE, timeout: float = 60.0) -> List[np.ndarray]:
    """Label maps of encoded images from a TF Serving gRPC endpoint."""
    _, service = _serving_apis()
    import grpc

    request = build_grpc_request(images, model_name, version, signature_name)
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    with grpc.insecure_channel(host, options=options) as channel:
        response = service.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    return parse_outputs(response.outputs)


# --- colouring ------------------------------------------------------------------------------

def palette(name: str) -> np.ndarray:
    """uint8 [N, 3] colours by label value (the original DeepLab's colour maps)."""
    from deeplab_tf.data import palettes

    return {"pascal": palettes.pascal_palette, "cityscapes": palettes.cityscapes_palette,
            "ade20k": palettes.ade20k_palette}[name]()


def colorize(labels: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3]: each label coloured; values outside the palette are black."""
    colors = np.concatenate([colors, np.zeros((1, 3), np.uint8)])
    index = np.where((labels >= 0) & (labels < len(colors) - 1), labels, len(colors) - 1)
    return colors[index]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="JPEG or PNG file to segment.")
    parser.add_argument("--output", required=True, help="Where to write the coloured PNG.")
    server = parser.add_mutually_exclusive_group(required=True)
    server.add_argument("--rest", help="REST host:port, e.g. localhost:8501.")
    server.add_argument("--grpc", help="gRPC host:port, e.g. localhost:8500.")
    parser.add_argument("--model_name", default="deeplab")
    parser.add_argument("--version", type=int, default=None, help="Default: the latest.")
    parser.add_argument("--signature_name", default=SIGNATURE)
    parser.add_argument("--palette", default="pascal", choices=PALETTES)
    args = parser.parse_args(argv)

    with open(args.image, "rb") as f:
        data = f.read()
    try:
        if args.rest:
            labels = predict_rest(args.rest, [data], args.model_name, args.version,
                                  args.signature_name)[0]
        else:
            labels = predict_grpc(args.grpc, [data], args.model_name, args.version,
                                  args.signature_name)[0]
    except (ImportError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from PIL import Image

    Image.fromarray(colorize(labels, palette(args.palette))).save(args.output)
    classes = ", ".join(str(c) for c in np.unique(labels))
    print(f"Wrote {args.output} ({labels.shape[0]}x{labels.shape[1]}; classes {classes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
