"""The HF-module adapter: gate any module with the forward of HF's `LEDEncoderSelfAttention`.

    forward(hidden_states, attention_mask, layer_head_mask, is_index_masked, is_index_global_attn,
            is_global_attn, output_attentions) -> (context (batch, seq, heads * head_dim), ...)

with six projections named `query`, `key`, `value`, `query_global`, `key_global`, `value_global` and HF's
constructor `(config, layer_id)`: the class a user swaps into an HF model (`hf_module_kernel(MyAttention)`),
an instance of it (its class is built again per shape), or a factory `(config, layer_id) -> module`.

For each case shape the adapter builds the module from an `LEDConfig` (d_model = heads x head_dim, one layer
whose attention_window is the contract's window in HF's convention) and replaces its six projections by
lookups: the hidden states carry each token's (batch, position) index in their first channels, and each lookup
returns the case's tensor for that index. So the module sees the gate's six independent projections, whatever
order it transposes or projects in, and gradients reach the case's inputs. HF divides queries by
sqrt(head_dim) inside, so the lookups hand it the contract's pre-scaled queries times sqrt(head_dim).
The masks are built as HF's LEDEncoder builds them: `attention_mask` 0 for local, the dtype's lowest value
for padding and its highest for global tokens, and the three index masks.
"""

from __future__ import annotations

import math

import torch

from led_ref.explore.conventions import parameters
from parity.gate.support import ATTRIBUTE, support_of

PROJECTIONS = ("query", "key", "value", "query_global", "key_global", "value_global")
DIGIT = 128  # index digits per channel: exact in bfloat16 (integers up to 256)


def encode_positions(batch: int, seq: int, width: int, dtype, device) -> torch.Tensor:
    """(batch, seq, width) hidden states whose first channels hold the base-128 digits of b * seq + s."""
    index = torch.arange(batch * seq, device=device)
    digits = []
    while len(digits) < width and (not digits or DIGIT ** len(digits) < batch * seq):
        digits.append((index // DIGIT ** len(digits)) % DIGIT)
    if DIGIT ** len(digits) < batch * seq:
        raise ValueError(f"hf-module adapter: heads x head_dim = {width} channels cannot index {batch * seq} tokens")
    hidden = torch.zeros(batch * seq, width, dtype=dtype, device=device)
    hidden[:, : len(digits)] = torch.stack(digits, dim=1).to(dtype)
    return hidden.view(batch, seq, width)


def decode_positions(hidden: torch.Tensor, tokens: int) -> torch.Tensor:
    """The flat token index each row of `hidden` (any leading layout) encodes."""
    index = torch.zeros(hidden.shape[:-1], dtype=torch.int64, device=hidden.device)
    place = 1
    for channel in range(hidden.shape[-1]):
        if place >= max(tokens, 2):
            break
        index += hidden[..., channel].round().long() * place
        place *= DIGIT
    return index


class Lookup(torch.nn.Module):
    """Stands in for a projection: returns row `index` of a (tokens, width) table for hidden states that
    encode `index`. The table is set per call by the adapter (`tables[slot]`), not a parameter."""

    def __init__(self, tables: dict, slot: str):
        super().__init__()
        self.tables, self.slot = tables, slot

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        table = self.tables[self.slot]
        return table[decode_positions(hidden, table.shape[0])]


def _builder(module):
    """(config, layer_id) -> a new module, from a class, an instance or a factory."""
    if isinstance(module, torch.nn.Module):
        return type(module)
    if callable(module):
        return module
    raise TypeError(f"hf-module adapter takes a module class, instance or factory, got {type(module).__name__}")


def _config(heads: int, head_dim: int, window: int):
    from transformers import LEDConfig

    return LEDConfig(d_model=heads * head_dim, encoder_attention_heads=heads, decoder_attention_heads=heads,
                     encoder_layers=1, decoder_layers=1, attention_dropout=0.0, dropout=0.0,
                     attention_window=[parameters(window, "hf")["attention_window"]])


class HFModuleKernel:
    """The contract's signature around an HF-style encoder self-attention module (built once per shape)."""

    def __init__(self, module):
        self.build = _builder(module)
        self.tables: dict[str, torch.Tensor] = {}
        self.modules: dict[tuple, torch.nn.Module] = {}  # (heads, head_dim, window, dtype, device) -> module
        name = getattr(module, "__qualname__", type(module).__qualname__)
        self.__qualname__ = self.__name__ = f"hf_module({name})"
        self.__module__ = getattr(module, "__module__", __name__)
        setattr(self, ATTRIBUTE, support_of(module))

    def module_for(self, heads: int, head_dim: int, window: int, dtype, device) -> torch.nn.Module:
        key = (heads, head_dim, window, dtype, str(device))
        if key not in self.modules:
            module = self.build(_config(heads, head_dim, window), 0)
            for name in PROJECTIONS:
                if not hasattr(module, name):
                    raise TypeError(f"hf-module adapter: {type(module).__name__} has no projection {name!r}")
                setattr(module, name, Lookup(self.tables, name))
            self.modules[key] = module.to(device=device, dtype=dtype).eval()
        return self.modules[key]

    def received(self, arrays, dtype: str) -> tuple:
        """The six float64 arrays as the module receives them: queries times sqrt(head_dim), rounded to the
        dtype on the way in, and divided back exactly (the module's own division is its own rounding)."""
        scale = math.sqrt(arrays[0].shape[-1])
        torch_dtype = getattr(torch, dtype)

        def handed(a):
            return (torch.as_tensor(a) * scale).to(torch_dtype).double().numpy() / scale

        query, key, value, global_query, global_key, global_value = arrays
        return handed(query), key, value, handed(global_query), global_key, global_value

    def __call__(self, query, key, value, global_query, global_key, global_value, token_kind, window):
        batch, heads, seq, head_dim = query.shape
        width = heads * head_dim
        module = self.module_for(heads, head_dim, int(window), query.dtype, query.device)
        unscale = math.sqrt(head_dim)  # the module divides queries by sqrt(head_dim) itself
        for name, t in zip(PROJECTIONS, (query * unscale, key, value, global_query * unscale, global_key,
                                         global_value), strict=True):  # `received` states this hand-over
            self.tables[name] = t.transpose(1, 2).reshape(batch * seq, width)
        hidden = encode_positions(batch, seq, width, query.dtype, query.device)
        kinds = token_kind.to(query.device)
        lowest = torch.finfo(query.dtype).min
        attention_mask = (1 - kinds).to(query.dtype) * lowest  # 0 local, lowest padding, highest global
        is_global = kinds == 2
        try:
            out = module(hidden, attention_mask=attention_mask, layer_head_mask=None, is_index_masked=kinds == 0,
                         is_index_global_attn=is_global, is_global_attn=bool(is_global.any()),
                         output_attentions=False)
        finally:
            self.tables.clear()  # the case's tensors are not kept alive by the adapter
        context = out[0] if isinstance(out, (tuple, list)) else out
        return context.reshape(batch, seq, heads, head_dim).transpose(1, 2)


def hf_module_kernel(module) -> HFModuleKernel:
    """The contract-signature kernel for an HF-style encoder self-attention class, instance or factory."""
    return HFModuleKernel(module)
