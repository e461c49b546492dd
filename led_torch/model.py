"""LEDModel and its task heads, with HF's parameter names, tied embeddings and HF-shaped outputs.

Tying: one `nn.Embedding` (`shared`) is *the* encoder and decoder `embed_tokens`, and `lm_head.weight` is its
weight, so `state_dict()` lists all four HF names while there is one tensor (what HF does).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from led_ref.init import missing_head_weights
from led_ref.io.checkpoint import (
    ArrayOps,
    CheckpointError,
    adapt_state_dict,
    check_state_dict,
    float_range,
    load_checkpoint,
    resolve_checkpoint,
    save_model,
)
from led_ref.io.config import LEDConfig
from led_ref.io.generation_settings import GenerationConfig, model_generation_config
from led_ref.io.inputs import Seq2SeqInputs, as_encoder_output, generate_input_ids
from led_ref.io.names import tied_names
from led_ref.io.outputs import (
    LEDEncoderBaseModelOutput,
    LEDSeq2SeqLMOutput,
    LEDSeq2SeqModelOutput,
    LEDSeq2SeqQuestionAnsweringModelOutput,
    LEDSeq2SeqSequenceClassifierOutput,
    seq2seq_fields,
)
from led_ref.io.validation import (  # rules shared by both packages
    check_cache_source,
    eos_rule,
    per_row_rule,
    range_rule,
    same_shape_rule,
    shape_tuple,
)

from .decoder import LEDDecoder, legacy_cache
from .encoder import LEDEncoder
from .linear import Linear
from .validation import (
    as_model_dtype,
    check_cache,
    check_device,
    check_embeds,
    check_encoder_hidden,
    check_head_mask,
    check_ids,
    check_length,
    check_mask,
    check_positions,
    check_same_batch,
)

_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _tensor_bounds(t: torch.Tensor) -> tuple[float, float]:
    if not t.numel():
        return 0.0, 0.0
    if t.is_complex():  # no order: non_finite judges it
        return float("nan"), float("nan")
    low, high = t.aminmax()
    return float(low), float(high)


# led_ref.io.checkpoint's naming and checking policy, applied to tensors (on any device, in any dtype).
TORCH_OPS = ArrayOps(
    equal=lambda a, b: bool((a == b.to(a.device)).all()),
    non_finite=lambda t: int((~torch.isfinite(t)).sum()),
    bounds=_tensor_bounds,
    zeros=lambda shape, weights: torch.zeros(shape),
)


def _cast_range(dtype: torch.dtype):
    """How far weights loaded as `dtype` reach; torch rounds float64 to float16/bfloat16 through float32."""
    return float_range(dtype, via_float32=True)


def shift_tokens_right(ids: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs from labels: prepend the start token, drop the last, and -100 becomes padding."""
    shifted = torch.cat([torch.full_like(ids[:, :1], decoder_start_token_id), ids[:, :-1]], dim=1)
    return shifted.masked_fill(shifted == -100, pad_token_id)


