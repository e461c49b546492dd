"""The one registry of implementations: led_ref (NumPy spec), led_torch (one attention backend), HF (oracle).

`check`, `audit`, `replay` and `bench` all build and run their implementations through `Side`. A side is
written as a short string, `family[:backend][:dtype][:device]`:

    ref                     led_ref in float64 (the reference of every check)
    torch:banded:float32    led_torch with the banded backend in float32 on CPU
    torch:flex:bfloat16:cuda
    hf:float32              HF transformers' LED (the `test` extra), compared with the HF budget
    onnx:exported/          an ONNX export folder (one set of weights: `check` runs it through parity.onnx.check)

`bench` names them shorter (`side_named`): "hf", "led_ref", a led_torch backend ("banded"), or `name@dtype`.

Every side takes the same numpy inputs (`input_ids`, masks, head masks, labels, ...) and returns an
output object with HF's field names, which parity.harness.compare flattens.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from parity.harness.tolerances import dtype_name

FAMILIES = ("ref", "torch", "hf", "onnx")
ONNX_PREFIX = "onnx:"  # onnx:DIR, everything after the prefix being the folder
# led_torch.backends.BACKENDS, named here so that listing them (argparse help) imports no torch;
# tests/test_bench.py checks that the two agree.
TORCH_BACKENDS = ("banded", "flex", "triton")
# The short names of `bench --impls` (side_named).
SHORT_NAMES = ("hf", *TORCH_BACKENDS, "led_ref")
INTEGER_INPUTS = ("input_ids", "attention_mask", "global_attention_mask", "decoder_input_ids",
                  "decoder_attention_mask", "labels", "start_positions", "end_positions")


@dataclass(frozen=True)
class Side:
    """One implementation at one precision on one device."""

    family: str
    backend: str | None = None
    dtype: str = "float64"
    device: str = "cpu"

    @classmethod
    def parse(cls, spec: str) -> Side:
        if spec.startswith(ONNX_PREFIX):
            if not spec[len(ONNX_PREFIX):]:
                raise ValueError(f"an ONNX side names its export folder: onnx:DIR, got {spec!r}")
            return cls("onnx", spec[len(ONNX_PREFIX):], "float32")
        parts = spec.split(":")
        family = parts[0]
        if family not in FAMILIES:
            raise ValueError(f"side must start with one of {', '.join(FAMILIES)}; got {spec!r}")
        backend = parts[1] if family == "torch" and len(parts) > 1 else ("banded" if family == "torch" else None)
        rest = parts[2:] if family == "torch" else parts[1:]
        dtype = dtype_name(rest[0]) if rest else ("float32" if family == "hf" else "float64")
        device = rest[1] if len(rest) > 1 else "cpu"
        return cls(family, backend, dtype, device)

    @property
    def label(self) -> str:
        if self.family == "onnx":
            return ONNX_PREFIX + self.backend
        parts = [self.family] + ([self.backend] if self.backend else []) + [self.dtype]
        return ":".join(parts + ([self.device] if self.device != "cpu" else []))

    @property
    def returns_probabilities(self) -> bool:
        """Whether this side can return attention probabilities (led_torch: only the banded backend)."""
        return self.family in ("ref", "hf") or (self.family == "torch" and self.backend == "banded")

    def build(self, config, weights: dict, architecture: str):
        """The model of `architecture` carrying `weights` (HF names, float64 numpy)."""
        if self.family == "onnx":
            raise ValueError(f"{self.label} holds its own weights and cannot carry others: run it with "
                             "parity.onnx.check.check_export (led-parity check --impls onnx:DIR)")
        if self.family == "ref":
            import led_ref

            return getattr(led_ref, architecture)(config, weights=weights, dtype=np.dtype(self.dtype))
        if self.family == "torch":
            import torch

            import led_torch

            cls = getattr(led_torch, architecture)
            return cls.from_weights(config, weights, dtype=getattr(torch, self.dtype), device=self.device,
                                    attn_implementation=self.backend)
        from parity.hf.models import hf_model

        return hf_model(config, weights, architecture, self.dtype).to(self.device)

    def forward(self, model, inputs: dict, output_attentions: bool = True, output_hidden_states: bool = True):
        """model(**inputs) with every output asked for; numpy inputs converted for torch sides."""
        flags = dict(output_attentions=output_attentions and self.returns_probabilities,
                     output_hidden_states=output_hidden_states, use_cache=True)
        if "decoder_input_ids" not in inputs and "labels" not in inputs:
            flags.pop("use_cache")
        if self.family == "ref":
            return model(**inputs, **flags)
        with self._scope():
            out = model(**self.tensors(inputs), **flags)
        if self.family == "hf" and getattr(out, "loss", None) is not None:
            from parity.hf.models import defined_loss

            out.loss = defined_loss(out.loss, inputs)  # HF's NaN over all-ignored labels is 0 here
        return out

    def encode(self, model, inputs: dict) -> np.ndarray:
        """The encoder's last hidden state (batch, seq, d_model) as float64 numpy."""
        encoder_inputs = _encoder_inputs(inputs)
        if self.family == "ref":
            return np.asarray(model.get_encoder()(**encoder_inputs).last_hidden_state, dtype=np.float64)
        from parity.harness.compare import to_numpy

        with self._scope():
            return to_numpy(model.get_encoder()(**self.tensors(encoder_inputs)).last_hidden_state)

    def generate(self, model, inputs: dict, **kwargs) -> np.ndarray:
        """Token ids (batch * num_return_sequences, length) of model.generate, as int64 numpy."""
        encoder_inputs = _encoder_inputs(inputs)
        if self.family == "ref":
            return _generated(model.generate(**encoder_inputs, **kwargs))
        if self.family == "hf":
            kwargs.setdefault("do_sample", False)  # parity compares search, never HF's sampling default
        with self._scope():
            return _generated(model.generate(**self.tensors(encoder_inputs), **kwargs))

    def tensors(self, inputs: dict) -> dict:
        import torch

        dtype = getattr(torch, self.dtype)
        return {k: torch.as_tensor(np.asarray(v), dtype=torch.long if k in INTEGER_INPUTS else dtype,
                                   device=self.device) for k, v in inputs.items()}

    def _scope(self):
        if self.family == "hf":
            from parity.hf.models import hf_dtype_scope

            return hf_dtype_scope(self.dtype)
        import torch

        return torch.no_grad() if self.family == "torch" else contextlib.nullcontext()


