"""LED in ONNX Runtime: exporting led_torch's LED to ONNX files right at every shape, and auditing any export
against the spec.

    from parity.onnx import export_onnx, audit_onnx, check_export, OnnxLED

    export_onnx(checkpoint, out_dir)           export, then audit -> ExportResult (.passed, .audit, .files)
    audit_onnx(onnx_dir, checkpoint)           any export (optimum's layout) vs led_ref -> AuditResult (.passed)
    check_export(onnx_dir)                     `check --impls onnx:DIR`: check's random cases -> CheckResult
    OnnxLED.open(onnx_dir)                     the files in ONNX Runtime sessions (encode, decode, decode_with_past)

The modules:

    sessions   the files of an export folder (optimum's names) in ONNX Runtime sessions, names mapped onto LED's
    audit      `audit-onnx`: every file against led_ref (float64) on shapes that differ from the traced one
    export     `export-onnx`: led_torch's parameters around an attention with no baked shapes (dense or banded)
    generate   greedy and beam search with the ONNX files giving the logits (led_ref's search loop)
    check      an export folder as an implementation of `check` (`--impls onnx:DIR`)
    bench      ONNX Runtime (CPU) against led_torch and HF on LED-base's shape (`bench --onnx`)

Needs the `onnx` extra (onnx, onnxruntime, onnxscript). docs/onnx.md.
"""

from __future__ import annotations

# name -> module; imported when first used, so that `import parity.onnx` loads neither torch nor onnxruntime
PUBLIC = {"export_onnx": "export", "ExportResult": "export", "audit_onnx": "audit", "AuditResult": "audit",
          "check_export": "check", "OnnxLED": "sessions", "onnx_generate": "generate"}
__all__ = sorted(PUBLIC)


def __getattr__(name: str):
    if name not in PUBLIC:
        raise AttributeError(f"module 'parity.onnx' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"parity.onnx.{PUBLIC[name]}"), name)
