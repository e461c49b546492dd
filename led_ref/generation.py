"""Greedy and beam-search decoding with the KV cache, token for token what HF `generate(do_sample=False)` does.

The encoder runs once; the decoder is fed one token per step and keeps its cache. Every step:

    scores = logits (greedy)  or  log_softmax(logits) + beam score (beam search)
    scores = rules(scores)    no_repeat_ngram -> min_length -> forced_bos -> forced_eos (each sets -inf / 0)

Greedy takes the argmax; finished rows (eos seen) are filled with pad. Beam search keeps, per batch item,
`num_beams` running beams and up to `num_beams` finished hypotheses scored sum_logprobs / length**lp,
where length counts the generated tokens including the eos. Every step looks at the best 2 * num_beams
continuations: those among the first num_beams that end (eos, or max_length reached) become finished
hypotheses, the best num_beams that do not end keep running. An item stops taking hypotheses when
`early_stopping` says it is done:

    True     as soon as it holds num_beams finished hypotheses
    False    when it is full and best running score / (current length ** lp) cannot beat its worst one
    "never"  the same, but with max_length in place of the current length when lp > 0

Decoding ends when every item is done or max_length is reached. Lengths count the decoder start token,
as HF's `max_length` and `min_length` do; `max_new_tokens` sets max_length = 1 + max_new_tokens. Like HF,
a max_length left at its default of 20 (not passed, and config.max_length == 20) means 20 new tokens (21).
Scores are kept in the model's dtype (HF's are float32): the two agree except where two candidates are
within float32 rounding of each other, which is a tie either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import validation as check
from .decoder import decoder_forward
from .functional import log_softmax

NEG_INF = -np.inf
HF_DEFAULT_MAX_LENGTH = 20
UNREACHABLE = -1.0e9  # HF's score for the beams that must not be picked at the first step


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that steers decoding, after defaults from the config are filled in."""

    max_length: int
    min_length: int
    num_beams: int
    length_penalty: float
    early_stopping: bool | str
    no_repeat_ngram_size: int
    num_return_sequences: int
    decoder_start_token_id: int
    eos_token_id: int | None
    pad_token_id: int | None
    forced_bos_token_id: int | None
    forced_eos_token_id: int | None


def resolve_settings(config, max_length=None, max_new_tokens=None, min_length=None, num_beams=None,
                     length_penalty=None, early_stopping=None, no_repeat_ngram_size=None,
                     num_return_sequences=1) -> GenerationSettings:
    """Fill unset arguments from the config (HF's generation defaults live there) and check them."""
    def pick(value, default):
        return default if value is None else value

    if max_new_tokens is not None:
        max_length = 1 + check.check_positive_int("max_new_tokens", max_new_tokens)
    elif max_length is None:
        max_length = config.max_length
        if max_length == HF_DEFAULT_MAX_LENGTH:
            max_length += 1  # HF's "20 new tokens by default": the untouched default gains the start token
    max_length = check.check_positive_int("max_length", max_length, minimum=2)
    if max_length - 1 > config.max_decoder_position_embeddings:
        raise ValueError(f"max_length={max_length} needs {max_length - 1} decoder positions but "
                         f"max_decoder_position_embeddings={config.max_decoder_position_embeddings}")
    min_length = check.check_positive_int("min_length", pick(min_length, config.min_length), minimum=0)
    num_beams = check.check_positive_int("num_beams", pick(num_beams, config.num_beams))
    num_return_sequences = check.check_positive_int("num_return_sequences", num_return_sequences)
    if num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences={num_return_sequences} must be <= num_beams={num_beams} "
                         "(greedy and beam search return at most one sequence per beam)")
    early_stopping = pick(early_stopping, config.early_stopping)
    if not (isinstance(early_stopping, (bool, np.bool_)) or (isinstance(early_stopping, str)
                                                             and early_stopping == "never")):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    early_stopping = early_stopping if isinstance(early_stopping, str) else bool(early_stopping)
    length_penalty = pick(length_penalty, config.length_penalty)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)) \
            or not np.isfinite(length_penalty):
        raise TypeError(f"length_penalty must be a number (finite), got {length_penalty!r}")
    no_repeat = check.check_positive_int("no_repeat_ngram_size", pick(no_repeat_ngram_size,
                                                                      config.no_repeat_ngram_size), minimum=0)
    start = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
    if start is None:
        raise ValueError("config.decoder_start_token_id and config.bos_token_id are both None: no token to start")
    eos = config.eos_token_id
    pad = config.pad_token_id if config.pad_token_id is not None else eos  # HF falls back to eos
    return GenerationSettings(max_length, min_length, num_beams, float(length_penalty), early_stopping, no_repeat,
                              num_return_sequences, start, eos, pad, config.forced_bos_token_id,
                              config.forced_eos_token_id)


