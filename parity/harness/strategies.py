"""Hypothesis strategies for LED parity: tiny configs, seeded weights, encoder/decoder inputs, head masks,
and attention-kernel cases. Reusable by any project:

    from hypothesis import given
    from parity.harness.strategies import led_configs, model_cases, attention_cases

    @given(attention_cases())
    def test_my_kernel(case):
        out = my_kernel(*case.torch_args())

Everything is drawn small (the harness runs on 2 CPU cores) but covers the corners that break real
implementations: window 2, per-layer windows that do not divide each other, windows wider than the text,
lengths that are not multiples of the window, padding on the right and inside a row, and rows with none,
one, many or all tokens global, different per row. Attention cases with `every_padding=True` (the kernel
gate's toy profile) also pad on the left, leave runs of padding inside a row, and hold batch rows with no
valid token. `hf_compatible=True` restricts to what HF's LED can
run (every window >= 4 and dividing the largest one) for comparisons against the HF oracle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from led_ref.io.config import ACTIVATIONS, LEDConfig

WINDOWS = (2, 4, 6, 8)
HF_WINDOW_SETS = {4: (4,), 8: (4, 8), 12: (4, 6, 12)}  # largest window -> windows dividing it (all >= 4)
GLOBAL_MODES = ("none", "one", "many", "all")
ARCHITECTURES = ("LEDModel", "LEDForConditionalGeneration", "LEDForSequenceClassification",
                 "LEDForQuestionAnswering")


def profile_examples(n: int, ci_examples: int = 12) -> int:
    """`n` examples under the `ci` profile (max_examples=ci_examples), proportionally more under a bigger
    one (`thorough`): for expensive tests that fix their own max_examples."""
    from hypothesis import settings

    return max(n, n * settings.default.max_examples // ci_examples)


# ---------------------------------------------------------------------------------------------- configs
@st.composite
def layer_windows(draw, layers: int, hf_compatible: bool = False) -> list[int]:
    """One even window per encoder layer; HF-compatible lists have every window >= 4 dividing the largest."""
    if hf_compatible:
        largest = draw(st.sampled_from(sorted(HF_WINDOW_SETS)))
        windows = [draw(st.sampled_from(HF_WINDOW_SETS[largest])) for _ in range(layers)]
        windows[draw(st.integers(0, layers - 1))] = largest
        return windows
    return [draw(st.sampled_from(WINDOWS)) for _ in range(layers)]


@st.composite
def led_configs(
    draw,
    max_encoder_layers: int = 2,
    max_decoder_layers: int = 2,
    max_heads: int = 2,
    max_head_dim: int = 4,
    hf_compatible: bool = False,
    activations: tuple[str, ...] = ACTIVATIONS,
    min_head_dim: int = 2,
) -> LEDConfig:
    """A tiny LEDConfig: 1..max layers, heads, head_dim >= 2, per-layer windows (int or list), vocab, positions."""
    encoder_layers = draw(st.integers(1, max_encoder_layers))
    decoder_layers = draw(st.integers(1, max_decoder_layers))
    heads = draw(st.integers(1, max_heads))
    # head_dim 1 would make the query scaling a no-op
    head_dim = draw(st.integers(min_head_dim, max(min_head_dim, max_head_dim)))
    d_model = heads * head_dim
    decoder_heads = draw(st.sampled_from([h for h in range(1, d_model + 1) if d_model % h == 0 and h <= 4]))
    windows = draw(layer_windows(encoder_layers, hf_compatible))
    as_list = len(set(windows)) > 1 or draw(st.booleans())
    max_window = max(windows)
    return LEDConfig(
        vocab_size=draw(st.integers(8, 40)),
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=heads,
        decoder_attention_heads=decoder_heads,
        encoder_ffn_dim=draw(st.integers(2, 16)),
        decoder_ffn_dim=draw(st.integers(2, 16)),
        attention_window=windows if as_list else windows[0],
        activation_function=draw(st.sampled_from(activations)),
        max_encoder_position_embeddings=max_window * draw(st.integers(1, 3)) + draw(st.integers(0, 3)),
        max_decoder_position_embeddings=draw(st.integers(6, 16)),
        num_labels=draw(st.integers(2, 3)),
        dropout=0.0,
        init_std=0.02,
    )


@st.composite
def weights(draw, config: LEDConfig, architecture: str = "LEDForConditionalGeneration") -> dict[str, np.ndarray]:
    """HF-named float64 weights from `led_ref.init.random_weights` with a drawn seed and std."""
    from led_ref.init import random_weights

    seed, std = draw(weight_seeds())
    return random_weights(config, architecture, seed=seed, std=std)


def weight_seeds(hf_compatible: bool = False, moderate: bool = False):
    """(seed, std): large stds make attention far from uniform, small ones are closest to trained models.

    Against HF (`hf_compatible`) std stays <= 0.3: HF's float32 encoder softmax error grows with the
    weights and std 1.0 can carry it past the 1e-6 budget for float64 comparisons. `moderate` keeps the same
    bound for half-precision checks: with std 1.0 the attention scores reach tens, where a bfloat16 rounding
    of the score (8 bits) moves a probability by ~10%, far outside any useful budget; the published
    half-precision budgets hold for std <= 0.3.
    """
    stds = [0.3, 0.02, 0.1] if hf_compatible or moderate else [0.3, 0.02, 0.1, 1.0]
    return st.tuples(st.integers(0, 2**31 - 1), st.sampled_from(stds))


# ---------------------------------------------------------------------------------------------- token layout
@st.composite
def row_kinds(draw, seq: int, global_mode: str, inside_padding: bool = True, every_padding: bool = False) -> np.ndarray:
    """token_kind of one row (seq,): 1 local, 2 global, 0 padding; at least one non-padding token.

    Valid tokens are a prefix (right padding) with optional holes (padding inside the row); globals are
    drawn among the valid tokens according to `global_mode` (none / one / many / all). `every_padding` also
    draws padding on the left (position 0 padding) and holes that are runs of padding, and full rows half
    the time (the simplest row, and the one whose last block holds tokens).
    """
    length = draw(st.one_of(st.just(seq), st.integers(1, seq)) if every_padding else st.integers(1, seq))
    start = draw(st.integers(0, seq - length)) if every_padding else 0
    kinds = np.zeros(seq, dtype=np.int64)
    kinds[start:start + length] = 1
    if inside_padding and length > 2:
        holes = draw(st.sets(st.integers(1, length - 1), max_size=2))
        run = draw(st.integers(1, max(1, length // 2))) if every_padding else 1
        for hole in holes:  # a run stops short of the span's first token: the row keeps one
            kinds[start + hole:start + min(length, hole + run)] = 0
    valid = np.flatnonzero(kinds)
    if global_mode == "one":
        kinds[draw(st.sampled_from(list(valid)))] = 2
    elif global_mode == "many":
        chosen = draw(st.sets(st.sampled_from(list(valid)), min_size=0, max_size=len(valid)))
        kinds[sorted(chosen)] = 2
    elif global_mode == "all":
        kinds[valid] = 2
    return kinds


def empty_rows(batch: int):
    """Which rows of a batch hold no valid token at all (an empty document): never every row."""
    return st.sets(st.integers(0, batch - 1), max_size=batch - 1)


@st.composite
def token_kinds(draw, batch: int, seq: int, inside_padding: bool = True, every_padding: bool = False) -> np.ndarray:
    """(batch, seq) int64 token kinds; one global mode per case, rows draw their own counts.

    `every_padding`: also left padding, runs of padding inside a row, and (batch >= 2) rows with no valid
    token, as `row_kinds` and `empty_rows` draw them."""
    mode = draw(st.sampled_from(GLOBAL_MODES))  # "many" draws a set per row: counts differ, some rows 0
    kinds = np.stack([draw(row_kinds(seq, mode, inside_padding, every_padding)) for _ in range(batch)])
    if every_padding:
        kinds[sorted(draw(empty_rows(batch)))] = 0
    return kinds


# ---------------------------------------------------------------------------------------------- model inputs
def _ids(rng: np.random.Generator, config: LEDConfig, shape) -> np.ndarray:
    ids = rng.integers(0, config.vocab_size, size=shape)
    # Keep the pad id for padding so inputs look like a tokenizer's.
    return np.where(ids == config.pad_token_id, (config.pad_token_id + 1) % config.vocab_size, ids)


@st.composite
def encoder_inputs(draw, config: LEDConfig, max_batch: int = 2, inside_padding: bool = True) -> dict:
    """input_ids, attention_mask, global_attention_mask, each (batch, length) int64 numpy.

    `length` is drawn freely (usually not a multiple of any window) up to what the position table holds
    once padded to `config.max_window`.
    """
    batch = draw(st.integers(1, max_batch))
    limit = (config.max_encoder_position_embeddings // config.max_window) * config.max_window
    length = draw(st.integers(1, limit))
    kinds = draw(token_kinds(batch, length, inside_padding))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    ids = _ids(rng, config, (batch, length))
    attention_mask = (kinds > 0).astype(np.int64)
    return {
        "input_ids": np.where(attention_mask > 0, ids, config.pad_token_id).astype(np.int64),
        "attention_mask": attention_mask,
        "global_attention_mask": (kinds == 2).astype(np.int64),
    }


@st.composite
def decoder_inputs(draw, config: LEDConfig, batch: int, with_labels: bool = True) -> dict:
    """decoder_input_ids (batch, T) starting with decoder_start_token_id, an optional right-padded
    decoder_attention_mask, and labels (batch, T) with some -100 entries."""
    length = draw(st.integers(1, config.max_decoder_position_embeddings))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    ids = _ids(rng, config, (batch, length)).astype(np.int64)
    ids[:, 0] = config.decoder_start_token_id
    out = {"decoder_input_ids": ids}
    if draw(st.booleans()):
        lengths = [draw(st.integers(1, length)) for _ in range(batch)]
        out["decoder_attention_mask"] = (np.arange(length)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    if with_labels:
        labels = _ids(rng, config, (batch, length)).astype(np.int64)
        labels[rng.random((batch, length)) < 0.2] = -100
        out["labels"] = labels
    return out


@st.composite
def head_masks(draw, config: LEDConfig) -> dict:
    """Any of head_mask (encoder_layers, heads), decoder_head_mask and cross_attn_head_mask
    (decoder_layers, decoder_heads), with entries 0, 1 or a fraction; absent masks are left out."""
    values = st.sampled_from([1.0, 0.0, 0.5])
    shapes = {
        "head_mask": (config.encoder_layers, config.encoder_attention_heads),
        "decoder_head_mask": (config.decoder_layers, config.decoder_attention_heads),
        "cross_attn_head_mask": (config.decoder_layers, config.decoder_attention_heads),
    }
    out = {}
    for name, shape in shapes.items():
        if draw(st.booleans()):
            flat = [draw(values) for _ in range(int(np.prod(shape)))]
            out[name] = np.array(flat, dtype=np.float64).reshape(shape)
    return out


def classification_labels(draw, config: LEDConfig, batch: int) -> dict:
    """Class labels (batch,) for LEDForSequenceClassification, or nothing (no loss)."""
    if not draw(st.booleans()):
        return {}
    return {"labels": np.array([draw(st.integers(0, config.num_labels - 1)) for _ in range(batch)], np.int64)}


def put_one_eos_per_row(inputs: dict, config: LEDConfig) -> None:
    """Exactly one <eos> per row, on its last real token (HF pools there and needs equal counts per row)."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    ids[(ids == config.eos_token_id) & (mask > 0)] = config.bos_token_id
    last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1] > 0, axis=1)
    ids[np.arange(len(ids)), last] = config.eos_token_id


