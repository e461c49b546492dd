"""Train the weights of the embedded default model (`led_ref.io.default_model`) and write them to
`led_ref/io/assets/default_model.safetensors`.

    python -m led_torch.train_default_model         # about 4 CPU minutes; deterministic (one thread, fixed seeds)

The task is synthetic and made from the default corpus, so that the encoder's window and its global token
both matter: every example is a span of one paragraph of `DEFAULT_CORPUS` with 15% of its tokens replaced by
`<mask>` (recovering them needs the neighbours: the window), and the target is the paragraph's title (its
first two words, which the span usually does not contain: only the whole input, gathered by the global
`<s>`, tells which paragraph it is) followed by ":" and the unmasked span, cut to the decoder's
`max_length` of 32 tokens. Global attention is on `<s>` (position 0), as in `python -m led_ref layout
--from-model`. The weights start from the seeded `led_ref.init.random_weights` of the default config and are
trained with Adam in float32 with dropout 0.1; the result is rounded to float32 and saved with safetensors.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import tempfile
import time

import numpy as np
import torch

from led_ref.init import random_weights
from led_ref.io import default_model
from led_ref.io.tokenizer import train_byte_level_bpe
from led_torch import LEDForConditionalGeneration

OUT = default_model.WEIGHTS_FILE
SEED = 20240601
MASK_RATE = 0.15
MAX_TARGET = 32  # the default config's max_length


def paragraphs() -> list[tuple[str, list[str]]]:
    """(title, words) of every paragraph of the corpus (and of DEFAULT_TEXT, titled by its own first words)."""
    out = []
    for text in (*default_model.DEFAULT_CORPUS, default_model.DEFAULT_TEXT):
        words = text.split()
        out.append((re.sub(r"[,.]$", "", " ".join(words[:2])), words))
    return out


def example(rng: np.random.Generator, tokenizer, paras) -> tuple[list[int], list[int]]:
    """(input ids with masks, label ids) of one random span."""
    title, words = paras[rng.integers(len(paras))]
    length = int(rng.integers(6, 40))
    start = int(rng.integers(0, max(1, len(words) - length)))
    span = " ".join(words[start:start + length])
    ids = tokenizer(span)["input_ids"]
    masked = list(ids)
    mask_id = tokenizer.convert_tokens_to_ids("<mask>")
    for k in range(1, len(ids) - 1):
        if rng.random() < MASK_RATE:
            masked[k] = mask_id
    target = tokenizer(f"{title}: {span}")["input_ids"]
    if len(target) > MAX_TARGET:
        target = target[:MAX_TARGET - 1] + [tokenizer.convert_tokens_to_ids("</s>")]
    return masked, target


def batch(rng, tokenizer, paras, size: int, pad: int):
    pairs = [example(rng, tokenizer, paras) for _ in range(size)]
    n, m = max(len(a) for a, _ in pairs), max(len(b) for _, b in pairs)
    ids = torch.full((size, n), pad, dtype=torch.long)
    mask = torch.zeros((size, n), dtype=torch.long)
    labels = torch.full((size, m), -100, dtype=torch.long)
    for r, (a, b) in enumerate(pairs):
        ids[r, :len(a)] = torch.tensor(a)
        mask[r, :len(a)] = 1
        labels[r, :len(b)] = torch.tensor(b)
    glob = torch.zeros_like(mask)
    glob[:, 0] = 1
    return ids, mask, glob, labels


def train(steps: int, batch_size: int = 16, lr: float = 3e-3, log_every: int = 100) -> dict[str, np.ndarray]:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    config = default_model.default_config()
    with tempfile.TemporaryDirectory() as folder:
        tokenizer = train_byte_level_bpe(default_model.DEFAULT_CORPUS, default_model.VOCAB_SIZE, folder,
                                         min_frequency=1)
    weights = random_weights(config, default_model.ARCHITECTURE, seed=default_model.WEIGHTS_SEED, dtype=np.float32)
    model = LEDForConditionalGeneration.from_weights(config, weights).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 100) * (1 - s / steps))
    rng = np.random.default_rng(SEED)
    paras = paragraphs()
    started = time.time()
    for step in range(steps):
        ids, mask, glob, labels = batch(rng, tokenizer, paras, batch_size, config.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - started:.0f} s", flush=True)
    tied = model._tied_names()
    return {name: t.detach().cpu().numpy().astype(np.float32) for name, t in model.state_dict().items()
            if name not in tied}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args(argv)
    from safetensors.numpy import save_file

    weights = train(args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(dict(sorted(weights.items())), str(args.out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
