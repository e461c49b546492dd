"""Every side's forward outputs one layer at a time, in model order, so that `audit` holds a few tensors of one
layer per side and never a whole stack (at 16,384 tokens one LED-base encoder layer's attention is 1.6 GB in
float64; keeping every layer of every side is what does not fit).

    streams = [reference_stream(ref_model, inputs, groups), torch_stream(side, model, inputs, groups)]
    name, tensor = streams[0].take()          # ("encoder_hidden_states[0]", array), then the next one ...

Names and layouts are parity.harness.compare.flatten_outputs': encoder_hidden_states[0], encoder_attentions[0],
encoder_global_attentions[0], ..., encoder_last_hidden_state, decoder_hidden_states[0], decoder_attentions[0],
cross_attentions[0], ..., logits, loss; `groups` (hidden, attentions, logits) say which are produced.

- led_ref is stepped here with the spec's own layer functions (`led_ref.encoder.encoder_layer`,
  `led_ref.decoder.decoder_layer`), chained as its forward chains them; the teacher-forced decoder runs its
  rows in blocks through the spec's cached path (a block sees the keys of the rows before it), which bounds the
  float64 cross-attention scores to one block. tests/test_audit_streaming.py checks the stream equals the
  model's own forward.
- led_torch and HF run their unchanged forward in a worker thread; hooks on every layer hand each output over
  and then pause the forward until the reader wants the next one. A layer's probabilities leave the model as
  they are handed over (the hook returns an empty placeholder in their place), so the model does not collect
  them. Only one side computes at a time.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator

import numpy as np

_UNSET = object()
DECODER_ROWS = 256  # teacher-forced decoder rows per block of the reference (float64 scores: rows x source)


class OutputStream:
    """One side's (name, tensor) pairs, read one ahead (`peek`). `seconds` and `cpu_seconds`: the wall and the
    process CPU time spent producing them (only one side computes at a time, so the CPU time is this side's)."""

    def __init__(self, label: str, items: Iterator, close=None):
        self.label, self._items, self._close = label, items, close
        self._next = _UNSET
        self.seconds = self.cpu_seconds = 0.0

    def peek(self):
        """The next (name, tensor) without taking it, or None at the end; a side's crash is raised here."""
        if self._next is _UNSET:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                self._next = next(self._items, None)
            finally:
                self.seconds += time.perf_counter() - wall
                self.cpu_seconds += time.process_time() - cpu
        return self._next

    def take(self):
        item = self.peek()
        self._next = _UNSET if item is not None else None
        return item

    def close(self) -> None:
        self._next = None
        if self._close is not None:
            self._close()


# ------------------------------------------------------------------------------------------ torch sides
class _Closed(Exception):
    """Raised inside a paused forward whose reader stopped: it unwinds the worker thread."""


class HandOff:
    """Runs `work(emit, pause)` in a thread that computes only while the reader waits for an item: `pause()`
    blocks until everything emitted so far has been read and the reader asks for more, and what was emitted is
    read only while the worker is paused (or done). So the worker and the reader never run at once."""

    def __init__(self, work):
        self._cond = threading.Condition()
        self._items: collections.deque = collections.deque()
        self._running = self._done = self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self._thread.start()

    def _run(self, work) -> None:
        try:
            self.pause()  # nothing runs before the first read
            work(self.emit, self.pause)
        except _Closed:
            pass
        except BaseException as err:  # noqa: BLE001 - handed to the reader, who reports it
            self._error = err
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def emit(self, item) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._running or self._closed)
            if self._closed:
                raise _Closed

    def __iter__(self):
        return self

    def __next__(self):
        with self._cond:
            while True:
                # Items are handed over once the worker has paused again: by then it has let go of everything
                # it no longer needs (a layer's probabilities are the reader's alone), so nothing overlaps.
                if self._items and (not self._running or self._done):
                    return self._items.popleft()
                if self._done:
                    if self._error is not None:
                        raise self._error
                    raise StopIteration
                if not self._running and not self._items:
                    self._running = True
                    self._cond.notify_all()
                self._cond.wait()

    def close(self) -> None:
        """Stop the worker at its next pause and wait for it."""
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()
        self._thread.join()