@dataclass
class ModelCase:
    """One model-level parity case: a config, how to make its weights, and its inputs (numpy)."""

    config: LEDConfig
    architecture: str
    weight_seed: int
    weight_std: float
    inputs: dict = field(default_factory=dict)

    def weights(self) -> dict[str, np.ndarray]:
        from led_ref.init import random_weights

        return random_weights(self.config, self.architecture, seed=self.weight_seed, std=self.weight_std)

    def describe(self) -> str:
        c = self.config
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.inputs.items())
        return (f"{self.architecture} enc_layers={c.encoder_layers} dec_layers={c.decoder_layers} "
                f"heads={c.encoder_attention_heads} d_model={c.d_model} windows={c.layer_windows} "
                f"act={c.activation_function} weight_seed={self.weight_seed} std={self.weight_std}; {shapes}")


@st.composite
def model_cases(
    draw,
    architectures: tuple[str, ...] = ("LEDForConditionalGeneration",),
    hf_compatible: bool = False,
    with_head_masks: bool = True,
    config: LEDConfig | None = None,
    configs=None,
    moderate_weights: bool = False,
) -> ModelCase:
    """A config (the given one, or drawn from `configs`, default `led_configs(hf_compatible=...)`), weights
    seed/std, encoder + decoder inputs, labels and head masks."""
    config = config or draw(configs if configs is not None else led_configs(hf_compatible=hf_compatible))
    architecture = draw(st.sampled_from(architectures))
    if architecture == "LEDForSequenceClassification":
        # HF feeds the classifier the decoder states at the <eos> of input_ids (decoder inputs = input_ids
        # shifted right), so the decoder must hold as many positions as the encoder.
        longest = max(config.max_encoder_position_embeddings, config.max_decoder_position_embeddings)
        config = dataclasses.replace(config, max_decoder_position_embeddings=longest)
    seed, std = draw(weight_seeds(hf_compatible, moderate=moderate_weights))
    inputs = draw(encoder_inputs(config))
    batch = inputs["input_ids"].shape[0]
    if architecture == "LEDForSequenceClassification":
        inputs.update(classification_labels(draw, config, batch))
        put_one_eos_per_row(inputs, config)
    else:
        decoder = draw(decoder_inputs(config, batch, with_labels=architecture == "LEDForConditionalGeneration"))
        inputs.update(decoder)
    if architecture == "LEDForQuestionAnswering" and draw(st.booleans()):
        span = inputs["decoder_input_ids"].shape[1]  # HF's QA logits run along the decoder positions
        for name in ("start_positions", "end_positions"):
            inputs[name] = np.array([draw(st.integers(0, span - 1)) for _ in range(batch)], np.int64)
    if with_head_masks:
        inputs.update(draw(head_masks(config)))
    return ModelCase(config, architecture, seed, std, inputs)