def _encoder_inputs(inputs: dict) -> dict:
    return {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask", "global_attention_mask")}


def _generated(out):
    """Token ids as int64 numpy; with return_dict_in_generate=True (token ids, sequences_scores as float64 or
    None)."""
    def numpy(x):
        return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)

    if hasattr(out, "sequences"):
        scores = getattr(out, "sequences_scores", None)
        return numpy(out.sequences).astype(np.int64), None if scores is None else numpy(scores).astype(np.float64)
    return numpy(out).astype(np.int64)


def torch_sides(backends, dtype: str = "float64", device: str = "cpu") -> list[Side]:
    return [Side("torch", b, dtype_name(dtype), device) for b in backends]


def check_sides(backends, dtype: str, device: str = "cpu", hf: bool = False) -> list[Side]:
    """The sides `check` and `audit` compare with led_ref: the named led_torch backends (default: every one
    usable on device/dtype), then HF in float32 when `hf`. An unknown backend is a ValueError naming it."""
    unknown = [b for b in backends or () if b not in TORCH_BACKENDS]
    if unknown:
        usable = ", ".join(available_torch_backends(device, dtype))
        raise ValueError(f"--backend {unknown[0]} is not a led_torch backend; choose from "
                         f"{', '.join(TORCH_BACKENDS)} (usable here: {usable})")
    sides = torch_sides(backends or available_torch_backends(device, dtype), dtype, device)
    if hf:
        sides.append(Side("hf", None, "float32"))
    return sides


def side_named(name: str, dtype: str = "float32", device: str = "cpu", hf_dtype: str | None = None,
               ref_dtype: str = "float32") -> Side:
    """The side a short name stands for: "hf" (in `hf_dtype`, default `dtype`), "led_ref" (in `ref_dtype`,
    CPU only), a led_torch backend (in `dtype`); `name@D` is that side with every dtype D."""
    if name.startswith(ONNX_PREFIX):
        return Side.parse(name)
    if "@" in name:
        base, dtype = name.split("@", 1)
        return side_named(base, dtype, device, hf_dtype=dtype, ref_dtype=dtype)
    if name == "led_ref":
        if device != "cpu":
            raise ValueError(f"led_ref runs on cpu only, not on device={device!r}")
        return Side("ref", None, ref_dtype, "cpu")
    if name == "hf":
        return Side("hf", None, hf_dtype or dtype, device)
    if name not in TORCH_BACKENDS:
        raise ValueError(f"impl must be one of {', '.join(SHORT_NAMES)}; got {name!r}")
    return Side("torch", name, dtype, device)


def usable_names(device: str, dtype: str) -> tuple[str, ...]:
    """Short names of everything that runs here: hf, led_torch's backends usable on (device, dtype), then
    led_ref on CPU."""
    return ("hf", *available_torch_backends(device, dtype), *(("led_ref",) if device == "cpu" else ()))


def available_torch_backends(device: str = "cpu", dtype: str = "float32") -> list[str]:
    """led_torch's backends usable here (empty when led_torch is not importable)."""
    try:
        import torch

        from led_torch.backends import available_backends
    except ImportError:
        return []
    return list(available_backends(device, getattr(torch, dtype_name(dtype))))