# Where the probabilities sit in a layer's output tuple, by family (HF's and led_torch's layer layouts).
PROBS_AT = {"hf": {"encoder": (1, 2), "decoder": (1, 2)}, "torch": {"encoder": (1, 2), "decoder": (2, 3)}}


def _placeholder(output: tuple, at: tuple) -> tuple:
    """The layer's output with the probabilities at `at` swapped for an empty tensor (the model then collects
    nothing; every slicing and transposing it does to them still works on a (0, 0, 0, 0) tensor)."""
    import torch

    return tuple(torch.empty((0, 0, 0, 0), dtype=x.dtype, device=x.device)
                 if i in at and isinstance(x, torch.Tensor) else x for i, x in enumerate(output))


def _encoder_probs(family: str, output: tuple, seq: int, hf_padded: int):
    """A layer's (attentions, global attentions) in the layout of the model's outputs (HF transposes them)."""
    import torch.nn.functional as F

    probs = output[1] if len(output) > 1 else None
    glob = output[2] if len(output) > 2 else None
    if family == "hf":
        return (None if probs is None else probs.transpose(1, 2)[:, :, :seq],
                None if glob is None else glob.transpose(2, 3))
    if glob is not None:  # led_torch pads the key axis as HF pads it
        glob = F.pad(glob, (0, 0, 0, hf_padded - glob.shape[2]))
    return None if probs is None else probs[:, :, :seq], glob


class _TorchHooks:
    """The hooks that hand one torch side's layer outputs over: `emit` what `groups` ask for, `pause` before
    each layer runs."""

    def __init__(self, side, model, inputs: dict, groups, emit, pause):
        from led_ref.io.lengths import padded_length

        self.family, self.groups, self.emit, self.pause = side.family, set(groups), emit, pause
        self.seq = np.asarray(inputs["input_ids"]).shape[1]
        # led_torch's global attentions are padded here as its encoder pads them (HF's come padded already)
        self.hf_padded = padded_length(self.seq, model.config.max_window) if side.family == "torch" else None
        self.any_global = _any_global(inputs)
        self.encoder_layers = list(model.get_encoder().layers)
        self.decoder_layers = list(model.get_decoder().layers)
        self.handles = []
        for i, layer in enumerate(self.encoder_layers):
            self.handles.append(layer.register_forward_pre_hook(self._before("encoder", i)))
            self.handles.append(layer.register_forward_hook(self._after_encoder(i)))
        self.handles.append(model.get_encoder().register_forward_hook(self._encoder_done))
        for i, layer in enumerate(self.decoder_layers):
            self.handles.append(layer.register_forward_pre_hook(self._before("decoder", i)))
            self.handles.append(layer.register_forward_hook(self._after_decoder(i)))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def give(self, name: str, tensor) -> None:
        """Emit (name, tensor) if its group was asked for (and the model returned it)."""
        from parity.harness.compare import output_group

        if tensor is not None and output_group(name) in self.groups:
            self.emit((name, tensor))

    def _before(self, stack: str, i: int):
        def hook(module, args):
            hidden = args[0]
            self.give(f"{stack}_hidden_states[{i}]", hidden[:, :self.seq] if stack == "encoder" else hidden)
            self.pause()
        return hook

    def _after_encoder(self, i: int):
        def hook(module, args, output):
            probs, glob = _encoder_probs(self.family, output, self.seq, self.hf_padded)
            self.give(f"encoder_attentions[{i}]", probs)
            self.give(f"encoder_global_attentions[{i}]", glob if self.any_global else None)
            if i == len(self.encoder_layers) - 1:
                self.give(f"encoder_hidden_states[{i + 1}]", output[0][:, :self.seq])
            return _placeholder(output, PROBS_AT[self.family]["encoder"])
        return hook

    def _encoder_done(self, module, args, output):
        self.give("encoder_last_hidden_state", output.last_hidden_state)

    def _after_decoder(self, i: int):
        def hook(module, args, output):
            at = PROBS_AT[self.family]["decoder"]
            self.give(f"decoder_attentions[{i}]", output[at[0]] if len(output) > at[0] else None)
            self.give(f"cross_attentions[{i}]", output[at[1]] if len(output) > at[1] else None)
            if i == len(self.decoder_layers) - 1:
                self.give(f"decoder_hidden_states[{i + 1}]", output[0])
            return _placeholder(output, at)
        return hook


