"""Exports: SavedModel for TF Serving (``saved_model``), the original's frozen GraphDef
(``frozen_graph``), TFLite (``tflite``; integer models of a quantization-aware network from
its learned ranges: ``tflite_qat``; Edge TPU readiness and compiler: ``edgetpu``), OpenVINO
(``openvino``) and ONNX (``onnx``).

All start from a model whose weights ``checkpoint_inference.load_for_inference`` loaded
exactly and compute through ``evaluation.inference.predict``.
"""