# ---------------------------------------------------------------------------------------------- kernel cases
def describe_row(kinds: np.ndarray) -> str:
    """A long token_kind row in words: valid tokens, padding runs, global positions."""
    kinds = np.asarray(kinds)
    valid = np.flatnonzero(kinds)
    pads = np.flatnonzero(kinds == 0)
    globs = np.flatnonzero(kinds == 2).tolist()
    last = int(valid[-1]) + 1 if valid.size else 0
    holes = [int(p) for p in pads if p < last]
    text = f"valid 0..{last - 1}" if valid.size else "all padding"
    if holes:
        text += f" holes {holes[:8]}{'...' if len(holes) > 8 else ''}"
    text += f", {len(globs)} global"
    if globs:
        text += f" at {globs[:8]}{'...' if len(globs) > 8 else ''}"
    return text


@dataclass
class AttentionCase:
    """Inputs of the attention-kernel contract (docs/contract.md), float64 numpy.

    query, key, value, global_query, global_key, global_value: (batch, heads, seq, head_dim), queries
    already scaled by head_dim**-0.5; token_kind: (batch, seq) int64 of 0 padding / 1 local / 2 global;
    window: even, seq a multiple of it.
    """

    query: np.ndarray
    key: np.ndarray
    value: np.ndarray
    global_query: np.ndarray
    global_key: np.ndarray
    global_value: np.ndarray
    token_kind: np.ndarray
    window: int
    seed: int = 0
    strided: bool = False  # hand the kernel non-contiguous views of one packed (batch, seq, 6, heads, d) tensor
    label: str = ""  # the profile shape the case came from (parity.gate.profiles), for messages

    def arrays(self) -> tuple:
        return (self.query, self.key, self.value, self.global_query, self.global_key, self.global_value)

    def torch_args(self, dtype=None, device="cpu") -> tuple:
        """The kernel's positional arguments as torch tensors (floats in `dtype`, default float64).

        With `strided`, the six tensors are (batch, heads, seq, d) views of one packed
        (batch, seq, 6, heads, d) tensor, the layout a fused QKV projection leaves behind."""
        import torch

        dtype = dtype or torch.float64
        # fresh copies: a kernel writing into its inputs must not change the case (or the spec's view of it)
        if self.strided:
            # C order (np.stack keeps its inputs' transposed memory order, and torch.tensor keeps the strides)
            packed = torch.tensor(np.ascontiguousarray(np.stack([a.transpose(0, 2, 1, 3) for a in self.arrays()],
                                                                axis=2)), dtype=dtype, device=device)
            tensors = tuple(packed[:, :, i].transpose(1, 2) for i in range(6))
        else:
            tensors = tuple(torch.tensor(a, dtype=dtype, device=device) for a in self.arrays())
        return (*tensors, torch.tensor(self.token_kind, dtype=torch.long, device=device), self.window)

    def describe(self) -> str:
        b, h, s, d = self.query.shape
        head = f"[{self.label}] " if self.label else ""
        layout = " strided" if self.strided else ""
        if s <= 64:
            kinds = ["".join(".lg"[k] for k in row) for row in self.token_kind]
            rows = f"token_kind={kinds} (. padding, l local, g global)"
        else:
            rows = "rows: " + "; ".join(describe_row(row) for row in self.token_kind)
        return (f"{head}batch={b} heads={h} seq={s} head_dim={d} window={self.window} value_seed={self.seed}"
                f"{layout} {rows}")

    def __repr__(self) -> str:
        return f"AttentionCase({self.describe()})"


