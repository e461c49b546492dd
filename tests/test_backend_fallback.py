"""attn_implementation="auto" never crashes a user: a backend that cannot serve a call (compile error,
unsupported dtype or shape, not importable) is skipped for the next one with a one-time warning.

On CPU `auto` uses banded only, so these tests drive the CUDA order (`auto_candidates("cuda")`: triton, flex,
banded) on CPU tensors: triton runs in its interpreter (tests/conftest.py), flex eager. Failures are forced by
replacing the Triton launch (a real `triton.compiler.errors.CompilationError`) or the flex function.
"""

from __future__ import annotations

import ast
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("triton", reason="triton is not installed (pip install -e '.[gpu]')")

from triton.compiler.errors import CompilationError  # noqa: E402

import led_torch.backends as backends  # noqa: E402
from led_ref.init import random_weights  # noqa: E402
from led_ref.io.config import LEDConfig  # noqa: E402
from led_torch import LEDModel  # noqa: E402
from led_torch.backends import auto_candidates, banded_longformer_attention, triton_banded  # noqa: E402
from led_torch.backends import flex as flex_module  # noqa: E402

CUDA_ORDER = auto_candidates("cuda")
WINDOW = 4


def contract_args(dtype=torch.float32, head_dim=8, seed=0):
    """batch 2, heads 2, seq 16, window 4: globals at 0 and 9 in row 0, padding at the end of row 1."""
    rng = np.random.default_rng(seed)
    tensors = [torch.as_tensor(rng.standard_normal((2, 2, 16, head_dim)), dtype=dtype) for _ in range(6)]
    tensors[0], tensors[3] = tensors[0] * head_dim**-0.5, tensors[3] * head_dim**-0.5
    kinds = torch.ones(2, 16, dtype=torch.long)
    kinds[0, [0, 9]] = 2
    kinds[1, 13:] = 0
    return (*tensors, kinds, WINDOW)


def compile_error(*_args, **_kwargs):
    raise CompilationError("x = PADDING\n", ast.parse("x = PADDING").body[0],
                           "NameError('Cannot access global variable PADDING from within @jit'ed function')")


def inductor_error(*_args, **_kwargs):
    raise RuntimeError("InductorError: flex_attention lowering failed")


@pytest.fixture
def log(monkeypatch):
    """A fresh fallback log (what auto learnt and warned so far) and eager flex (no 20 s compile)."""
    fresh = backends._FallbackLog()
    monkeypatch.setattr(backends, "FALLBACK_LOG", fresh)
    monkeypatch.setattr(flex_module, "COMPILE", False)
    return fresh


