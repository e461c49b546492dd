"""Greedy and beam-search decoding with the KV cache, token for token what HF `generate(do_sample=False)` does.

Which settings apply (explicit arguments, `generation_config=`, the checkpoint's generation_config.json or
config.json, HF's defaults) is decided by `led_ref.io.generation_settings`, shared with led_torch. Here: the
decoding itself. The encoder runs once, and so do the cross-attention keys and values of its output (one
`CrossAttentionCache` per source, read by every beam of that source at every step); the decoder is fed one
token per row per step and keeps the self-attention keys and values of each beam. Every step:

    scores = logits (greedy)  or  log_softmax(logits) (beam search)
    scores = rules(scores)    repetition penalty -> no_repeat_ngram -> encoder_no_repeat_ngram -> bad words
                              -> min_length -> forced_bos -> forced_eos (HF's order)
    beam search adds the running beam score

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
as HF's `max_length` and `min_length` do. Scores are kept in the model's dtype (HF's are float32): the two
agree except where two candidates are within float32 rounding of each other, which is a tie either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decoder import cross_attention_cache, decoder_step
from .functional import log_softmax
from .io import validation as check
from .io.generation_settings import GenerateOutput, GenerationSettings, resolve

NEG_INF = -np.inf
UNREACHABLE = -1.0e9  # HF's score for the beams that must not be picked at the first step


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


def ngram_table(tokens: np.ndarray, n: int) -> dict[tuple[int, ...], set[int]]:
    """Every (n-1)-token prefix in `tokens` (1-D) -> the tokens that followed it."""
    table: dict[tuple[int, ...], set[int]] = {}
    for i in range(len(tokens) - n + 1):
        table.setdefault(tuple(int(t) for t in tokens[i:i + n - 1]), set()).add(int(tokens[i + n - 1]))
    return table


def encoder_banned_tokens(table: dict, sequence: np.ndarray, n: int) -> set[int]:
    """Tokens that would complete an n-gram of the source (`table` from ngram_table of the input ids)."""
    if len(sequence) < n - 1:
        return set()
    return table.get(tuple(int(t) for t in sequence[len(sequence) - n + 1:]), set())


def bad_word_tokens(sequence: np.ndarray, words) -> set[int]:
    """Last tokens of the banned words whose other tokens end `sequence` (a one-token word: always)."""
    banned = set()
    for word in words:
        prefix = word[:-1]
        if len(word) <= len(sequence) and tuple(int(t) for t in sequence[len(sequence) - len(prefix):]) == prefix:
            banned.add(word[-1])
    return banned


class Rules:
    """The logits processors HF uses for these settings, in HF's order: scores (rows, vocab), sequences
    (rows, cur_len) -> new scores. Row r belongs to batch item r // rows_per_item."""

    def __init__(self, s: GenerationSettings, input_ids: np.ndarray, rows_per_item: int):
        self.s = s
        self.rows_per_item = rows_per_item
        n = s.encoder_no_repeat_ngram_size
        self.source_ngrams = [ngram_table(ids, n) for ids in input_ids] if n else None

    def __call__(self, scores: np.ndarray, sequences: np.ndarray) -> np.ndarray:
        s = self.s
        scores = scores.copy()
        cur_len = sequences.shape[1]
        for row, sequence in enumerate(sequences):
            if s.repetition_penalty != 1.0:
                seen = np.unique(sequence)
                values = scores[row, seen]
                scores[row, seen] = np.where(values < 0, values * s.repetition_penalty,
                                             values / s.repetition_penalty)
            banned = set()
            if s.no_repeat_ngram_size > 0:
                banned |= banned_ngram_tokens(sequence, s.no_repeat_ngram_size)
            if self.source_ngrams is not None:
                banned |= encoder_banned_tokens(self.source_ngrams[row // self.rows_per_item], sequence,
                                                s.encoder_no_repeat_ngram_size)
            if s.bad_words_ids:
                banned |= bad_word_tokens(sequence, s.bad_words_ids)
            scores[row, sorted(banned)] = NEG_INF
        if s.min_length > 0 and s.eos_token_id is not None and cur_len < s.min_length:
            scores[:, s.eos_token_id] = NEG_INF
        for token, when in ((s.forced_bos_token_id, 1), (s.forced_eos_token_id, s.max_length - 1)):
            if token is not None and cur_len == when:
                scores[:] = NEG_INF
                scores[:, token] = 0.0
        return scores


# ------------------------------------------------------------------------------------------- one step
class Decoder:
    """The decoder fed one token per row per step. Rows are sources * beams, the beams of a source adjacent.

    It holds two caches: the self-attention keys/values of every row, which follow the beams when they are
    reselected, and the cross-attention keys/values of every source, computed here once from the encoder
    output (sources, src, d) and never copied per beam or per step.
    """

    def __init__(self, model, encoder_hidden: np.ndarray, encoder_mask: np.ndarray | None):
        self.weights = model.base_weights
        self.config = model.config
        self.encoder_mask = encoder_mask
        self.cross = cross_attention_cache(self.weights, self.config, encoder_hidden)
        self.self_caches = None
        self.lm_weight = model.weights["led.shared.weight"]
        self.lm_bias = model.weights["final_logits_bias"]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (rows,) -> next-token logits (rows, vocab); extends the self-attention cache."""
        hidden, self.self_caches = decoder_step(self.weights, self.config, tokens, self.self_caches, self.cross,
                                                self.encoder_mask)
        return hidden @ self.lm_weight.T + self.lm_bias[0]

    def reorder(self, rows: np.ndarray) -> None:
        """Keep the self-attention cache rows `rows` (in that order): beams that continue, duplicated where they
        fork. A beam only ever continues a beam of its own source, so the per-source cross cache stays."""
        self.self_caches = tuple((key[rows], value[rows]) for key, value in self.self_caches)


# ------------------------------------------------------------------------------------------- greedy
def greedy_search(decoder: Decoder, rules: Rules, batch: int, s: GenerationSettings, steps: list | None = None):
    """Argmax decoding: (batch, length) including the start token, finished rows filled with pad. With
    `steps` a list, each step's processed scores (batch, vocab) are appended to it."""
    sequences = np.full((batch, 1), s.decoder_start_token_id, dtype=np.int64)
    unfinished = np.ones(batch, dtype=bool)
    while True:
        scores = rules(decoder.step(sequences[:, -1]), sequences)
        if steps is not None:
            steps.append(scores)
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
    return score / np.float64(generated) ** length_penalty


def can_improve(hyps: Hypotheses, best_running: float, cur_len: int, s: GenerationSettings) -> bool:
    """Could the best running beam still beat the worst finished hypothesis? (HF's heuristic)"""
    if not hyps.full:
        return True
    if s.early_stopping == "never" and s.length_penalty > 0.0:
        length = s.max_length - 1  # the longest it could get, which a positive penalty favours
    else:
        length = cur_len - 1
    return length_normalised(best_running, length, s.length_penalty) > min(hyps.scores)


def beam_search(decoder: Decoder, rules: Rules, batch: int, s: GenerationSettings,
                steps: list | None = None) -> list[Hypotheses]:
    """Beam search; returns, per batch item, its finished hypotheses best first (start token included).
    With `steps` a list, each step's processed log-probabilities (batch * beams, vocab) are appended."""
    beams, vocab = s.num_beams, decoder.lm_weight.shape[0]
    keep = max(2, 1 + (s.eos_token_id is not None)) * beams  # enough that num_beams never-ending ones remain
    running = np.full((batch, beams, 1), s.decoder_start_token_id, dtype=np.int64)
    running_scores = np.zeros((batch, beams))
    running_scores[:, 1:] = UNREACHABLE  # all beams start identical: expand only the first one
    finished = [Hypotheses(beams, [], []) for _ in range(batch)]
    cur_len = 1
    while True:
        logits = decoder.step(running[:, :, -1].reshape(-1))
        logprobs = rules(log_softmax(logits, axis=-1), running.reshape(batch * beams, cur_len))
        if steps is not None:
            steps.append(logprobs)
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

        # The best num_beams continuations keep running, ended ones pushed down by 1e9 (HF's rule: an ended one
        # runs on only where fewer than num_beams others have a finite score, e.g. all but eos forced to -inf,
        # and it keeps the push in its running score, so it never outranks a real hypothesis later).
        pushed = top_scores + ends * UNREACHABLE
        chosen = np.argsort(-pushed, axis=1, kind="stable")[:, :beams]
        chosen_beam = np.take_along_axis(source_beam, chosen, axis=1)
        running = np.concatenate([np.take_along_axis(running, chosen_beam[:, :, None], axis=1),
                                  np.take_along_axis(token, chosen, axis=1)[:, :, None]], axis=2)
        running_scores = np.take_along_axis(pushed, chosen, axis=1)
        decoder.reorder((chosen_beam + beams * np.arange(batch)[:, None]).reshape(-1))
        cur_len += 1

        for b in range(batch):
            if not finished[b].done and not can_improve(finished[b], running_scores[b, 0], cur_len, s):
                finished[b].done = True
        all_full = all(h.full for h in finished)
        if all(h.done for h in finished) or (s.early_stopping is True and all_full) or ends.all():
            return finished


def pad_hypotheses(hypotheses: list[Hypotheses], count: int, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `count` hypotheses of every item, right-padded with `fill` to one length: (batch * count, L),
    and their length-normalised scores (batch * count,)."""
    picked = [(seq, score) for item in hypotheses
              for seq, score in zip(item.sequences[:count], item.scores[:count], strict=True)]
    length = max(len(seq) for seq, _ in picked)
    out = np.full((len(picked), length), fill, dtype=np.int64)
    for row, (seq, _) in enumerate(picked):
        out[row, : len(seq)] = seq
    return out, np.array([score for _, score in picked])


# ------------------------------------------------------------------------------------------- entry point
def inferred_attention_mask(input_ids: np.ndarray, pad_token_id: int | None, eos_token_id: int | None) -> np.ndarray:
    """HF's default encoder mask in generate: ids != pad if the batch holds a pad token (and pad != eos)."""
    if pad_token_id is not None and pad_token_id != eos_token_id and np.any(input_ids == pad_token_id):
        return (input_ids != pad_token_id).astype(np.int64)
    return np.ones_like(input_ids)


def generate(model, input_ids, attention_mask=None, global_attention_mask=None, generation_config=None,
             **options):
    """Decode from an `LEDForConditionalGeneration`: int64 (batch * num_return_sequences, length), or with
    return_dict_in_generate=True a GenerateOutput (sequences, and with output_scores=True the per-step
    processed `scores` and, for beam search, `sequences_scores`).

    input_ids (batch, seq); masks (batch, seq) or None. `options` are HF's generate options (see
    `led_ref.io.generation_settings.SUPPORTED`); unset ones come from `generation_config`, the model's
    generation config and HF's defaults. Rows start with decoder_start_token_id; finished rows are padded
    with pad_token_id, as HF pads them.
    """
    config = model.config
    s = resolve(config, getattr(model, "generation_config", None), generation_config, **options)
    input_ids = check.check_token_ids("input_ids", input_ids, config.vocab_size)
    if attention_mask is None:
        attention_mask = inferred_attention_mask(input_ids, s.pad_token_id, s.eos_token_id)
    attention_mask = check.check_mask("attention_mask", attention_mask, input_ids.shape)
    encoder = model.get_encoder()(input_ids, attention_mask=attention_mask,
                                  global_attention_mask=global_attention_mask)
    batch = input_ids.shape[0]
    decoder = Decoder(model, encoder.last_hidden_state, attention_mask)  # one source per item, shared by its beams
    rules = Rules(s, input_ids, s.num_beams)
    steps = [] if s.return_dict_in_generate and s.output_scores else None
    if s.num_beams == 1:
        sequences = greedy_search(decoder, rules, batch, s, steps)
        sequences_scores = None
    else:
        sequences, sequences_scores = pad_hypotheses(beam_search(decoder, rules, batch, s, steps),
                                                     s.num_return_sequences, s.fill_token_id)
    if not s.return_dict_in_generate:
        return sequences
    return GenerateOutput(sequences=sequences, scores=None if steps is None else tuple(steps),
                          sequences_scores=sequences_scores if s.output_scores else None)