# ------------------------------------------------------------------------------------------- scoring rules
def banned_ngram_tokens(sequence: np.ndarray, n: int) -> set[int]:
    """Tokens that would repeat an n-gram already in `sequence` (1-D, the start token included).

        sequence [2, 5, 6, 5], n = 2  ->  {6}    (5 was followed by 6 before)
    """
    length = len(sequence)
    if n == 0 or length + 1 < n:
        return set()
    prefix = tuple(sequence[length - n + 1:])
    return {int(sequence[i + n - 1]) for i in range(length - n + 1) if tuple(sequence[i:i + n - 1]) == prefix}


def apply_rules(scores: np.ndarray, sequences: np.ndarray, s: GenerationSettings) -> np.ndarray:
    """The logits processors HF uses for these settings, in HF's order: scores (rows, vocab), sequences
    (rows, cur_len) -> new scores."""
    scores = scores.copy()
    cur_len = sequences.shape[1]
    if s.no_repeat_ngram_size > 0:
        for row, sequence in enumerate(sequences):
            banned = list(banned_ngram_tokens(sequence, s.no_repeat_ngram_size))
            scores[row, banned] = NEG_INF
    if s.min_length > 0 and s.eos_token_id is not None and cur_len < s.min_length:
        scores[:, s.eos_token_id] = NEG_INF
    for token, when in ((s.forced_bos_token_id, 1), (s.forced_eos_token_id, s.max_length - 1)):
        if token is not None and cur_len == when:
            scores[:] = NEG_INF
            scores[:, token] = 0.0
    return scores


