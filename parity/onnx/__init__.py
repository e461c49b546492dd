"""LED in ONNX Runtime: auditing an export folder against the spec, and exporting one that is right at every shape.

    sessions   the files of an export folder (optimum's names) in ONNX Runtime sessions, names mapped onto LED's
    audit      `audit-onnx`: every file against led_ref (float64) on shapes that differ from the traced one
    export     `export-onnx`: led_torch's parameters around an attention with no baked shapes (dense or banded)

Needs the `onnx` extra (onnx, onnxruntime, onnxscript). docs/onnx.md.
"""
