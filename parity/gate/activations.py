"""Inputs that look like a trained model's: drawn value styles, and the q, k, v a real model computes.

Drawn styles (`VALUE_STYLES`, a field of every profile case; `normal` half the time):

    normal            N(mean, scale) entries (and the profile's optional x8 outliers)
    massive_channels  1 to 3 channels of key and value x20 on every token (the "massive activations" of
                      trained transformers live in a few fixed channels)
    sinks_200         three sink keys per row scoring ~200 (x 1, 0.8, 0.6 in a random order) above the rest for
                      every query: the row's first valid token (BOS) and two more; even the weakest overflows
                      exp in float32 (> 88.7) unless the kernel subtracts the running max
    sinks_1500        the same at ~1500, past float64's 709.8, so a float64 run sees the overflow as well
    low_rank          query and key (local and global) of rank 1 to 4 plus 1e-3 noise: near-ties across keys
    heavy_tails       Student-t entries with 2.5 degrees of freedom (rare entries 10-100x the scale)

The strengths differ by >= 40 in score, so the strongest visible sink dominates a row (its probability is 1 to
the last bit) and float32 rounding of huge scores cannot decide between sinks. The score is split evenly
between a query component along a direction u and the sink key's (sqrt(score) each), so the sink key stays
short (~40 for a score of 1,500): a gradient the kernel forms as a difference of large numbers
(D_i = dO_i . O_i against dO_i . v_sink) is multiplied by the key's size, which neither float32's fixed
budget nor a fair half-precision one absorbs once a key is ~200 long.

`model_cases` runs a checkpoint (default: the embedded trained model, led_ref.io.default_model) on a text
and returns, per encoder layer, the AttentionCase of the q, k, v and global projections that layer computes.
"""

from __future__ import annotations

import numpy as np

VALUE_STYLES = ("normal", "massive_channels", "sinks_200", "sinks_1500", "low_rank", "heavy_tails")
SINK_SPLIT = {200.0: (200.0 ** 0.5,) * 2, 1500.0: (1500.0 ** 0.5,) * 2}  # score -> (query's part, key's part)
MASSIVE_FACTOR = 20.0
SINK_STRENGTHS = (1.0, 0.8, 0.6)  # in a random order over a row's sinks: the strongest is not always the first
HEAVY_DF = 2.5
LOW_RANK_NOISE = 1e-3


def activation_like(arrays: list, style: str, token_kind, seed: int, scale: float = 1.0,
                    mean: float = 0.0, in_place: bool = False) -> list:
    """The six (batch, heads, seq, d) arrays (queries not yet scaled by d**-0.5) given the `style`'s
    structure; `normal` returns them unchanged. Deterministic in `seed`. `in_place`: the arrays are the
    caller's to change (no copy of them is made)."""
    if style not in VALUE_STYLES:
        raise ValueError(f"values must be one of {', '.join(VALUE_STYLES)}; got {style!r}")
    if style == "normal":
        return arrays
    if style == "heavy_tails":
        return heavy_tails(arrays[0].shape, seed, scale, mean)
    rng = np.random.default_rng([seed, 7])  # its own stream: the normal draws stay what they were
    if not in_place:
        arrays = [a.copy() for a in arrays]
    batch, heads, seq, d = arrays[0].shape
    if style == "massive_channels":
        channels = rng.choice(d, size=min(d, int(rng.integers(1, 4))), replace=False)
        for i in (1, 2, 4, 5):  # keys and values, local and global
            arrays[i][..., channels] *= MASSIVE_FACTOR
    elif style.startswith("sinks_"):
        _plant_sinks(arrays, float(style.removeprefix("sinks_")), np.asarray(token_kind), rng)
    elif style == "low_rank":
        rank = int(rng.integers(1, 5))
        for i in (0, 1, 3, 4):
            left = rng.standard_normal((batch, heads, seq, rank))
            right = rng.standard_normal((batch, heads, rank, d)) / np.sqrt(rank)
            # scale * (left @ right) + mean + noise, in that order, without temporaries of the full size
            a = np.matmul(left, right)
            a *= scale
            a += mean
            noise = rng.standard_normal(a.shape)
            noise *= LOW_RANK_NOISE
            a += noise
            arrays[i] = a
    return arrays


def heavy_tails(shape: tuple, seed: int, scale: float = 1.0, mean: float = 0.0) -> list:
    """The six arrays of the `heavy_tails` style: Student-t entries, scale * t / 3 + mean. They read nothing of
    the normal draws, so a case of this style need not make them."""
    rng = np.random.default_rng([seed, 7])
    arrays = []
    for _ in range(6):
        a = rng.standard_t(HEAVY_DF, shape)
        a *= scale
        a /= 3
        a += mean
        arrays.append(a)
    return arrays