def _any_global(inputs: dict) -> bool:
    glob = inputs.get("global_attention_mask")
    if glob is None:
        return False
    mask = inputs.get("attention_mask")
    return bool(np.any((np.asarray(glob) > 0) & (True if mask is None else np.asarray(mask) > 0)))


def torch_stream(side, model, inputs: dict, groups) -> OutputStream:
    """A led_torch or HF side's forward outputs, one at a time (see module docstring); attention probabilities
    only when the side can return them and `groups` asks for them."""
    wants_probs = "attentions" in groups and side.returns_probabilities

    def work(emit, pause):
        hooks = _TorchHooks(side, model, inputs, groups, emit, pause)
        try:
            out = side.forward(model, inputs, output_attentions=wants_probs, output_hidden_states=False)
        finally:
            hooks.remove()
        hooks.give("logits", getattr(out, "logits", None))
        hooks.give("loss", getattr(out, "loss", None))

    hand_off = HandOff(work)
    return OutputStream(side.label, hand_off, hand_off.close)


# ------------------------------------------------------------------------------------------ the reference
class ReferenceSteps:
    """led_ref's forward outputs one at a time (see module docstring). After the encoder, `encoder_hidden`
    holds its last hidden state (batch, seq, d): generation decodes from it rather than encode again."""

    def __init__(self, model, inputs: dict, groups, decoder_rows: int = DECODER_ROWS):
        if inputs.get("decoder_attention_mask") is not None:
            raise ValueError("the reference stream runs the teacher-forced decoder without decoder_attention_mask")
        if isinstance(decoder_rows, bool) or not isinstance(decoder_rows, int) or decoder_rows < 1:
            raise ValueError(f"decoder_rows must be a positive int, got {decoder_rows!r}")
        from led_ref.functional import activation

        self.model, self.inputs, self.groups, self.rows = model, inputs, set(groups), decoder_rows
        self.weights, self.config = model.base_weights, model.config
        self.act = activation(self.config.activation_function)
        self.encoder_hidden = None

    def __iter__(self):
        yield from self._encoder()
        yield from self._decoder()

    def _wanted(self, name: str) -> bool:
        from parity.harness.compare import output_group

        return output_group(name) in self.groups

    def _encoder(self):
        from led_ref import encoder, layout
        from led_ref.functional import subtree

        config, ids = self.config, np.asarray(self.inputs["input_ids"])
        seq = ids.shape[1]
        windows = [layout.effective_window(w, seq) for w in config.layer_windows]
        hf_padded = layout.padded_length(seq, config.max_window)
        hidden, kind, _ = encoder.embed_encoder_inputs(
            self.weights, config, ids, None, self.inputs.get("attention_mask"),
            self.inputs.get("global_attention_mask"),
            window=max(windows, default=layout.effective_window(config.max_window, seq)))
        any_global = bool(np.any(kind == layout.GLOBAL))
        probs_wanted = "attentions" in self.groups
        for layer, window in enumerate(windows):
            if self._wanted("encoder_hidden_states"):
                yield f"encoder_hidden_states[{layer}]", hidden[:, :seq]
            hidden, probs, global_probs = encoder.encoder_layer(
                hidden, subtree(self.weights, f"encoder.layers.{layer}."), kind, window,
                config.encoder_attention_heads, self.act, output_attentions=probs_wanted)
            if probs_wanted:
                outputs = [(f"encoder_attentions[{layer}]", layout.widen_window_columns(
                    probs, window, config.layer_windows[layer])[:, :, :seq])]
                if any_global:
                    outputs.append((f"encoder_global_attentions[{layer}]", _pad_keys(global_probs, hf_padded)))
                del probs, global_probs
                yield from _hand_over(outputs)
        self.encoder_hidden = hidden[:, :seq]
        if self._wanted("encoder_hidden_states"):
            yield f"encoder_hidden_states[{len(windows)}]", self.encoder_hidden
            yield "encoder_last_hidden_state", self.encoder_hidden

    def _decoder(self):
        from led_ref.decoder import padding_bias
        from led_ref.functional import cross_entropy, embedding, layer_norm
        from led_ref.model import lm_logits

        w, ids = self.weights, np.asarray(self.inputs["decoder_input_ids"])
        mask = self.inputs.get("attention_mask")
        cross_bias = None if mask is None else padding_bias(np.asarray(mask), w["shared.weight"].dtype)
        positions = w["decoder.embed_positions.weight"][: ids.shape[1]]
        hidden = layer_norm(embedding(ids, w["shared.weight"]) + positions, w, "decoder.layernorm_embedding")
        probs_wanted = "attentions" in self.groups
        for layer in range(self.config.decoder_layers):
            if self._wanted("decoder_hidden_states"):
                yield f"decoder_hidden_states[{layer}]", hidden
            hidden, self_probs, cross_probs = self._decoder_layer(hidden, layer, cross_bias, probs_wanted)
            outputs = [(f"decoder_attentions[{layer}]", self_probs), (f"cross_attentions[{layer}]", cross_probs)]
            del self_probs, cross_probs
            if probs_wanted:
                yield from _hand_over(outputs)
        if self._wanted("decoder_hidden_states"):
            yield f"decoder_hidden_states[{self.config.decoder_layers}]", hidden
        if self._wanted("logits"):
            logits = lm_logits(self.model.weights, hidden)
            yield "logits", logits
            labels = self.inputs.get("labels")
            if labels is not None:
                yield "loss", cross_entropy(logits.reshape(-1, logits.shape[-1]), np.asarray(labels).reshape(-1))

    def _decoder_layer(self, hidden: np.ndarray, layer: int, cross_bias, probs_wanted: bool):
        """One decoder layer over the teacher-forced rows, `self.rows` at a time through the spec's cached path:
        -> (hidden, self-attention probs (batch, heads, tgt, tgt), cross-attention probs (batch, heads, tgt,
        src)), the probabilities None unless wanted."""
        from led_ref import decoder
        from led_ref.functional import subtree

        params = subtree(self.weights, f"decoder.layers.{layer}.")
        heads = self.config.decoder_attention_heads
        cross_key, cross_value = decoder.project_kv(self.encoder_hidden, subtree(params, "encoder_attn."), heads)
        batch, tgt, d = hidden.shape
        self_cache = (np.zeros((batch, heads, 0, d // heads), hidden.dtype),) * 2  # no rows before the first block
        out = np.empty_like(hidden)
        self_probs = np.zeros((batch, heads, tgt, tgt), hidden.dtype) if probs_wanted else None
        cross_probs = np.empty((batch, heads, tgt, cross_key.shape[2]), hidden.dtype) if probs_wanted else None
        for start in range(0, tgt, self.rows):
            stop = min(tgt, start + self.rows)
            bias = decoder.self_attention_bias(None, stop - start, start, hidden.dtype)
            out[:, start:stop], self_cache, p_self, p_cross = decoder.decoder_layer(
                hidden[:, start:stop], params, self_cache, cross_key, cross_value, bias, cross_bias, heads, self.act)
            if probs_wanted:  # a row's keys past its own position have probability exactly 0, as in one pass
                self_probs[:, :, start:stop, :stop] = p_self
                cross_probs[:, :, start:stop] = p_cross
        return out, self_probs, cross_probs


def _hand_over(outputs: list):
    """Yield the (name, array) pairs of `outputs`, emptying it: an output handed over is no longer held here, so
    the reader's dropping it frees it (before the reference computes its next layer)."""
    while outputs:
        yield outputs.pop(0)


def _pad_keys(global_probs: np.ndarray, length: int) -> np.ndarray:
    """Global attentions (batch, heads, keys, x) with the key axis zero-padded to `length`, as led_ref returns."""
    missing = length - global_probs.shape[2]
    if missing <= 0:
        return global_probs
    return np.concatenate([global_probs, np.zeros(global_probs.shape[:2] + (missing,) + global_probs.shape[3:],
                                                  global_probs.dtype)], axis=2)


def reference_stream(model, inputs: dict, groups, decoder_rows: int = DECODER_ROWS,
                     label: str = "ref:float64") -> OutputStream:
    """led_ref's forward outputs one at a time; the stream's `steps.encoder_hidden` is set after the encoder."""
    steps = ReferenceSteps(model, inputs, groups, decoder_rows)
    stream = OutputStream(label, iter(steps))
    stream.steps = steps
    return stream