def _loss_precision(logits: torch.Tensor) -> torch.Tensor:
    """fp16/bf16 logits are upcast for the loss: a half-precision loss value alone is off by ~0.4%."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross-entropy over the targets != ignore_index; 0 (with zero gradient) when every target is
    ignored, where torch and HF return NaN (0 / 0). See docs/reliability.md."""
    if not bool((targets != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets, ignore_index=ignore_index)


def _check_dtype(dtype) -> None:
    if dtype not in _DTYPES:
        raise TypeError(f"dtype must be one of {', '.join(map(str, _DTYPES))}; got {dtype!r}")


class LEDPreTrainedModel(nn.Module):
    """Loading, saving, dtype/device and training switches shared by every LED class."""

    architecture = "LEDModel"

    def __init__(self, config: LEDConfig):
        super().__init__()
        config = LEDConfig.for_model(config)  # ours, a dict, or transformers' LEDConfig (duck-typed)
        self.config = config
        # HF's model.generation_config; from_pretrained replaces it with the checkpoint's generation_config.json
        self.generation_config = GenerationConfig.from_model_config(config)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_weights(cls, config: LEDConfig, weights: dict, dtype=torch.float32, device="cpu",
                     attn_implementation: str | None = None):
        """A model in eval mode carrying `weights` (HF names -> numpy arrays or tensors; tied names optional).

        Weights saved for another LED architecture load too: names are adapted and checked by
        `led_ref.io.checkpoint` (the `led.` prefix added or stripped, tied copies checked against
        `shared.weight`); a task head missing from the file is initialised N(0, init_std) with a warning, like HF,
        with led_ref's values for it (`led_ref.init.missing_head_weights`).
        """
        _check_dtype(dtype)
        device = check_device(device)
        config = LEDConfig.for_model(config)
        state = {name: _as_tensor(name, value) for name, value in weights.items()}
        state = adapt_state_dict(state, config, cls.architecture, allow_missing_head=True, ops=TORCH_OPS)
        check_state_dict(state, config, cls.architecture, allow_missing_head=True, ops=TORCH_OPS,
                         dtype=_cast_range(dtype))
        return cls._from_checked_state(config, state, dtype, device, attn_implementation)

    @classmethod
    def _from_checked_state(cls, config: LEDConfig, state: dict, dtype, device, attn_implementation):
        """Build on `device` in `dtype` and load `state`, whose names `check_state_dict` accepted."""
        with torch.device("meta"):
            model = cls(config).to(dtype=dtype)  # cast before loading: float64 weights must not pass float32
        model.to_empty(device=device)
        model.tie_weights()
        missing, _ = model.load_state_dict(state, strict=False)
        head_missing = [name for name in missing if name not in model._tied_names()]
        if head_missing:
            warnings.warn(f"{cls.__name__}: initialising missing head tensors {head_missing}", stacklevel=3)
            params = dict(model.named_parameters()) | dict(model.named_buffers())
            # led_ref's rule and values: both packages give a checkpoint the same head
            for name, fresh in missing_head_weights(config, cls.architecture, head_missing).items():
                with torch.no_grad():
                    params[name].copy_(torch.from_numpy(fresh))
        model.tie_weights()
        model.set_attn_implementation(attn_implementation)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32, device="cpu", attn_implementation: str | None = None):
        """Read an HF-format directory (`config.json` + `model.safetensors`, or `pytorch_model.bin`), or a hub
        id ("allenai/led-base-16384") from the local HF cache; `generation_config.json` when present."""
        _check_dtype(dtype)
        device = check_device(device)  # before reading any file
        path = resolve_checkpoint(path)
        bin_path = os.path.join(path, "pytorch_model.bin")
        if not os.path.isfile(os.path.join(path, "model.safetensors")) and os.path.isfile(bin_path):
            config = LEDConfig.from_pretrained(path)
            state = _load_pickle_weights_only(bin_path)
            try:
                model = cls.from_weights(config, state, dtype=dtype, device=device,
                                         attn_implementation=attn_implementation)
            except CheckpointError as err:  # name the file, as load_checkpoint does for safetensors
                raise CheckpointError(f"checkpoint {path!r} (weights in pytorch_model.bin): {err}") from None
        else:  # led_ref's reader adapts and checks the names; the arrays become tensors without a copy
            np_dtype = np.float64 if dtype == torch.float64 else np.float32
            config, weights = load_checkpoint(path, architecture=cls.architecture, dtype=np_dtype,
                                              allow_missing_head=True, cast_to=_cast_range(dtype))
            state = {name: _as_tensor(name, array) for name, array in weights.items()}
            model = cls._from_checked_state(config, state, dtype, device, attn_implementation)
        model.generation_config = model_generation_config(config, path)
        return model

    def to(self, *args, **kwargs):
        """nn.Module.to, with a clear error for a device that does not exist here ('cuda' without CUDA)."""
        # The device comes first or as device=; a dtype names none, and a tensor's device exists already.
        device = args[0] if args else kwargs.get("device")
        if isinstance(device, (str, int, torch.device)) and not isinstance(device, bool):
            try:
                torch.device(device)
            except (RuntimeError, TypeError, ValueError):
                pass  # torch's own message for arguments it cannot read
            else:
                check_device(device)
        return super().to(*args, **kwargs)

    def cuda(self, device=None):
        check_device("cuda" if device is None else f"cuda:{device}" if isinstance(device, int) else device)
        return super().cuda(device)

    def save_pretrained(self, path, state_dict: dict | None = None, safe_serialization: bool = True,
                        is_main_process: bool = True) -> None:
        """Write `config.json` + `generation_config.json` + `model.safetensors` with HF names, tied tensors left
        out (bf16 saved as fp32); generation parameters go to generation_config.json, as HF writes them.

        HF's keywords, as Trainer passes them: `state_dict` saved instead of the model's own (a gathered copy),
        `is_main_process=False` writes nothing; `safe_serialization` is accepted either way: the weights are
        always safetensors, which HF and both packages read."""
        if not isinstance(safe_serialization, bool):
            raise TypeError(f"safe_serialization must be True or False, got {safe_serialization!r}")
        if not is_main_process:
            return
        tied = self._tied_names()
        weights = {}
        for name, t in (self.state_dict() if state_dict is None else state_dict).items():
            if name in tied:
                continue
            t = t.detach().cpu()
            weights[name] = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
        save_model(os.fspath(path), self.config, self.generation_config, weights, self.architecture)

    # ------------------------------------------------------------------ names
    def _tied_names(self) -> set[str]:
        return tied_names(self.architecture)

    def tie_weights(self) -> None:
        base = self.base_model
        base.encoder.embed_tokens = base.shared
        base.decoder.embed_tokens = base.shared

    @property
    def base_model(self) -> LEDModel:
        return self.led if hasattr(self, "led") else self

    # ------------------------------------------------------------------ switches
    def set_attn_implementation(self, name: str | None, strict: bool = False) -> None:
        """Encoder attention backend: "banded", "flex", "triton", or "auto"/None (best for device/dtype, falling
        back to the next backend with a warning when one cannot serve a call). `strict=True` (or
        $LED_TORCH_STRICT_ATTENTION=1) makes `auto` raise instead of falling back; a named backend never falls
        back."""
        self.base_model.encoder.set_attn_implementation(name, strict)

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute each encoder/decoder layer in the backward pass (train mode only; disables the cache).

        Layers are recomputed by torch's non-reentrant checkpoint. Of HF's `gradient_checkpointing_kwargs`
        (Trainer passes them) those that leave the gradients as they are are accepted: `use_reentrant` (either
        value) and `preserve_rng_state=True`."""
        _check_checkpointing_kwargs(gradient_checkpointing_kwargs)
        self.base_model.encoder.gradient_checkpointing = True
        self.base_model.decoder.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self.base_model.encoder.gradient_checkpointing = False
        self.base_model.decoder.gradient_checkpointing = False

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.base_model.encoder.gradient_checkpointing or self.base_model.decoder.gradient_checkpointing

    # ------------------------------------------------------------------ HF's PreTrainedModel API (Trainer, PEFT)
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True

    @property
    def _keys_to_ignore_on_save(self) -> list[str]:
        """HF's name for the weights save_pretrained leaves out (the tied copies); Trainer re-ties a model after
        loading a checkpoint that lacks exactly these."""
        return sorted(self._tied_names())

    @classmethod
    def can_generate(cls) -> bool:
        return callable(getattr(cls, "generate", None))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """`value` becomes the token embedding of the encoder and the decoder (and the LM head's weight: led_torch
        always ties them, and saves one copy). A different vocabulary size: `resize_token_embeddings`."""
        _check_embedding("value", value, (self.config.vocab_size, self.config.d_model))
        self.base_model.shared = value
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Module | None:
        return None

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """HF's resize: the vocabulary becomes `new_num_tokens` (rounded up to a multiple of `pad_to_multiple_of`;
        both None: nothing changes). Kept rows keep their values; added rows are drawn as HF draws them, from
        torch's global generator in HF's order (so a seed gives HF's values): from the old rows' mean and 1e-9 x
        their covariance (`mean_resizing=True`), else N(0, init_std). The embedding stays the same module and
        Parameter (optimizers and the tied LM head follow it); `config.vocab_size` follows."""
        embedding = self.get_input_embeddings()
        count = _resized_vocab(new_num_tokens, pad_to_multiple_of, embedding.num_embeddings)
        if not isinstance(mean_resizing, bool):
            raise TypeError(f"mean_resizing must be True or False, got {mean_resizing!r}")
        if count is None:
            return embedding
        _check_vocab_keeps_token_ids(count, self.config)
        if count != embedding.num_embeddings:
            _resize_embedding(embedding, count, mean_resizing, self.config.init_std)
        self.config.vocab_size = count
        self.tie_weights()
        return embedding

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Parameter count as HF's (tied tensors once; `exclude_embeddings` leaves out every nn.Embedding)."""
        embeddings = {f"{name}.weight" for name, module in self.named_modules() if isinstance(module, nn.Embedding)}
        return sum(p.numel() for name, p in self.named_parameters()
                   if not (exclude_embeddings and name in embeddings) and (p.requires_grad or not only_trainable))

    def floating_point_ops(self, input_dict: dict, exclude_embeddings: bool = True) -> int:
        """HF's estimate, 6 x tokens of `main_input_name` x parameters; Trainer logs it as total_flos."""
        ids = input_dict.get(self.main_input_name)
        tokens = ids.numel() if isinstance(ids, torch.Tensor) else 0
        return 6 * tokens * self.num_parameters(exclude_embeddings=exclude_embeddings)

    def enable_input_require_grads(self) -> None:
        """The token embedding's output requires grad even when its weight is frozen (HF's recipe for adapters
        with reentrant checkpointing; led_torch's non-reentrant checkpoint lets gradients through without it)."""
        def outputs_require_grad(module, inputs, output):
            output.requires_grad_(True)

        self.disable_input_require_grads()
        self._require_grads_hook = self.get_input_embeddings().register_forward_hook(outputs_require_grad)

    def disable_input_require_grads(self) -> None:
        hook = self.__dict__.pop("_require_grads_hook", None)
        if hook is not None:
            hook.remove()

    def get_encoder(self) -> LEDEncoder:
        return self.base_model.encoder

    def get_decoder(self) -> LEDDecoder:
        return self.base_model.decoder

    @property
    def device(self) -> torch.device:
        return self.base_model.shared.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base_model.shared.weight.dtype


class LEDModel(LEDPreTrainedModel):
    architecture = "LEDModel"

    def __init__(self, config: LEDConfig):
        super().__init__(config)
        config = self.config  # an LEDConfig now, whatever was passed
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = LEDEncoder(config, self.shared)
        self.decoder = LEDDecoder(config, self.shared)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                global_attention_mask=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                use_cache=None, output_attentions=False, output_hidden_states=False, return_dict=True):
        inputs = Seq2SeqInputs.pick(locals()).with_switches(self.config.use_cache)  # the arguments above, by name
        inputs = self._default_decoder_inputs(inputs)
        encoder_outputs = self._encoder_outputs(inputs)
        encoder_hidden = encoder_outputs.last_hidden_state
        check_mask("attention_mask", inputs.attention_mask, encoder_hidden.shape[:2])
        decoder_outputs = self._decode(inputs, encoder_hidden)
        return LEDSeq2SeqModelOutput(
            last_hidden_state=decoder_outputs["last_hidden_state"],
            past_key_values=decoder_outputs["past_key_values"],
            decoder_hidden_states=decoder_outputs["hidden_states"],
            decoder_attentions=decoder_outputs["attentions"],
            cross_attentions=decoder_outputs["cross_attentions"],
            encoder_last_hidden_state=encoder_hidden,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            encoder_global_attentions=encoder_outputs.global_attentions,
        )

    def _default_decoder_inputs(self, inputs: Seq2SeqInputs) -> Seq2SeqInputs:
        """Without decoder inputs, the decoder reads input_ids shifted right (HF's LEDModel habit)."""
        if inputs.decoder_input_ids is not None or inputs.decoder_inputs_embeds is not None:
            return inputs
        if inputs.input_ids is None:
            raise ValueError("give decoder_input_ids or decoder_inputs_embeds (or input_ids to shift right)")
        config = self.config
        check_ids("input_ids", inputs.input_ids, config.vocab_size)
        return inputs.but(decoder_input_ids=shift_tokens_right(inputs.input_ids, config.pad_token_id,
                                                               config.decoder_start_token_id))

    def _encoder_outputs(self, inputs: Seq2SeqInputs) -> LEDEncoderBaseModelOutput:
        """The encoder run on the inputs, or the given `encoder_outputs` checked and cast to the model's dtype."""
        if inputs.encoder_outputs is None:
            return self.encoder(inputs.input_ids, inputs.attention_mask, inputs.global_attention_mask,
                                inputs.head_mask, inputs.inputs_embeds, inputs.output_attentions,
                                inputs.output_hidden_states)
        given = as_encoder_output(inputs.encoder_outputs, torch.Tensor)
        check_encoder_hidden("encoder_outputs[0]", given.last_hidden_state, self.config.d_model)
        hidden = as_model_dtype("encoder_outputs[0]", given.last_hidden_state, self.shared.weight.dtype)
        decoder_side = inputs.decoder_input_ids if inputs.decoder_input_ids is not None \
            else inputs.decoder_inputs_embeds
        if isinstance(decoder_side, torch.Tensor) and decoder_side.dim() >= 2:
            check_same_batch("encoder_outputs", hidden.shape[0], _decoder_name(inputs), decoder_side.shape[0])
        return LEDEncoderBaseModelOutput(hidden, given.hidden_states, given.attentions, given.global_attentions)

    def _decode(self, inputs: Seq2SeqInputs, encoder_hidden: torch.Tensor):
        """Check the decoder inputs against the encoder output and the cache, then run the decoder."""
        config = self.config
        ids, embeds, past = inputs.decoder_input_ids, inputs.decoder_inputs_embeds, inputs.past_key_values
        if ids is not None and embeds is not None:
            raise ValueError("give either decoder_input_ids or decoder_inputs_embeds, not both")
        if ids is not None:
            check_ids("decoder_input_ids", ids, config.vocab_size)
            rows, length = ids.shape
        else:
            check_embeds("decoder_inputs_embeds", embeds, config.d_model)
            embeds = as_model_dtype("decoder_inputs_embeds", embeds, self.shared.weight.dtype)
            rows, length = embeds.shape[:2]
        source = "encoder_outputs" if inputs.encoder_outputs is not None else \
            "input_ids" if inputs.input_ids is not None else "inputs_embeds"
        check_same_batch(source, encoder_hidden.shape[0], _decoder_name(inputs), rows)
        if past is not None:
            past = legacy_cache(past) if hasattr(past, "to_legacy_cache") else past
            check_cache("past_key_values", past, len(self.decoder.layers), rows, config.decoder_attention_heads,
                        config.d_model // config.decoder_attention_heads, self.shared.weight.dtype)
            check_cache_source("past_key_values", past, encoder_hidden.shape[1])
        past = legacy_cache(past)
        past_len = past[0][0].shape[2] if past else 0
        name = _decoder_name(inputs)
        check_length(name + (f" (after {past_len} cached positions)" if past_len else ""), past_len + length,
                     config.max_decoder_position_embeddings, "max_decoder_position_embeddings")
        mask = inputs.decoder_attention_mask
        if mask is not None:  # checked for one token too, though HF then ignores it
            check_mask("decoder_attention_mask", mask, (rows, past_len + length))
        check_head_mask("decoder_head_mask", inputs.decoder_head_mask, config.decoder_layers,
                        config.decoder_attention_heads)
        check_head_mask("cross_attn_head_mask", inputs.cross_attn_head_mask, config.decoder_layers,
                        config.decoder_attention_heads)
        return self.decoder(ids, mask, encoder_hidden, inputs.attention_mask, inputs.decoder_head_mask,
                            inputs.cross_attn_head_mask, past, embeds, inputs.use_cache, inputs.output_attentions,
                            inputs.output_hidden_states)


def _decoder_name(inputs: Seq2SeqInputs) -> str:
    return "decoder_input_ids" if inputs.decoder_input_ids is not None else "decoder_inputs_embeds"


class LEDForConditionalGeneration(LEDPreTrainedModel):
    architecture = "LEDForConditionalGeneration"

    def __init__(self, config: LEDConfig):
        super().__init__(config)
        config = self.config  # an LEDConfig now, whatever was passed
        self.led = LEDModel(config)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size))
        self.lm_head = Linear(config.d_model, config.vocab_size, bias=False)
        self.tie_weights()

    def tie_weights(self) -> None:
        super().tie_weights()
        self.lm_head.weight = self.led.shared.weight
        self.lm_head.out_features = self.led.shared.num_embeddings

    def get_output_embeddings(self) -> Linear:
        return self.lm_head

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                mean_resizing: bool = True) -> nn.Embedding:
        """As LEDPreTrainedModel's, and `final_logits_bias` follows: cut, or extended with zeros (HF's rule)."""
        embedding = super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, mean_resizing)
        bias = self.final_logits_bias
        count = embedding.num_embeddings
        extra = torch.zeros((1, max(0, count - bias.shape[1])), dtype=bias.dtype, device=bias.device)
        self.register_buffer("final_logits_bias", torch.cat([bias[:, :count], extra], dim=1))
        return embedding

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                global_attention_mask=None, past_key_values=None, inputs_embeds=None, decoder_inputs_embeds=None,
                labels=None, use_cache=None, output_attentions=False, output_hidden_states=False, return_dict=True):
        """Logits (batch, target, vocab); with `labels` (-100 ignored) also the mean cross-entropy `loss`."""
        inputs = Seq2SeqInputs.pick(locals())  # the arguments above, by name
        if labels is not None:
            check_ids("labels", labels, self.config.vocab_size, allow_ignore=True)
            source = input_ids if input_ids is not None else inputs_embeds
            if isinstance(source, torch.Tensor) and encoder_outputs is None and source.dim() >= 2:
                check_same_batch("labels", labels.shape[0], "input_ids", source.shape[0])
            inputs = inputs.but(use_cache=False)  # as HF: training calls return no cache
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                inputs = inputs.but(decoder_input_ids=self.prepare_decoder_input_ids_from_labels(labels))
        out = self.led(**inputs.kwargs())
        logits = self.lm_head(out.last_hidden_state) + self.final_logits_bias.to(out.last_hidden_state.dtype)
        loss = None
        if labels is not None:
            check_same_batch("labels", labels.shape[0], _decoder_name(inputs), logits.shape[0])
            if labels.shape[1] != logits.shape[1]:
                raise ValueError(f"labels has {labels.shape[1]} positions, the decoder produced {logits.shape[1]}")
            loss = _cross_entropy(_loss_precision(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1).long())
        return LEDSeq2SeqLMOutput(loss=loss, logits=logits, **seq2seq_fields(out))

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def generate(self, input_ids=None, generation_config=None, *, attention_mask=None, global_attention_mask=None,
                 inputs=None, compile=False, **options):
        """Greedy (num_beams=1) or beam search token ids, identical to HF `generate(do_sample=False)`.

        Positionally as HF's: `generate(ids, generation_config)`; everything else by keyword. `inputs=` is
        HF's name for input_ids.

        `options`: HF's deterministic generate options (max_length, max_new_tokens, min_length, min_new_tokens,
        num_beams, length_penalty, early_stopping, no_repeat_ngram_size, encoder_no_repeat_ngram_size,
        repetition_penalty, bad_words_ids, forced_bos_token_id, forced_eos_token_id, num_return_sequences,
        do_sample=False, output_scores, return_dict_in_generate); unset ones come from `generation_config`,
        then `self.generation_config`, then HF's defaults (`led_ref.io.generation_settings`, shared with led_ref).
        `compile=True` runs the decode step through torch.compile. What HF's Seq2SeqTrainer adds is accepted and
        changes nothing: `labels` (dropped, as HF drops them) and `synced_gpus` (one process)."""
        from .generation import generate
        return generate(self, generate_input_ids(input_ids, inputs), attention_mask=attention_mask,
                        global_attention_mask=global_attention_mask, generation_config=generation_config,
                        compile=compile, **options)