# ------------------------------------------------------------------------------------------- one step
class Decoder:
    """The decoder fed one token per row per step, holding its cache and the (expanded) encoder output."""

    def __init__(self, model, encoder_hidden: np.ndarray, encoder_mask: np.ndarray | None):
        self.weights = model.base_weights
        self.config = model.config
        self.encoder_hidden = encoder_hidden
        self.encoder_mask = encoder_mask
        self.cache = None
        self.lm_weight = model.weights["led.shared.weight"]
        self.lm_bias = model.weights["final_logits_bias"]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (rows,) -> next-token logits (rows, vocab); extends the cache."""
        out = decoder_forward(self.weights, self.config, input_ids=tokens[:, None],
                              encoder_hidden_states=self.encoder_hidden, encoder_attention_mask=self.encoder_mask,
                              past_key_values=self.cache)
        self.cache = out["past_key_values"]
        return (out["last_hidden_state"][:, -1] @ self.lm_weight.T + self.lm_bias[0])

    def reorder(self, rows: np.ndarray) -> None:
        """Keep the cache rows `rows` (in that order): beams that continue, duplicated where they fork."""
        self.cache = tuple(tuple(t[rows] for t in layer) for layer in self.cache)


# ------------------------------------------------------------------------------------------- greedy
def greedy_search(decoder: Decoder, batch: int, s: GenerationSettings) -> np.ndarray:
    """Argmax decoding: (batch, length) including the start token, finished rows filled with pad."""
    sequences = np.full((batch, 1), s.decoder_start_token_id, dtype=np.int64)
    unfinished = np.ones(batch, dtype=bool)
    while True:
        scores = apply_rules(decoder.step(sequences[:, -1]), sequences, s)
        tokens = np.argmax(scores, axis=-1)
        if s.eos_token_id is not None:
            tokens = np.where(unfinished, tokens, s.pad_token_id)
            unfinished &= tokens != s.eos_token_id
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        if sequences.shape[1] >= s.max_length or not unfinished.any():
            return sequences


# ------------------------------------------------------------------------------------------- beam search
@dataclass
class Hypotheses:
    """The finished hypotheses of one batch item, best first, at most `size`."""

    size: int
    scores: list[float]
    sequences: list[np.ndarray]
    done: bool = False  # no hypothesis may be added any more

    def add(self, score: float, sequence: np.ndarray) -> None:
        self.scores.append(score)
        self.sequences.append(sequence)
        order = np.argsort(-np.asarray(self.scores), kind="stable")[: self.size]
        self.scores = [self.scores[i] for i in order]
        self.sequences = [self.sequences[i] for i in order]

    @property
    def full(self) -> bool:
        return len(self.scores) == self.size


def length_normalised(score: float, generated: int, length_penalty: float) -> float:
    """A finished hypothesis' score: sum of log-probs / generated_tokens ** length_penalty."""
    return score / generated**length_penalty


def can_improve(hyps: Hypotheses, best_running: float, cur_len: int, s: GenerationSettings) -> bool:
    """Could the best running beam still beat the worst finished hypothesis? (HF's heuristic)"""
    if not hyps.full:
        return True
    if s.early_stopping == "never" and s.length_penalty > 0.0:
        length = s.max_length - 1  # the longest it could get, which a positive penalty favours
    else:
        length = cur_len - 1
    return length_normalised(best_running, length, s.length_penalty) > min(hyps.scores)


def beam_search(decoder: Decoder, batch: int, s: GenerationSettings) -> list[list[np.ndarray]]:
    """Beam search; returns, per batch item, its finished hypotheses best first (start token included)."""
    beams, vocab = s.num_beams, decoder.lm_weight.shape[0]
    keep = max(2, 1 + (s.eos_token_id is not None)) * beams  # enough that num_beams never-ending ones remain
    running = np.full((batch, beams, 1), s.decoder_start_token_id, dtype=np.int64)
    running_scores = np.zeros((batch, beams))
    running_scores[:, 1:] = UNREACHABLE  # all beams start identical: expand only the first one
    finished = [Hypotheses(beams, [], []) for _ in range(batch)]
    cur_len = 1
    while True:
        logits = decoder.step(running[:, :, -1].reshape(-1))
        logprobs = apply_rules(log_softmax(logits, axis=-1), running.reshape(batch * beams, cur_len), s)
        totals = (logprobs.reshape(batch, beams, vocab) + running_scores[:, :, None]).reshape(batch, -1)
        # The best `keep` continuations of every item, best first (ties: lowest beam, then lowest token).
        top = np.argsort(-totals, axis=1, kind="stable")[:, :keep]
        top_scores = np.take_along_axis(totals, top, axis=1)
        source_beam, token = top // vocab, top % vocab
        ends = (cur_len + 1 >= s.max_length) | (token == s.eos_token_id if s.eos_token_id is not None else False)
        ends = np.broadcast_to(ends, top.shape)

        for b in range(batch):
            hyps = finished[b]
            if hyps.done or (s.early_stopping is True and hyps.full):
                continue
            for rank in range(beams):  # only the first num_beams candidates may finish
                if ends[b, rank]:
                    sequence = np.append(running[b, source_beam[b, rank]], token[b, rank])
                    hyps.add(length_normalised(top_scores[b, rank], cur_len, s.length_penalty), sequence)

        # The best num_beams continuations that do not end keep running.
        chosen = np.argsort(ends, axis=1, kind="stable")[:, :beams]
        chosen_beam = np.take_along_axis(source_beam, chosen, axis=1)
        running = np.concatenate([np.take_along_axis(running, chosen_beam[:, :, None], axis=1),
                                  np.take_along_axis(token, chosen, axis=1)[:, :, None]], axis=2)
        running_scores = np.take_along_axis(top_scores, chosen, axis=1)
        decoder.reorder((chosen_beam + beams * np.arange(batch)[:, None]).reshape(-1))
        cur_len += 1

        for b in range(batch):
            if not finished[b].done and not can_improve(finished[b], running_scores[b, 0], cur_len, s):
                finished[b].done = True
        all_full = all(h.full for h in finished)
        if all(h.done for h in finished) or (s.early_stopping is True and all_full) or ends.all():
            return [h.sequences for h in finished]


