"""The four public LED classes: thin holders of (config, weights) around the pure functions.

    model = LEDForConditionalGeneration(config)            # seeded random weights
    model = LEDForConditionalGeneration.from_pretrained(path)
    out = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob)
    out.logits, out["logits"], out[0]

Every class collects HF's shared keyword arguments into one `Seq2SeqInputs`, computes `seq2seq_forward`
(check the encoder inputs, check the decoder inputs, encode, decode) and adds its head:

    LEDModel                        decoder last hidden state
    LEDForConditionalGeneration     logits = h @ shared.T + final_logits_bias; loss over labels != -100
    LEDForSequenceClassification    out_proj(tanh(dense(h at the last eos of each row)))
    LEDForQuestionAnswering         (start, end) = split(qa_outputs(h))

`model.weights` is a plain dict of HF-named arrays (`led.` prefix on the head classes), the same names as
in a checkpoint file; the numerics read the base weights without the prefix.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .decoder import decoder_forward
from .encoder import encoder_forward
from .functional import bce_with_logits, cross_entropy, linear, mse, subtree
from .init import missing_head_weights, random_weights
from .io import validation as check
from .io.checkpoint import (
    adapt_state_dict,
    check_state_dict,
    float_dtype,
    load_checkpoint,
    resolve_checkpoint,
    save_model,
)
from .io.config import LEDConfig
from .io.generation_settings import GenerationConfig, model_generation_config
from .io.inputs import Seq2SeqInputs, as_encoder_output, generate_input_ids
from .io.names import base_prefix, head_shapes
from .io.outputs import (
    LEDEncoderBaseModelOutput,
    LEDSeq2SeqLMOutput,
    LEDSeq2SeqModelOutput,
    LEDSeq2SeqQuestionAnsweringModelOutput,
    LEDSeq2SeqSequenceClassifierOutput,
    seq2seq_fields,
)


# ------------------------------------------------------------------------------------------- pure functions
def shift_tokens_right(ids: np.ndarray, pad_token_id: int, decoder_start_token_id: int) -> np.ndarray:
    """Teacher-forcing decoder inputs: [start, ids[:-1]], with -100 (ignored labels) replaced by pad.

        ids [[5, 6, -100]]  ->  [[2, 5, 6]];   ids [[5, -100, 7]]  ->  [[2, 5, 1]]
    """
    shifted = np.empty_like(ids)
    shifted[:, 0] = decoder_start_token_id
    shifted[:, 1:] = ids[:, :-1]
    return np.where(shifted == check.IGNORE_INDEX, pad_token_id, shifted)


def seq2seq_forward(weights: Mapping[str, np.ndarray], config: LEDConfig,
                    inputs: Seq2SeqInputs) -> LEDSeq2SeqModelOutput:
    """LEDModel's forward pass on base weights (no `led.` prefix), in named steps: resolve the switches, check
    the encoder inputs, check the decoder inputs (decoder_input_ids default to input_ids shifted right, HF's
    LEDModel habit), encode (unless `encoder_outputs` are given), decode."""
    dtype = weights["shared.weight"].dtype
    inputs = inputs.with_switches(config.use_cache)
    inputs = checked_encoder_inputs(inputs, config, dtype, required=inputs.encoder_outputs is None)
    inputs, past = checked_decoder_inputs(inputs, config, dtype)
    encoder_outputs = encode(weights, config, inputs)
    if past is not None:
        check.check_cache_source("past_key_values", past, encoder_outputs.last_hidden_state.shape[1])
    return decode(weights, config, inputs, encoder_outputs, past)


def checked_encoder_inputs(inputs: Seq2SeqInputs, config: LEDConfig, dtype: np.dtype,
                           required: bool = True) -> Seq2SeqInputs:
    """The encoder's inputs checked and converted: ids or embeddings (exactly one when `required`), their
    masks and the head mask."""
    if required:
        check.exactly_one("input_ids", inputs.input_ids, "inputs_embeds", inputs.inputs_embeds)
    ids, embeds = inputs.input_ids, inputs.inputs_embeds
    if ids is not None:
        ids = check.check_token_ids("input_ids", ids, config.vocab_size)
    if embeds is not None:
        embeds = check.as_dtype("inputs_embeds", check.check_embeds("inputs_embeds", embeds, config.d_model), dtype)
    inputs = inputs.but(input_ids=ids, inputs_embeds=embeds)
    source = ids if ids is not None else embeds
    if source is not None:
        shape = source.shape[:2]
        check.check_length("input_ids" if ids is not None else "inputs_embeds", shape[1],
                           "max_encoder_position_embeddings", config.max_encoder_position_embeddings)
        for name in ("attention_mask", "global_attention_mask"):
            if getattr(inputs, name) is not None:
                inputs = inputs.but(**{name: check.check_mask(name, getattr(inputs, name), shape)})
    return inputs.but(head_mask=check.check_head_mask("head_mask", inputs.head_mask, config.encoder_layers,
                                                      config.encoder_attention_heads))


def checked_decoder_inputs(inputs: Seq2SeqInputs, config: LEDConfig,
                           dtype: np.dtype) -> tuple[Seq2SeqInputs, tuple | None]:
    """The decoder's inputs checked and converted, and the cache as arrays (or None)."""
    if inputs.decoder_input_ids is None and inputs.decoder_inputs_embeds is None:
        if inputs.input_ids is None:
            raise ValueError("give decoder_input_ids or decoder_inputs_embeds (they default to input_ids shifted "
                             "right, but input_ids is None)")
        inputs = inputs.but(decoder_input_ids=shift_tokens_right(inputs.input_ids, config.pad_token_id,
                                                                 config.decoder_start_token_id))
    check.exactly_one("decoder_input_ids", inputs.decoder_input_ids, "decoder_inputs_embeds",
                      inputs.decoder_inputs_embeds)
    if inputs.decoder_input_ids is not None:
        inputs = inputs.but(decoder_input_ids=check.check_token_ids("decoder_input_ids", inputs.decoder_input_ids,
                                                                    config.vocab_size))
        target = inputs.decoder_input_ids
    else:
        embeds = check.check_embeds("decoder_inputs_embeds", inputs.decoder_inputs_embeds, config.d_model)
        inputs = inputs.but(decoder_inputs_embeds=check.as_dtype("decoder_inputs_embeds", embeds, dtype))
        target = inputs.decoder_inputs_embeds
    batch, tgt = target.shape[:2]
    layers, heads = config.decoder_layers, config.decoder_attention_heads
    past = check.check_cache("past_key_values", inputs.past_key_values, layers, batch, heads,
                             config.d_model // heads)
    past_len = 0 if past is None else past[0][0].shape[2]
    check.check_length("decoder_input_ids", past_len + tgt, "max_decoder_position_embeddings",
                       config.max_decoder_position_embeddings)
    if inputs.decoder_attention_mask is not None:
        inputs = inputs.but(decoder_attention_mask=check.check_mask(
            "decoder_attention_mask", inputs.decoder_attention_mask, (batch, past_len + tgt)))
    inputs = inputs.but(
        decoder_head_mask=check.check_head_mask("decoder_head_mask", inputs.decoder_head_mask, layers, heads),
        cross_attn_head_mask=check.check_head_mask("cross_attn_head_mask", inputs.cross_attn_head_mask, layers,
                                                   heads),
    )
    return inputs, past


def _decoder_batch(inputs: Seq2SeqInputs) -> int:
    target = inputs.decoder_input_ids if inputs.decoder_input_ids is not None else inputs.decoder_inputs_embeds
    return target.shape[0]


def encode(weights: Mapping[str, np.ndarray], config: LEDConfig,
           inputs: Seq2SeqInputs) -> LEDEncoderBaseModelOutput:
    """The encoder's output on checked inputs, or the given `encoder_outputs`, its hidden state checked and
    cast to the weights' dtype; either way its batch must be the decoder's."""
    batch = _decoder_batch(inputs)
    if inputs.encoder_outputs is None:
        source = inputs.input_ids if inputs.input_ids is not None else inputs.inputs_embeds
        check.check_same_batch("input_ids", source.shape[0], "decoder_input_ids", batch)
        out = encoder_forward(weights, config, inputs.input_ids, inputs.attention_mask,
                              inputs.global_attention_mask, inputs.head_mask, inputs.inputs_embeds,
                              inputs.output_attentions, inputs.output_hidden_states)
    else:
        out = as_encoder_output(inputs.encoder_outputs, np.ndarray)
    hidden = check.check_encoder_hidden("encoder_outputs[0]", out.last_hidden_state, config.d_model,
                                        weights["shared.weight"].dtype)
    check.check_same_batch("encoder_outputs", hidden.shape[0], "decoder_input_ids", batch)
    return LEDEncoderBaseModelOutput(hidden, out.hidden_states, out.attentions, out.global_attentions)


def decode(weights: Mapping[str, np.ndarray], config: LEDConfig, inputs: Seq2SeqInputs,
           encoder_outputs: LEDEncoderBaseModelOutput, past: tuple | None) -> LEDSeq2SeqModelOutput:
    """The decoder over the encoder output (attention_mask is now the cross-attention mask over it), and
    the base model's output, with what the switches ask for."""
    encoder_hidden = encoder_outputs.last_hidden_state
    attention_mask = inputs.attention_mask
    if attention_mask is not None:
        attention_mask = check.check_mask("attention_mask", attention_mask, encoder_hidden.shape[:2])
    dec = decoder_forward(
        weights, config, inputs.decoder_input_ids, inputs.decoder_inputs_embeds, inputs.decoder_attention_mask,
        encoder_hidden, attention_mask, inputs.decoder_head_mask, inputs.cross_attn_head_mask, past,
    )
    return LEDSeq2SeqModelOutput(
        last_hidden_state=dec["last_hidden_state"],
        past_key_values=dec["past_key_values"] if inputs.use_cache else None,
        decoder_hidden_states=dec["hidden_states"] if inputs.output_hidden_states else None,
        decoder_attentions=dec["attentions"] if inputs.output_attentions else None,
        cross_attentions=dec["cross_attentions"] if inputs.output_attentions else None,
        encoder_last_hidden_state=encoder_hidden,
        encoder_hidden_states=encoder_outputs.hidden_states,
        encoder_attentions=encoder_outputs.attentions,
        encoder_global_attentions=encoder_outputs.global_attentions,
    )


def lm_logits(weights: Mapping[str, np.ndarray], hidden: np.ndarray) -> np.ndarray:
    """The LM head, tied to the token embedding: (batch, tgt, d) -> (batch, tgt, vocab)."""
    return hidden @ weights["led.shared.weight"].T + weights["final_logits_bias"]


def eos_pooled(hidden: np.ndarray, input_ids: np.ndarray, eos_token_id: int) -> np.ndarray:
    """The hidden state at the last eos token of every row: (batch, seq, d) -> (batch, d).

    Rows must hold the same (non-zero) number of eos tokens, as HF requires.
    """
    if input_ids.shape != hidden.shape[:2]:
        raise ValueError(f"eos pooling reads the decoder output at the eos tokens of input_ids, so the decoder "
                         f"length must equal input_ids' {input_ids.shape}; got {hidden.shape[:2]}")
    check.eos_rule((input_ids == eos_token_id).sum(axis=1), eos_token_id)
    last = input_ids.shape[1] - 1 - np.argmax((input_ids == eos_token_id)[:, ::-1], axis=1)
    return hidden[np.arange(hidden.shape[0]), last]


def classification_loss(logits: np.ndarray, labels: Any, config: LEDConfig) -> float:
    """Regression (MSE), single-label (cross-entropy, -100 ignored) or multi-label (BCE with logits).

    Without `config.problem_type`, the choice is HF's: regression when num_labels == 1, single-label for
    integer labels, multi-label otherwise (decided per call; HF also writes it into the config).
    """
    labels = check.numeric_array("labels", labels)
    problem = config.classification_problem(integer_labels=np.issubdtype(labels.dtype, np.integer))
    check.per_row_rule("labels", labels.shape, logits.shape[0])
    if problem == "regression":
        if config.num_labels == 1:
            return mse(np.squeeze(logits), np.squeeze(labels).astype(logits.dtype))
        check.same_shape_rule("labels", labels.shape, logits.shape)
        return mse(logits, labels.astype(logits.dtype))
    if problem == "single_label_classification":
        labels = check.integer_array("labels", labels).reshape(-1)
        check.range_rule("labels", labels, "num_labels", config.num_labels, allow_ignore=True)
        return cross_entropy(logits.reshape(-1, config.num_labels), labels)
    if problem == "multi_label_classification":
        check.same_shape_rule("labels", labels.shape, logits.shape)
        return bce_with_logits(logits, labels.astype(logits.dtype))
    raise ValueError(f"problem_type must be regression, single_label_classification or "
                     f"multi_label_classification, got {problem!r}")


def span_loss(start_logits: np.ndarray, end_logits: np.ndarray, start_positions, end_positions) -> float:
    """Mean of the start and end cross-entropies; positions are clamped to [0, seq] and seq is ignored."""
    seq = start_logits.shape[1]
    losses = []
    for name, logits, positions in (("start_positions", start_logits, start_positions),
                                    ("end_positions", end_logits, end_positions)):
        positions = check.integer_array(name, positions)
        check.positions_rule(name, positions.shape, logits.shape[0])
        positions = positions.reshape(-1)
        losses.append(cross_entropy(logits, np.clip(positions, 0, seq), ignore_index=seq))
    return (losses[0] + losses[1]) / 2


# ------------------------------------------------------------------------------------------- classes
class LEDEncoder:
    """`model.get_encoder()`: the encoder alone, callable like HF's."""

    def __init__(self, model: _LEDBase):
        self.model = model

    def __call__(self, input_ids=None, attention_mask=None, global_attention_mask=None, head_mask=None,
                 inputs_embeds=None, output_attentions=False, output_hidden_states=False, return_dict=True):
        weights = self.model.base_weights
        config = self.model.config
        inputs = Seq2SeqInputs.pick(locals()).with_switches(config.use_cache)
        inputs = checked_encoder_inputs(inputs, config, weights["shared.weight"].dtype)
        return encoder_forward(weights, config, inputs.input_ids, inputs.attention_mask,
                               inputs.global_attention_mask, inputs.head_mask, inputs.inputs_embeds,
                               inputs.output_attentions, inputs.output_hidden_states)


class _LEDBase:
    ARCHITECTURE = "LEDModel"

    def __init__(self, config: LEDConfig, weights: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                 dtype=np.float64):
        config = LEDConfig.for_model(config)  # ours, a dict, or transformers' LEDConfig (duck-typed)
        dtype = float_dtype(dtype)
        self.config = config
        # What HF calls model.generation_config: from_pretrained replaces it with generation_config.json.
        self.generation_config = GenerationConfig.from_model_config(config)
        self.dtype = dtype
        if weights is None:
            weights = random_weights(config, self.ARCHITECTURE, seed=seed, dtype=dtype)
        else:
            weights = adapt_state_dict(dict(weights), config, self.ARCHITECTURE)
            check_state_dict(weights, config, self.ARCHITECTURE, dtype=dtype)  # finite once cast, too
        self.weights = {name: np.asarray(value, dtype=dtype) for name, value in weights.items()}

    # ---- weights and files
    @property
    def base_weights(self) -> dict[str, np.ndarray]:
        """The encoder-decoder weights without the `led.` prefix."""
        prefix = base_prefix(self.ARCHITECTURE)
        return subtree(self.weights, prefix) if prefix else dict(self.weights)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dtype=np.float64, seed: int = 0):
        """Load an HF-format folder (config.json + model.safetensors). A head missing from the file (e.g. a
        classification head on a summarisation checkpoint) is initialised from `seed`, with a warning
        (`led_ref.init.missing_head_weights`: the values led_torch gives the same checkpoint)."""
        path = resolve_checkpoint(path)
        config, weights = load_checkpoint(path, architecture=cls.ARCHITECTURE, dtype=dtype,
                                          allow_missing_head=True)
        missing = [name for name in head_shapes(config, cls.ARCHITECTURE) if name not in weights]
        if missing:
            warnings.warn(f"{os.fspath(path)} has no {missing}; initialising them randomly (seed={seed})",
                          stacklevel=2)
            weights |= missing_head_weights(config, cls.ARCHITECTURE, missing, seed=seed, dtype=dtype)
        model = cls(config, weights, dtype=dtype)
        model.generation_config = model_generation_config(config, path)
        return model

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write config.json + generation_config.json + model.safetensors in HF's format (tied embeddings left
        out; generation parameters in generation_config.json, null in config.json, as HF writes them)."""
        save_model(path, self.config, self.generation_config, self.weights, self.ARCHITECTURE)

    def get_encoder(self) -> LEDEncoder:
        return LEDEncoder(self)

    def _base_forward(self, inputs: Seq2SeqInputs) -> LEDSeq2SeqModelOutput:
        return seq2seq_forward(self.base_weights, self.config, inputs)

    def __repr__(self) -> str:
        c = self.config
        return (f"{type(self).__name__}(d_model={c.d_model}, encoder_layers={c.encoder_layers}, "
                f"decoder_layers={c.decoder_layers}, vocab_size={c.vocab_size}, dtype={self.dtype})")


class LEDModel(_LEDBase):
    """The bare encoder-decoder: returns the decoder's last hidden state and the encoder's outputs."""

    ARCHITECTURE = "LEDModel"

    def __call__(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                 global_attention_mask=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                 use_cache=None, output_attentions=False, output_hidden_states=False,
                 return_dict=True) -> LEDSeq2SeqModelOutput:
        return self._base_forward(Seq2SeqInputs.pick(locals()))


class LEDForConditionalGeneration(_LEDBase):
    """LED with the (tied) language-modelling head; `generate` for greedy and beam search."""

    ARCHITECTURE = "LEDForConditionalGeneration"

    def __call__(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                 global_attention_mask=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                 labels=None, use_cache=None, output_attentions=False,
                 output_hidden_states=False, return_dict=True) -> LEDSeq2SeqLMOutput:
        inputs = Seq2SeqInputs.pick(locals())  # the arguments above, by name
        if labels is not None:
            labels = check.check_labels("labels", labels, self.config.vocab_size)
            source = input_ids if input_ids is not None else inputs_embeds
            if source is not None and encoder_outputs is None:
                check.check_same_batch("labels", labels.shape[0], "input_ids", np.shape(source)[0])
            inputs = inputs.but(use_cache=False)  # as HF: training calls return no cache
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                inputs = inputs.but(decoder_input_ids=shift_tokens_right(labels, self.config.pad_token_id,
                                                                         self.config.decoder_start_token_id))
        out = self._base_forward(inputs)
        logits = lm_logits(self.weights, out.last_hidden_state)
        loss = None
        if labels is not None:
            if labels.shape != logits.shape[:2]:
                raise ValueError(f"labels must have shape {logits.shape[:2]} (batch, decoder length), "
                                 f"got {labels.shape}")
            loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return LEDSeq2SeqLMOutput(loss=loss, logits=logits, **seq2seq_fields(out))

    def generate(self, input_ids=None, generation_config=None, *, attention_mask=None, global_attention_mask=None,
                 inputs=None, **options):
        """Token ids (batch * num_return_sequences, length), identical to HF `generate(do_sample=False)`.

        Positionally as HF's: `generate(ids, generation_config)`; everything else by keyword. `inputs=` is
        HF's name for input_ids.

        `options`: HF's deterministic generate options (max_length, max_new_tokens, min_length, min_new_tokens,
        num_beams, length_penalty, early_stopping, no_repeat_ngram_size, encoder_no_repeat_ngram_size,
        repetition_penalty, bad_words_ids, forced_bos_token_id, forced_eos_token_id, num_return_sequences,
        do_sample=False, output_scores, return_dict_in_generate); unset ones come from `generation_config`,
        then `self.generation_config`, then HF's defaults (see `led_ref.io.generation_settings`)."""
        from .generation import generate

        return generate(self, generate_input_ids(input_ids, inputs), attention_mask=attention_mask,
                        global_attention_mask=global_attention_mask, generation_config=generation_config, **options)