def run_auto(args, calls=2):
    """`calls` auto calls in the CUDA order -> (last result, fallback warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(calls):
            out = backends.attend_with_fallback(CUDA_ORDER, *args)
    return out, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
                 and "attn_implementation='auto'" in str(w.message)]


def scaled_error(a, b):
    return float((a.double() - b.double()).abs().max() / max(1.0, float(b.double().abs().max())))


def test_the_cuda_order_and_the_cpu_rule():
    assert CUDA_ORDER == ["triton", "flex", "banded"]
    assert auto_candidates("cuda", need_grad=True) == ["flex", "banded"]  # triton is forward-only
    assert auto_candidates("cuda", need_probs=True) == ["banded"]
    assert auto_candidates("cpu") == ["banded"]


def test_a_triton_compile_error_falls_back_to_flex_warns_once_and_is_not_retried(log, monkeypatch):
    launches = []
    monkeypatch.setattr(triton_banded, "_launch", lambda *a: launches.append(1) or compile_error())
    args = contract_args()
    out, messages = run_auto(args, calls=3)
    assert len(launches) == 1, "a call kind that failed to compile must not be compiled again"
    assert len(messages) == 1
    assert "triton" in messages[0] and "CompilationError" in messages[0] and "NameError" in messages[0]
    assert "falling back to flex" in messages[0]
    assert torch.equal(out, flex_module.flex_longformer_attention(*args))
    assert scaled_error(out, banded_longformer_attention(*args)) < 1e-5


def test_when_triton_and_flex_both_fail_banded_serves_the_call(log, monkeypatch):
    monkeypatch.setattr(triton_banded, "_launch", compile_error)
    monkeypatch.setattr(flex_module, "flex_longformer_attention", inductor_error)
    args = contract_args()
    out, messages = run_auto(args)
    assert torch.equal(out, banded_longformer_attention(*args))
    assert len(messages) == 2
    assert "triton" in messages[0] and "falling back to flex" in messages[0]
    assert "flex" in messages[1] and "InductorError" in messages[1] and "falling back to banded" in messages[1]


def test_float64_is_unsupported_by_triton_and_flex_and_banded_serves_it(log):
    args = contract_args(torch.float64)
    out, messages = run_auto(args)
    assert torch.equal(out, banded_longformer_attention(*args))
    assert len(messages) == 2
    assert "triton" in messages[0] and "torch.float64" in messages[0]
    assert "flex cannot compile float64" in messages[1]


def test_a_head_dim_above_the_triton_limit_goes_to_the_next_backend(log, monkeypatch):
    monkeypatch.setattr(flex_module, "flex_longformer_attention", inductor_error)
    head_dim = triton_banded.MAX_HEAD_DIM + 32
    args = contract_args(head_dim=head_dim)
    out, messages = run_auto(args)
    assert torch.equal(out, banded_longformer_attention(*args))
    assert [f"head_dim {head_dim} is above {triton_banded.MAX_HEAD_DIM}" in m for m in messages[:1]] == [True]
    with pytest.raises(ValueError, match="head_dim"):  # called directly, triton names the limit
        triton_banded.triton_longformer_attention(*args)


def test_a_backend_that_cannot_be_imported_is_skipped(log, monkeypatch):
    monkeypatch.setitem(backends._LAZY, "triton", ("led_torch.backends.no_such_module", "fn"))
    args = contract_args()
    out, messages = run_auto(args)
    assert len(messages) == 1 and "cannot import" in messages[0] and "falling back to flex" in messages[0]
    assert torch.equal(out, flex_module.flex_longformer_attention(*args))


def test_a_backend_that_serves_the_call_gives_no_warning(log):
    args = contract_args()
    out, messages = run_auto(args)
    assert messages == []
    assert torch.equal(out, triton_banded.triton_longformer_attention(*args))


def test_an_explicit_backend_never_falls_back(log, monkeypatch):
    monkeypatch.setattr(triton_banded, "_launch", compile_error)
    with pytest.raises(CompilationError):
        backends.attend("triton", *contract_args())


def tiny_model_case():
    config = LEDConfig(vocab_size=40, d_model=16, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                       decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16, attention_window=4,
                       max_encoder_position_embeddings=64, max_decoder_position_embeddings=16)
    weights = random_weights(config, seed=1, std=0.3)
    ids = torch.randint(3, 40, (2, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    glob = torch.zeros_like(ids)
    glob[:, 0] = 1
    return config, weights, dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob,
                                 decoder_input_ids=ids[:, :3])


def cuda_order_with_broken_triton(monkeypatch):
    monkeypatch.setattr(backends, "auto_candidates", lambda device_type, need_probs=False, need_grad=False:
                        list(CUDA_ORDER))
    monkeypatch.setattr(triton_banded, "_launch", compile_error)


def test_the_model_falls_back_in_its_encoder_layers(log, monkeypatch):
    """A model with attn_implementation="auto" on the CUDA order: triton fails to compile, flex serves every
    layer, the output matches the banded model, one warning for the whole forward (two layers, two calls)."""
    config, weights, kwargs = tiny_model_case()
    auto = LEDModel.from_weights(config, weights, dtype=torch.float32, attn_implementation="auto")
    banded = LEDModel.from_weights(config, weights, dtype=torch.float32, attn_implementation="banded")
    cuda_order_with_broken_triton(monkeypatch)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = auto(**kwargs).encoder_last_hidden_state
        got_again = auto(**kwargs).encoder_last_hidden_state
        expected = banded(**kwargs).encoder_last_hidden_state
    messages = [str(w.message) for w in caught if "attn_implementation='auto'" in str(w.message)]
    assert len(messages) == 1 and "triton" in messages[0] and "CompilationError" in messages[0]
    assert torch.equal(got, got_again)
    assert scaled_error(got, expected) < 1e-5


def test_strict_auto_raises_naming_the_backend_instead_of_falling_back(log, monkeypatch):
    monkeypatch.setattr(triton_banded, "_launch", compile_error)
    with pytest.raises(backends.StrictFallbackError, match="triton attention backend raised CompilationError"):
        backends.attend_with_fallback(CUDA_ORDER, *contract_args(), strict=True)
    with pytest.raises(backends.StrictFallbackError, match="float64.*would have fallen back to flex"):
        backends.attend_with_fallback(CUDA_ORDER, *contract_args(torch.float64), strict=True)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_strict_model_with_a_broken_kernel_raises(how, log, monkeypatch):
    config, weights, kwargs = tiny_model_case()
    model = LEDModel.from_weights(config, weights, dtype=torch.float32, attn_implementation="auto")
    if how == "argument":
        model.set_attn_implementation("auto", strict=True)
    else:
        monkeypatch.setenv(backends.STRICT_ENV, "1")
    cuda_order_with_broken_triton(monkeypatch)
    with torch.no_grad(), pytest.raises(backends.StrictFallbackError, match="triton"):
        model(**kwargs)
    monkeypatch.delenv(backends.STRICT_ENV, raising=False)
    model.set_attn_implementation("auto")  # not strict: flex serves it, with the warning
    with torch.no_grad(), pytest.warns(RuntimeWarning, match="falling back to flex"):
        model(**kwargs)


def test_usage_records_which_backend_served_each_call(log, monkeypatch):
    backends.USAGE.clear()
    monkeypatch.setattr(triton_banded, "_launch", compile_error)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backends.attend_with_fallback(CUDA_ORDER, *contract_args())
    backends.attend("banded", *contract_args(torch.float64))
    assert backends.USAGE.snapshot() == {"banded:cpu:float64": 1, "flex:cpu:float32": 1}


def test_a_named_backend_that_cannot_return_probabilities_raises():
    config, weights, kwargs = tiny_model_case()
    model = LEDModel.from_weights(config, weights, dtype=torch.float32, attn_implementation="flex")
    with torch.no_grad(), pytest.raises(ValueError, match="'flex' cannot return attention probabilities"):
        model(**kwargs, output_attentions=True)