@st.composite
def attention_cases(
    draw,
    max_batch: int = 2,
    max_heads: int = 2,
    max_head_dim: int = 4,
    max_chunks: int = 3,
    windows: tuple[int, ...] = WINDOWS,
    inside_padding: bool = True,
    every_padding: bool = False,
) -> AttentionCase:
    """A kernel-contract case: seq = window * chunks (1..max_chunks), values from a drawn seed and scale.

    `every_padding`: rows also padded on the left, with runs of padding inside, or (batch >= 2) empty."""
    window = draw(st.sampled_from(windows))
    seq = window * draw(st.integers(1, max_chunks))
    batch = draw(st.integers(1, max_batch))
    heads = draw(st.integers(1, max_heads))
    head_dim = draw(st.integers(2, max_head_dim))
    kinds = draw(token_kinds(batch, seq, inside_padding, every_padding))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1.0, 3.0, 0.3]))  # 3.0 makes softmaxes peaked
    rng = np.random.default_rng(seed)
    shape = (batch, heads, seq, head_dim)
    arrays = [scale * rng.standard_normal(shape) for _ in range(6)]
    arrays[0] *= head_dim**-0.5
    arrays[3] *= head_dim**-0.5
    return AttentionCase(*arrays, token_kind=kinds, window=window, seed=seed)