def pad_hypotheses(hypotheses: list[list[np.ndarray]], count: int, fill: int) -> np.ndarray:
    """The best `count` hypotheses of every item, right-padded with `fill` to one length: (batch * count, L)."""
    picked = [seq for item in hypotheses for seq in item[:count]]
    length = max(len(seq) for seq in picked)
    out = np.full((len(picked), length), fill, dtype=np.int64)
    for row, seq in enumerate(picked):
        out[row, : len(seq)] = seq
    return out


# ------------------------------------------------------------------------------------------- entry point
def inferred_attention_mask(input_ids: np.ndarray, pad_token_id: int | None, eos_token_id: int | None) -> np.ndarray:
    """HF's default encoder mask in generate: ids != pad if the batch holds a pad token (and pad != eos)."""
    if pad_token_id is not None and pad_token_id != eos_token_id and np.any(input_ids == pad_token_id):
        return (input_ids != pad_token_id).astype(np.int64)
    return np.ones_like(input_ids)


def generate(model, input_ids, attention_mask=None, global_attention_mask=None, max_length=None,
             max_new_tokens=None, min_length=None, num_beams=None, length_penalty=None, early_stopping=None,
             no_repeat_ngram_size=None, num_return_sequences=1) -> np.ndarray:
    """Decode from an `LEDForConditionalGeneration`: int64 (batch * num_return_sequences, length).

    input_ids (batch, seq); masks (batch, seq) or None. Unset arguments come from `model.config`
    (max_length 20, min_length 0, num_beams 1, ...). Rows start with decoder_start_token_id; finished
    rows are padded with pad_token_id, as HF pads them.
    """
    config = model.config
    s = resolve_settings(config, max_length, max_new_tokens, min_length, num_beams, length_penalty,
                         early_stopping, no_repeat_ngram_size, num_return_sequences)
    input_ids = check.check_token_ids("input_ids", input_ids, config.vocab_size)
    if attention_mask is None:
        attention_mask = inferred_attention_mask(input_ids, config.pad_token_id, s.eos_token_id)
    attention_mask = check.check_mask("attention_mask", attention_mask, input_ids.shape)
    encoder = model.get_encoder()(input_ids, attention_mask=attention_mask,
                                  global_attention_mask=global_attention_mask)
    batch = input_ids.shape[0]
    # Every beam of an item reads the same encoder output.
    decoder = Decoder(model, np.repeat(encoder.last_hidden_state, s.num_beams, axis=0),
                      np.repeat(attention_mask, s.num_beams, axis=0))
    if s.num_beams == 1:
        return greedy_search(decoder, batch, s)
    hypotheses = beam_search(decoder, batch, s)
    # HF fills the unused tail of beam outputs with pad, or with eos when pad is 0 or unset.
    fill = s.pad_token_id if s.pad_token_id else s.eos_token_id
    return pad_hypotheses(hypotheses, s.num_return_sequences, -1 if fill is None else fill)