class LEDForSequenceClassification(_LEDBase):
    """LED with a classification head on the decoder state of the last eos token of every row."""

    ARCHITECTURE = "LEDForSequenceClassification"

    def __call__(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                 global_attention_mask=None, inputs_embeds=None, decoder_inputs_embeds=None, labels=None,
                 use_cache=None, output_attentions=False, output_hidden_states=False, return_dict=True, *,
                 past_key_values=None) -> LEDSeq2SeqSequenceClassifierOutput:
        # past_key_values is ours only (HF's head does not take it), so keyword-only: HF's positions stay HF's
        if input_ids is None:
            raise ValueError("LEDForSequenceClassification pools at the eos tokens of input_ids, so input_ids "
                             "are required (inputs_embeds alone are not supported, as in HF)")
        out = self._base_forward(Seq2SeqInputs.pick(locals()).but(
            use_cache=False if labels is not None else use_cache))
        ids = check.check_token_ids("input_ids", input_ids, self.config.vocab_size)
        pooled = eos_pooled(out.last_hidden_state, ids, self.config.eos_token_id)
        logits = linear(np.tanh(linear(pooled, self.weights, "classification_head.dense")), self.weights,
                        "classification_head.out_proj")
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        return LEDSeq2SeqSequenceClassifierOutput(loss=loss, logits=logits, **seq2seq_fields(out))


class LEDForQuestionAnswering(_LEDBase):
    """LED with a span head: start and end logits for every decoder position."""

    ARCHITECTURE = "LEDForQuestionAnswering"

    def __call__(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                 head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                 global_attention_mask=None, start_positions=None, end_positions=None, inputs_embeds=None,
                 decoder_inputs_embeds=None, use_cache=None, output_attentions=False, output_hidden_states=False,
                 return_dict=True, *, past_key_values=None) -> LEDSeq2SeqQuestionAnsweringModelOutput:
        # past_key_values is ours only (HF's head does not take it), so keyword-only: HF's positions stay HF's
        inputs = Seq2SeqInputs.pick(locals())  # the arguments above, by name
        if start_positions is not None and end_positions is not None:
            inputs = inputs.but(use_cache=False)
        out = self._base_forward(inputs)
        logits = linear(out.last_hidden_state, self.weights, "qa_outputs")
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions)
        return LEDSeq2SeqQuestionAnsweringModelOutput(loss=loss, start_logits=start_logits, end_logits=end_logits,
                                                      **seq2seq_fields(out))
