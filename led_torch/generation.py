"""Greedy and beam-search generation with a static KV cache (gpt-fast style), token-identical to HF 4.57's
`generate(do_sample=False)`.

* The encoder runs once per source. Each decoder layer's cross-attention keys/values are computed once per
  source and shared by that source's beams (queries are folded onto the query axis, no per-beam copies).
* Self-attention keys/values live in preallocated (rows, heads, max_length, head_dim) buffers; a decode step
  writes one position and attends to the whole buffer under a mask, so every step has the same shapes and
  `torch.compile` (compile=True) builds one graph.
* Scores follow HF: logits in float32; greedy takes the argmax of the processed logits, beam search adds the
  processed log-softmax to the running beam scores. Processors run in HF's order (LogitsProcessors).
* Which settings apply is decided by `led_ref.io.generation_settings` (policy shared with led_ref; the numerics
  here are led_torch's own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from led_ref.io.generation_settings import GenerateOutput, GenerationSettings, resolve

from .decoder import padding_bias

_NEG = -1.0e9  # HF's "impossible" beam score


class StaticCache:
    """Every layer's self-attention keys and values in one (layers, 2, rows, heads, max_length, head_dim)
    buffer, written in place; one buffer makes the per-step beam reorder a single index_select, and each
    layer's keys/values stay contiguous. A second buffer of the same shape receives the reorder (no allocation
    per step), and only the positions written so far are copied: the rest are masked in every step until a
    step writes them."""

    def __init__(self, layers: int, rows: int, heads: int, length: int, head_dim: int, dtype, device):
        self.layers = layers
        self.length = length
        self.kv = torch.zeros((layers, 2, rows, heads, length, head_dim), dtype=dtype, device=device)
        self._spare = torch.zeros_like(self.kv)
        self._identity = torch.arange(rows, device=device)

    def extender(self, layer: int, position: torch.Tensor):
        kv = self.kv

        def extend(k, v):
            keys, values = kv[layer, 0], kv[layer, 1]
            keys.index_copy_(2, position.view(1), k)
            values.index_copy_(2, position.view(1), v)
            return keys, values
        return extend

    def reorder(self, rows: torch.Tensor, written: int) -> None:
        """Row r of the cache becomes old row rows[r] (beam search keeps the surviving beams' histories) at the
        first `written` positions."""
        if torch.equal(rows, self._identity):  # beams that keep their own history need no copy
            return
        torch.index_select(self.kv[..., :written, :], 2, rows, out=self._spare[..., :written, :])
        self.kv, self._spare = self._spare, self.kv


def cross_keys_values(attention, encoder_hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder layer's cross-attention keys and values of a source, computed once and laid out for the decode
    steps: values (sources, heads, keys, head_dim) contiguous; keys as the transpose of a contiguous (sources,
    heads, head_dim, keys) tensor, so each step's `q @ keys.transpose(-1, -2)` is a plain matmul over rows it
    reads in order (same shapes and values for the layer; timings in docs/performance.md)."""
    keys, values = attention.project_kv(encoder_hidden)
    return keys.transpose(-1, -2).contiguous().transpose(-1, -2), values.contiguous()


def decode_step(model, cache: StaticCache, cross, cross_bias, tokens: torch.Tensor, position: torch.Tensor):
    """tokens (rows, 1) at decoder position `position` (0-d tensor) -> float32 logits (rows, vocab)."""
    decoder = model.led.decoder
    embed = F.embedding(tokens, decoder.embed_tokens.weight, padding_idx=model.config.pad_token_id)
    hidden = decoder.layernorm_embedding(embed + decoder.embed_positions(position.view(1)))
    length = cache.length
    visible = torch.arange(length, device=tokens.device) <= position
    zero = torch.zeros((), dtype=hidden.dtype, device=hidden.device)
    self_bias = torch.where(visible, zero, torch.finfo(hidden.dtype).min)[None, None, None, :]
    for i, layer in enumerate(decoder.layers):
        hidden = layer(hidden, self_bias, cross[i][0], cross[i][1], cross_bias, cache.extender(i, position))[0]
    logits = model.lm_head(hidden[:, -1]) + model.final_logits_bias.to(hidden.dtype)
    return logits.float()


class LogitsProcessors:
    """HF's processors for do_sample=False, in HF's order; `scores` (rows, vocab) float32, modified copy.

    repetition penalty -> no-repeat n-gram -> encoder no-repeat n-gram -> bad words -> min length ->
    forced BOS (first step) -> forced EOS (last step). Row r belongs to source r // rows_per_source."""

    def __init__(self, s: GenerationSettings, input_ids, rows_per_source: int):
        self.s = s
        self.rows_per_source = rows_per_source
        n = s.encoder_no_repeat_ngram_size
        self.source_ngrams = None
        if n and isinstance(input_ids, torch.Tensor):
            self.source_ngrams = [_ngram_table(ids, n) for ids in input_ids.tolist()]
        self.single_bad = [w[0] for w in s.bad_words_ids if len(w) == 1]
        self.longer_bad = [w for w in s.bad_words_ids if len(w) > 1]

    def __call__(self, sequences: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        s = self.s
        scores = scores.clone()
        length = sequences.shape[1]
        if s.repetition_penalty != 1.0:
            seen = torch.gather(scores, 1, sequences)
            seen = torch.where(seen < 0, seen * s.repetition_penalty, seen / s.repetition_penalty)
            scores.scatter_(1, sequences, seen)
        rows = sequences.tolist() if (s.no_repeat_ngram_size or self.source_ngrams or self.longer_bad) else None
        if s.no_repeat_ngram_size and length + 1 >= s.no_repeat_ngram_size:
            for row, banned in enumerate(banned_ngram_tokens(rows, s.no_repeat_ngram_size)):
                scores[row, banned] = -float("inf")
        if self.source_ngrams is not None:
            n = s.encoder_no_repeat_ngram_size
            for row, seq in enumerate(rows):
                if length >= n - 1:
                    banned = self.source_ngrams[row // self.rows_per_source].get(tuple(seq[length - n + 1:]), [])
                    scores[row, list(banned)] = -float("inf")
        if self.single_bad:
            scores[:, self.single_bad] = -float("inf")
        for word in self.longer_bad:
            if len(word) <= length:
                hit = [r for r, seq in enumerate(rows) if tuple(seq[length - len(word) + 1:]) == word[:-1]]
                scores[hit, word[-1]] = -float("inf")
        if s.min_length and s.eos_token_id is not None and length < s.min_length:
            scores[:, s.eos_token_id] = -float("inf")
        if s.forced_bos_token_id is not None and length == 1:
            scores = _only(scores, s.forced_bos_token_id)
        if s.forced_eos_token_id is not None and length == s.max_length - 1:
            scores = _only(scores, s.forced_eos_token_id)
        return scores


def _only(scores: torch.Tensor, token: int) -> torch.Tensor:
    forced = torch.full_like(scores, -float("inf"))
    forced[:, token] = 0.0
    return forced


def _ngram_table(tokens: list[int], n: int) -> dict[tuple[int, ...], set[int]]:
    """(n-1)-token prefixes of `tokens` -> the tokens that followed them."""
    table: dict[tuple[int, ...], set[int]] = {}
    for i in range(len(tokens) - n + 1):
        table.setdefault(tuple(tokens[i:i + n - 1]), set()).add(tokens[i + n - 1])
    return table


def banned_ngram_tokens(sequences: list[list[int]], n: int) -> list[list[int]]:
    """Tokens that would repeat an n-gram already in each sequence (its last n-1 tokens as the prefix)."""
    banned = []
    for seq in sequences:
        seen: dict[tuple[int, ...], list[int]] = {}
        for i in range(len(seq) - n + 1):
            seen.setdefault(tuple(seq[i:i + n - 1]), []).append(seq[i + n - 1])
        banned.append(seen.get(tuple(seq[len(seq) - n + 1:]), []))
    return banned


def _infer_attention_mask(s: GenerationSettings, input_ids):
    """HF's rule when no mask is given: mask pad tokens if the input holds any and pad != eos."""
    pad, eos = s.pad_token_id, s.eos_token_id
    if pad is None or pad == eos or not (input_ids == pad).any():
        return torch.ones_like(input_ids)
    return (input_ids != pad).long()


@torch.no_grad()
def generate(model, input_ids, attention_mask=None, global_attention_mask=None, generation_config=None,
             compile=False, **options):
    """Token ids (batch * num_return_sequences, length) starting with decoder_start_token_id, or with
    return_dict_in_generate=True a GenerateOutput (sequences; with output_scores=True the per-step processed
    `scores` and, for beam search, `sequences_scores`). Settings: `led_ref.io.generation_settings.resolve`."""
    config = model.config
    _check_single_process(options.get("synced_gpus"))
    s = resolve(config, getattr(model, "generation_config", None), generation_config, **options)
    if attention_mask is None:
        attention_mask = _infer_attention_mask(s, input_ids) if isinstance(input_ids, torch.Tensor) and \
            not input_ids.dtype.is_floating_point and input_ids.dim() == 2 else None
    encoder_hidden = model.led.encoder(input_ids, attention_mask, global_attention_mask).last_hidden_state
    batch = encoder_hidden.shape[0]
    num_beams, max_length = s.num_beams, s.max_length
    rows = batch * num_beams
    decoder = model.led.decoder
    cross = [cross_keys_values(layer.encoder_attn, encoder_hidden) for layer in decoder.layers]
    # no padding: no bias (adding its zeros changes no bit, and costs every layer of every step a pass)
    no_padding = isinstance(attention_mask, torch.Tensor) and bool(attention_mask.all())
    cross_bias = None if no_padding else padding_bias(attention_mask, encoder_hidden.dtype)
    heads = config.decoder_attention_heads
    cache = StaticCache(len(decoder.layers), rows, heads, max_length, config.d_model // heads,
                        encoder_hidden.dtype, encoder_hidden.device)
    step = torch.compile(decode_step, dynamic=False) if compile else decode_step

    def logits_for(tokens, position):
        return step(model, cache, cross, cross_bias, tokens, torch.tensor(position, device=tokens.device))

    processors = LogitsProcessors(s, input_ids, num_beams)
    steps = [] if s.return_dict_in_generate and s.output_scores else None
    start = torch.full((rows, 1), s.decoder_start_token_id, dtype=torch.long, device=encoder_hidden.device)
    if num_beams == 1:
        sequences, sequences_scores = _greedy(s, logits_for, processors, start, steps), None
    else:
        sequences, sequences_scores = _beam_search(s, config.vocab_size, logits_for, processors, cache, start,
                                                   batch, steps)
    if not s.return_dict_in_generate:
        return sequences
    return GenerateOutput(sequences=sequences, scores=None if steps is None else tuple(steps),
                          sequences_scores=sequences_scores if s.output_scores else None)


def _check_single_process(synced_gpus) -> None:
    """synced_gpus=True (HF's Trainer under FSDP or DeepSpeed ZeRO-3) asks every process to run each decode step
    together; led_torch's generate runs each process on its own, which gives the same tokens in one process only."""
    if not synced_gpus or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    world = torch.distributed.get_world_size()
    if world > 1:
        raise ValueError(f"synced_gpus=True with {world} processes is not supported: led_torch's generate does not "
                         "step processes together; generate with synced_gpus=False on an unsharded model")


def _greedy(s: GenerationSettings, logits_for, processors, sequences, steps):
    eos, pad, max_length = s.eos_token_id, s.pad_token_id, s.max_length
    unfinished = torch.ones(sequences.shape[0], dtype=torch.bool, device=sequences.device)
    while True:
        length = sequences.shape[1]
        scores = processors(sequences, logits_for(sequences[:, -1:], length - 1))
        if steps is not None:
            steps.append(scores)
        tokens = scores.argmax(dim=-1)
        if eos is not None:
            tokens = torch.where(unfinished, tokens, torch.full_like(tokens, pad))
        sequences = torch.cat([sequences, tokens[:, None]], dim=1)
        done = torch.full_like(unfinished, sequences.shape[1] >= max_length)
        if eos is not None:
            done |= tokens == eos
        unfinished &= ~done
        if not unfinished.any():
            return sequences


class Beams:
    """Beam bookkeeping for `batch` sources: the running hypotheses (batch, beams, max_length) and their summed
    log-probabilities, and the best finished ones so far with their length-penalised scores and lengths.
    Sequences are padded to max_length with `fill`; only the first `length` positions of a row are real."""

    def __init__(self, start: torch.Tensor, batch: int, beams: int, max_length: int, fill: int):
        device = start.device
        self.running = torch.full((batch, beams, max_length), fill, dtype=torch.long, device=device)
        self.running[:, :, 0] = start.view(batch, beams)
        self.running_scores = torch.zeros(batch, beams, device=device)
        self.running_scores[:, 1:] = _NEG  # all beams start equal: only the first may spread at step one
        self.finished = self.running.clone()
        self.finished_scores = torch.full((batch, beams), _NEG, device=device)
        self.finished_lengths = torch.zeros(batch, beams, dtype=torch.long, device=device)
        self.is_finished = torch.zeros(batch, beams, dtype=torch.bool, device=device)
        self.improvable = torch.ones(batch, 1, dtype=torch.bool, device=device)

    def best(self, num_return: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The `num_return` best finished hypotheses per source (batch * num_return, 1 + longest generated) and
        their scores."""
        batch, _, max_length = self.finished.shape
        out = self.finished[:, :num_return].reshape(batch * num_return, max_length)
        generated = int(self.finished_lengths[:, :num_return].max())
        return out[:, : 1 + generated], self.finished_scores[:, :num_return].reshape(-1)


def _beam_search(s: GenerationSettings, vocab, logits_for, processors, cache, start, batch, steps):
    """HF's vectorised beam search: keep 2*beams candidates per source, the best `beams` unfinished ones run
    on, finished ones (eos or max length) compete for `beams` slots by length-penalised score.
    Returns (sequences (batch * num_return, length), their length-normalised scores)."""
    beams, max_length = s.num_beams, s.max_length
    state = Beams(start, batch, beams, max_length, s.fill_token_id)
    length = 1
    while True:
        flat = state.running[:, :, :length].reshape(batch * beams, length)
        log_probs = processors(flat, F.log_softmax(logits_for(flat[:, -1:], length - 1), dim=-1))
        if steps is not None:
            steps.append(log_probs)
        top_scores, source_beam, candidates, hits = _candidates(s, state, log_probs.view(batch, beams, vocab),
                                                                length)
        origin = _advance_running(state, top_scores, source_beam, candidates, hits)
        _collect_finished(s, state, top_scores, candidates, hits, length)
        cache.reorder(origin.view(-1), length)
        length += 1
        state.improvable = _still_improvable(state.improvable, state.running_scores, state.finished_scores,
                                             state.is_finished, length, max_length, s.early_stopping,
                                             s.length_penalty)
        if not _go_on(s, state, hits):
            return state.best(s.num_return_sequences)


def _candidates(s: GenerationSettings, state: Beams, log_probs: torch.Tensor, length: int):
    """Candidate selection: the best 2 * beams continuations of each source over all its beams and tokens, by
    summed log-probability (twice the beams, so `beams` survive even if half of them stop). log_probs (batch,
    beams, vocab).

    -> their scores (batch, keep), source beams (batch, keep), sequences with the new token at `length` (batch,
    keep, max_length), and whether each stops here (eos, or max length reached) (batch, keep)."""
    batch, beams, vocab = log_probs.shape
    max_length = state.running.shape[2]
    keep = max(2, 1 + (s.eos_token_id is not None)) * beams
    totals = log_probs + state.running_scores[:, :, None]
    top_scores, top_index = torch.topk(totals.view(batch, beams * vocab), keep)
    source_beam = top_index // vocab
    candidates = torch.gather(state.running, 1, source_beam[:, :, None].expand(-1, -1, max_length)).clone()
    candidates[:, :, length] = top_index % vocab
    hits = torch.full_like(source_beam, length + 1 >= max_length, dtype=torch.bool)
    if s.eos_token_id is not None:
        hits |= candidates[:, :, length] == s.eos_token_id
    return top_scores, source_beam, candidates, hits


def _advance_running(state: Beams, top_scores, source_beam, candidates, hits) -> torch.Tensor:
    """The best `beams` candidates that did not stop become the running beams. -> for each new beam row, the
    cache row (over all sources, batch * beams) its history comes from: the cache reorder."""
    batch, beams, max_length = state.running.shape
    live_scores = top_scores + hits.float() * _NEG
    chosen = torch.topk(live_scores, beams).indices
    state.running = torch.gather(candidates, 1, chosen[:, :, None].expand(-1, -1, max_length))
    state.running_scores = torch.gather(live_scores, 1, chosen)
    offsets = torch.arange(batch, device=source_beam.device)[:, None] * beams
    return torch.gather(source_beam + offsets, 1, chosen)


def _collect_finished(s: GenerationSettings, state: Beams, top_scores, candidates, hits, length: int) -> None:
    """Finished hypotheses: candidates that stopped among the first `beams` compete with the finished ones for
    `beams` slots by length-penalised score (none enter for a source that can no longer improve, or, with
    early_stopping=True, whose slots are all taken)."""
    beams, max_length = state.running.shape[1], state.running.shape[2]
    first_beams = torch.arange(hits.shape[1], device=hits.device) < beams
    just_finished = hits & first_beams[None, :]
    scores = top_scores / (length ** s.length_penalty)  # length: tokens generated, the new one included
    full = state.is_finished.all(dim=-1, keepdim=True) & (s.early_stopping is True)
    scores = scores + full.float() * _NEG + (~state.improvable).float() * _NEG + (~just_finished).float() * _NEG
    merged_scores = torch.cat([state.finished_scores, scores], dim=1)
    best = torch.topk(merged_scores, beams).indices
    state.finished = torch.gather(torch.cat([state.finished, candidates], 1), 1,
                                  best[:, :, None].expand(-1, -1, max_length))
    state.finished_scores = torch.gather(merged_scores, 1, best)
    new_lengths = torch.full_like(hits, length, dtype=torch.long)
    state.finished_lengths = torch.gather(torch.cat([state.finished_lengths, new_lengths], 1), 1, best)
    state.is_finished = torch.gather(torch.cat([state.is_finished, just_finished], 1), 1, best)


def _go_on(s: GenerationSettings, state: Beams, hits: torch.Tensor) -> bool:
    """Another step unless no source can improve, every slot is finished under early_stopping=True, or every
    candidate stopped (max length)."""
    all_full = state.is_finished.all() & (s.early_stopping is True)
    return bool(state.improvable.any() & ~all_full & ~hits.all())


def _still_improvable(improvable, running_scores, finished_scores, is_finished, length, max_length,
                      early_stopping, length_penalty):
    """HF's early-stop heuristic: can the best running beam still beat the worst finished one?"""
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = max_length - 1
    else:
        best_length = length - 1
    best_running = running_scores[:, :1] / (best_length ** length_penalty)
    worst = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, finished_scores.new_tensor(_NEG))
    return improvable & (best_running > worst).any(dim=-1, keepdim=True)