def _plant_sinks(arrays: list, score: float, token_kind: np.ndarray, rng) -> None:
    """Give every query a unit component along a direction u (per batch and head) and a few keys a large
    component along u, so q.k of those keys is ~`score` (x the strengths) above the rest after the
    d**-0.5 scaling of the queries. Local and global keys both get them."""
    batch, heads, seq, d = arrays[0].shape
    query_part, key_part = SINK_SPLIT[score]
    u = rng.standard_normal((batch, heads, 1, d))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    for i in (0, 3):
        arrays[i] += u * query_part * np.sqrt(d)  # after the d**-0.5 scaling: query_part along u
    for b in range(batch):
        valid = np.flatnonzero(token_kind[b])
        if valid.size == 0:
            continue
        extra = rng.choice(valid, size=min(2, valid.size), replace=False)
        sinks = list(dict.fromkeys([int(valid[0]), *map(int, extra)]))
        for position, strength in zip(sinks, rng.permutation(SINK_STRENGTHS), strict=False):
            for i in (1, 4):
                arrays[i][b, :, position] += u[b, :, 0] * key_part * strength


# ------------------------------------------------------------------------------------------ a real model
MODEL_LABEL = "model"  # labels of model cases start with it: "model layer 0 window=4 seq=64 head_dim=16 heads=4"


def read_text(path: str | None) -> str | None:
    """The text of `path` (UTF-8), None for None; ValueError naming the path when it cannot be read."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeError) as err:
        raise ValueError(f"--text {path!r} cannot be read: {err}") from None
    if not text.strip():
        raise ValueError(f"--text {path!r} is empty")
    return text


def model_cases(checkpoint: str | None = None, text: str | None = None,
                global_positions: tuple[int, ...] = (0,)) -> list:
    """Per encoder layer, the case (parity.gate.poison.GateCase, float64) of the q, k, v and global q, k, v
    that layer of `checkpoint` computes on `text` (queries scaled by head_dim**-0.5 as the contract says),
    right-padded to a multiple of the layer's window; label `model layer L window=... seq=...`.

    checkpoint: a folder led_ref loads (config.json, model.safetensors, tokenizer files); None: the
    embedded trained model. text: None: the embedded model's own text. The tokens at `global_positions`
    (default the <s> token) are global; the input is cut to the model's position table."""
    from led_ref import layout
    from led_ref.attention import PROJECTIONS
    from led_ref.encoder import embed_encoder_inputs, encoder_layer
    from led_ref.functional import activation, linear, split_heads, subtree
    from led_ref.io.default_model import DEFAULT_TEXT, default_checkpoint_dir
    from led_ref.io.tokenizer import LEDTokenizer
    from led_ref.model import LEDModel
    from parity.gate.poison import GateCase

    path = str(default_checkpoint_dir()) if checkpoint is None else checkpoint
    try:
        model = LEDModel.from_pretrained(path)
        tokenizer = LEDTokenizer.from_pretrained(path)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"--activations-from {path!r} cannot be loaded: {' '.join(str(err).split())}") from None
    config, weights = model.config, model.base_weights
    ids = np.asarray(tokenizer.encode(DEFAULT_TEXT if text is None else text), np.int64)
    ids = ids[: config.max_encoder_position_embeddings][None]
    seq = ids.shape[1]
    global_mask = np.zeros_like(ids)
    global_mask[0, [p for p in global_positions if p < seq]] = 1
    windows = [layout.effective_window(w, seq) for w in config.layer_windows]
    hidden, token_kind, _ = embed_encoder_inputs(weights, config, ids, None, np.ones_like(ids), global_mask,
                                                 window=max(windows))
    heads = config.encoder_attention_heads
    head_dim = config.d_model // heads
    act = activation(config.activation_function)
    cases = []
    for layer, window in enumerate(windows):
        params = subtree(weights, f"encoder.layers.{layer}.")
        attn = subtree(params, "self_attn.longformer_self_attn.")
        length = -(-seq // window) * window
        x = np.zeros((1, length, config.d_model))
        x[:, :seq] = hidden[:, :seq]  # padding rows hold zeros: the contract never reads them
        kinds = np.zeros((1, length), np.int64)
        kinds[:, :seq] = token_kind[:, :seq]
        projected = {name: split_heads(linear(x, attn, name), heads) for name in PROJECTIONS}
        for name in ("query", "query_global"):
            projected[name] = projected[name] * head_dim ** -0.5
        arrays = [projected[n] for n in ("query", "key", "value", "query_global", "key_global", "value_global")]
        label = f"{MODEL_LABEL} layer {layer} window={window} seq={length} head_dim={head_dim} heads={heads}"
        cases.append(GateCase(*arrays, token_kind=kinds, window=window, seed=layer, label=label))
        hidden = encoder_layer(hidden, params, token_kind, window, heads, act)[0]
    return cases