# ---------------------------------------------------------------------------------------------- generate options
@st.composite
def generation_options(draw, config: LEDConfig) -> dict:
    """HF's deterministic generate options for a tiny model: beams, lengths (max/min, total or new tokens),
    length penalty, early stopping, n-gram and repetition rules, bad words, forced tokens, returned sequences."""
    beams = draw(st.integers(1, 4))
    options: dict = {"num_beams": beams}
    if beams > 1:
        options["num_return_sequences"] = draw(st.integers(1, beams))
        options["length_penalty"] = draw(st.sampled_from([1.0, 2.0, 0.0, -1.0, 0.5]))
        options["early_stopping"] = draw(st.sampled_from([False, True, "never"]))
    room = config.max_decoder_position_embeddings
    if draw(st.booleans()):
        options["max_new_tokens"] = draw(st.integers(1, min(9, room)))
    else:
        options["max_length"] = draw(st.integers(2, min(10, room + 1)))
    which_min = draw(st.sampled_from(["none", "min_length", "min_new_tokens"]))
    if which_min != "none":
        options[which_min] = draw(st.integers(0, 6))
    for name, values in (("no_repeat_ngram_size", [1, 2, 3]), ("encoder_no_repeat_ngram_size", [1, 2, 3]),
                         ("repetition_penalty", [1.3, 0.8, 2.0])):
        if draw(st.booleans()):
            options[name] = draw(st.sampled_from(values))
    token = st.integers(0, config.vocab_size - 1)
    if draw(st.booleans()):
        options["bad_words_ids"] = draw(st.lists(st.lists(token, min_size=1, max_size=3), min_size=1, max_size=4))
    if draw(st.integers(0, 3)) == 0:
        options["forced_bos_token_id"] = draw(token)
    if draw(st.integers(0, 3)) == 0:
        options["forced_eos_token_id"] = draw(token)
    return options
