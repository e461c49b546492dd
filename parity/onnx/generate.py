"""Generation through ONNX Runtime: the ONNX decoder files give the logits, led_ref's search loop and rules the
tokens (greedy or beam search, forced tokens, minimum length, n-gram bans), so a difference from led_ref's tokens
can only come from the files.

    tokens = onnx_generate(OnnxLED.open("exported/"), inputs, settings)            # greedy: (batch, length)
    tokens, scores = onnx_generate(onnx, inputs, settings_with_beams)             # beams: + sequence scores

`generation_parity` compares that with led_ref's own generate, tie-aware (parity.harness.generation).
"""

from __future__ import annotations

import numpy as np

from parity.onnx.sessions import OnnxLED, OnnxRunError

REFERENCE = "ref:float64"


class OnnxDecoder:
    """led_ref.generation's decoder interface on the ONNX decoder files: `step(tokens) -> logits` and
    `reorder(rows)`. The first step (or every step, without decoder_with_past_model.onnx) runs decoder_model.onnx
    on the whole prefix; later steps feed one token and the cache to decoder_with_past_model.onnx. Rows are
    sources x beams (the encoder output and mask repeated per beam, as the files take one row per sequence)."""

    def __init__(self, onnx: OnnxLED, encoder_hidden: np.ndarray, encoder_mask: np.ndarray, vocab_size: int):
        self.onnx = onnx
        self.hidden = encoder_hidden
        self.mask = encoder_mask
        self.tokens = None
        self.past = None
        # led_ref's beam search reads the vocabulary size off its decoder's LM weight: a (vocab, 0) stand-in
        self.lm_weight = np.empty((vocab_size, 0), dtype=np.float32)

    def step(self, tokens: np.ndarray) -> np.ndarray:
        new = np.asarray(tokens, dtype=np.int64)[:, None]
        self.tokens = new if self.tokens is None else np.concatenate([self.tokens, new], axis=1)
        if self.past is not None:
            logits, presents = self.onnx.decode_with_past(new, self.mask, self.past, self.hidden)
            for layer, parts in presents.items():
                self.past[layer].update(parts)
        else:
            logits, presents = self.onnx.decode(self.tokens, self.mask, self.hidden)
            complete = all(len(presents.get(i, {})) == 4 for i in range(self.onnx.layers))
            if self.onnx.decoder_with_past is not None and self.onnx.layers and complete:
                self.past = presents
        return np.asarray(logits[:, -1], dtype=np.float64)

    def reorder(self, rows: np.ndarray) -> None:
        """Keep rows `rows` (beams that continue, duplicated where they fork) of the prefix and the cache."""
        self.tokens = self.tokens[rows]
        if self.past is not None:
            self.past = {layer: {part: value[rows] for part, value in parts.items()}
                         for layer, parts in self.past.items()}


def onnx_generate(onnx: OnnxLED, inputs: dict, settings):
    """Search with the ONNX files giving the logits and led_ref's loop applying `settings`
    (led_ref.io.generation_settings.GenerationSettings): token ids (batch, length) for greedy search; for beam
    search (token ids (batch * num_return_sequences, length), length-normalised scores)."""
    from led_ref.generation import Rules, beam_search, greedy_search, pad_hypotheses

    hidden = onnx.encode(inputs["input_ids"], inputs["attention_mask"], inputs["global_attention_mask"])
    batch, beams = inputs["input_ids"].shape[0], settings.num_beams
    vocab = onnx.decoder.outputs["logits"][1][-1]
    if not isinstance(vocab, int):
        raise OnnxRunError(f"{onnx.decoder.name} does not declare its vocabulary size (logits' last axis)")
    rules = Rules(settings, inputs["input_ids"], beams)
    if beams == 1:
        decoder = OnnxDecoder(onnx, hidden, inputs["attention_mask"], vocab)
        return greedy_search(decoder, rules, batch, settings)
    decoder = OnnxDecoder(onnx, np.repeat(hidden, beams, axis=0), np.repeat(inputs["attention_mask"], beams, axis=0),
                          vocab)
    return pad_hypotheses(beam_search(decoder, rules, batch, settings), settings.num_return_sequences,
                          settings.fill_token_id)


def generation_parity(onnx: OnnxLED, ref_model, inputs: dict, settings, label: str):
    """ONNX generation vs led_ref's on `inputs` with `settings`, tie-aware, beam scores compared for beam search
    -> GenerationComparison (named `label`); ONNX Runtime raising is a MISMATCH at step -1."""
    from led_ref.io.generation_settings import explicit_arguments
    from parity.harness.generation import (
        BeamRule,
        GenerationComparison,
        TokenDivergence,
        compare_generation,
        reference_scorer,
        tie_budget,
    )
    from parity.harness.implementations import Side

    reference = Side("ref")
    inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "global_attention_mask")}
    beams = settings.num_beams
    kwargs = explicit_arguments(settings)
    if beams > 1:
        kwargs.update(return_dict_in_generate=True, output_scores=True)
    expected = reference.generate(ref_model, inputs, **kwargs)
    expected, expected_scores = expected if beams > 1 else (expected, None)
    dtype = onnx.decoder.output_dtype("logits")
    try:
        actual = onnx_generate(onnx, inputs, settings)
    except OnnxRunError as err:  # a MISMATCH row at step -1, as parity.harness.generation reports a crash
        return GenerationComparison(f"{label} (onnxruntime raised: {err})", REFERENCE,
                                    [TokenDivergence(-1, -1, -1, -1, float("inf"), 0.0)])
    actual, actual_scores = actual if beams > 1 else (actual, None)
    budget = tie_budget(dtype, "float64")
    rows = settings.num_return_sequences if beams > 1 else 1
    beam = BeamRule(settings.length_penalty, settings.eos_token_id) if beams > 1 else None
    return compare_generation(actual, expected, reference_scorer(reference, ref_model, inputs, rows), budget,
                              settings.pad_token_id, label, REFERENCE, beam, actual_scores, expected_scores)