class ClassificationHead(nn.Module):
    def __init__(self, config: LEDConfig):
        super().__init__()
        self.dense = Linear(config.d_model, config.d_model)
        self.out_proj = Linear(config.d_model, config.num_labels)
        self.dropout = config.classifier_dropout or 0.0

    def forward(self, x):
        x = torch.tanh(self.dense(F.dropout(x, self.dropout, self.training)))
        return self.out_proj(F.dropout(x, self.dropout, self.training))


class LEDForSequenceClassification(LEDPreTrainedModel):
    """Classifies from the decoder state at the last <eos> of each row (every row needs the same eos count)."""

    architecture = "LEDForSequenceClassification"

    def __init__(self, config: LEDConfig):
        super().__init__(config)
        config = self.config  # an LEDConfig now, whatever was passed
        self.led = LEDModel(config)
        self.classification_head = ClassificationHead(config)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                global_attention_mask=None, inputs_embeds=None, decoder_inputs_embeds=None, labels=None,
                use_cache=None, output_attentions=False, output_hidden_states=False, return_dict=True):
        inputs = Seq2SeqInputs.pick(locals())  # the arguments above, by name
        config = self.config
        if input_ids is None:
            raise ValueError("input_ids is required: the <eos> positions pick the sentence representation")
        out = self.led(**inputs.but(use_cache=False if labels is not None else use_cache).kwargs())
        hidden = out.last_hidden_state
        if config.eos_token_id is None:
            raise ValueError("input_ids hold no <eos> token to pool at: config.eos_token_id is None")
        eos = input_ids.eq(config.eos_token_id)
        eos_rule(eos.sum(1), config.eos_token_id)
        if hidden.shape[1] != input_ids.shape[1]:
            raise ValueError("decoder length must equal the input length to locate <eos>")
        sentence = hidden[eos].view(hidden.shape[0], -1, hidden.shape[-1])[:, -1]
        logits = self.classification_head(sentence)
        loss = None if labels is None else self._loss(logits, labels)
        return LEDSeq2SeqSequenceClassifierOutput(loss=loss, logits=logits, **seq2seq_fields(out))

    def _loss(self, logits, labels):
        n = self.config.num_labels
        logits = _loss_precision(logits)
        if not isinstance(labels, torch.Tensor):
            raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}")
        per_row_rule("labels", shape_tuple(labels), logits.shape[0])
        problem = self.config.classification_problem(integer_labels=labels.dtype in (torch.long, torch.int))
        if problem == "regression":
            if n == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            same_shape_rule("labels", shape_tuple(labels), shape_tuple(logits))
            return F.mse_loss(logits, labels.to(logits.dtype))
        if problem == "single_label_classification":
            range_rule("labels", labels, "num_labels", n, allow_ignore=True)
            return _cross_entropy(logits.view(-1, n), labels.view(-1).long())
        same_shape_rule("labels", shape_tuple(labels), shape_tuple(logits))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class LEDForQuestionAnswering(LEDPreTrainedModel):
    """Span start/end logits from the decoder states; loss = mean of the two cross-entropies."""

    architecture = "LEDForQuestionAnswering"

    def __init__(self, config: LEDConfig):
        super().__init__(config)
        config = self.config  # an LEDConfig now, whatever was passed
        self.led = LEDModel(config)
        self.qa_outputs = Linear(config.d_model, 2)

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, decoder_attention_mask=None,
                head_mask=None, decoder_head_mask=None, cross_attn_head_mask=None, encoder_outputs=None,
                global_attention_mask=None, start_positions=None, end_positions=None, inputs_embeds=None,
                decoder_inputs_embeds=None, use_cache=None, output_attentions=False, output_hidden_states=False,
                return_dict=True):
        inputs = Seq2SeqInputs.pick(locals())  # the arguments above, by name
        if start_positions is not None and end_positions is not None:
            inputs = inputs.but(use_cache=False)
        out = self.led(**inputs.kwargs())
        start_logits, end_logits = self.qa_outputs(out.last_hidden_state).unbind(-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            check_positions("start_positions", start_positions, start_logits.shape[0])
            check_positions("end_positions", end_positions, start_logits.shape[0])
            # Positions outside the sequence are ignored (clamped onto an ignore index), as in HF.
            ignored = start_logits.shape[1]
            start = start_positions.reshape(-1).long().clamp(0, ignored)
            end = end_positions.reshape(-1).long().clamp(0, ignored)
            loss = (_cross_entropy(_loss_precision(start_logits), start, ignore_index=ignored)
                    + _cross_entropy(_loss_precision(end_logits), end, ignore_index=ignored)) / 2
        return LEDSeq2SeqQuestionAnsweringModelOutput(loss=loss, start_logits=start_logits.contiguous(),
                                                      end_logits=end_logits.contiguous(),
                                                      **seq2seq_fields(out))


# ----------------------------------------------------------------------------------- PreTrainedModel API helpers
def _check_checkpointing_kwargs(kwargs) -> None:
    """Only HF checkpoint options that give the gradients led_torch's non-reentrant checkpoint gives."""
    if kwargs is None:
        return
    if not isinstance(kwargs, dict):
        raise TypeError(f"gradient_checkpointing_kwargs must be a dict or None, got {type(kwargs).__name__}")
    for key, value in kwargs.items():
        if key == "use_reentrant" and isinstance(value, bool):
            continue
        if key == "preserve_rng_state" and value is True:
            continue
        raise ValueError(f"gradient_checkpointing_kwargs[{key!r}]={value!r} is not supported: led_torch recomputes "
                         "layers with torch's non-reentrant checkpoint; accepted are use_reentrant=True/False "
                         "(same gradients) and preserve_rng_state=True")


def _check_embedding(name: str, value, shape: tuple[int, int]) -> None:
    if not isinstance(value, nn.Embedding):
        raise TypeError(f"{name} must be a torch.nn.Embedding, got {type(value).__name__}")
    if tuple(value.weight.shape) != shape:
        raise ValueError(f"{name} has weight shape {tuple(value.weight.shape)}, the model needs {shape} "
                         "(vocab_size, d_model); to change the vocabulary use resize_token_embeddings")


def _resized_vocab(new_num_tokens, pad_to_multiple_of, current: int) -> int | None:
    """The vocabulary size HF's resize_token_embeddings gives; None when both arguments are None."""
    for name, value in (("new_num_tokens", new_num_tokens), ("pad_to_multiple_of", pad_to_multiple_of)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int or None, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if pad_to_multiple_of is None:
        return new_num_tokens
    count = current if new_num_tokens is None else new_num_tokens
    return -(-count // pad_to_multiple_of) * pad_to_multiple_of


def _check_vocab_keeps_token_ids(count: int, config: LEDConfig) -> None:
    """A smaller vocabulary must keep every token id the config names (padding, start, end, forced)."""
    names = ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id", "forced_bos_token_id",
             "forced_eos_token_id")
    used = {name: getattr(config, name) for name in names if isinstance(getattr(config, name), int)}
    name, highest = max(used.items(), key=lambda item: item[1])
    if count <= highest:
        raise ValueError(f"new_num_tokens={count} would drop token id {highest} (config.{name}); "
                         f"the vocabulary must stay > {highest}")


def _resize_embedding(embedding: nn.Embedding, count: int, mean_resizing: bool, init_std: float) -> None:
    """`embedding` (in place, same Parameter) with `count` rows, new ones drawn in HF's order of draws."""
    old = embedding.weight
    rows, dim = old.shape
    # built as HF builds it: its own init draws from the global generator before the added rows are drawn
    fresh = nn.Embedding(count, dim, device=old.device, dtype=old.dtype)
    with torch.no_grad():
        if count > rows and mean_resizing:
            fresh.weight[rows:] = _rows_like(old, count - rows)
        elif count > rows:
            fresh.weight.normal_(mean=0.0, std=init_std)
        keep = min(rows, count)
        fresh.weight[:keep] = old[:keep]
    old.data = fresh.weight.data
    embedding.num_embeddings = count
    if embedding.padding_idx is not None and embedding.padding_idx >= count:
        embedding.padding_idx = None


def _rows_like(weight: torch.Tensor, added: int) -> torch.Tensor:
    """HF's mean resizing: `added` rows from N(mean, 1e-9 x covariance) of the rows (float32), or the mean
    itself where that covariance is not positive definite."""
    rows = weight.detach().float()
    mean = rows.mean(dim=0)
    centered = rows - mean
    covariance = 1e-9 * (centered.T @ centered / rows.shape[0])
    if torch.distributions.constraints.positive_definite.check(covariance).all():
        drawn = torch.distributions.MultivariateNormal(mean, covariance_matrix=covariance).sample((added,))
    else:
        drawn = mean[None, :].repeat(added, 1)
    return drawn.to(weight.dtype)


def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"weight {name} must be a numeric array or tensor, got {type(value).__name__} "
                        f"of dtype {array.dtype}")
    return torch.as_tensor(array)


def _load_pickle_weights_only(path: str) -> dict:
    """A pytorch_model.bin through torch's weights-only unpickler: plain tensors only, never code."""
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path!r} was refused by torch's weights-only loader (it holds something other "
                              f"than tensors, or is damaged); led_torch never unpickles code. Detail: {first}") \
            from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{path!r} must hold a dict of name -> tensor (a state dict), "
                              f"got {type(state).__name__}")
    return state
