"""The layout explorer: which keys each query sees, as text, PNG (`pictures`) and an interactive HTML page
(`page`), and the `python -m led_ref` command line (`cli`).

The text report (`explorer`) is composed of: `examples` (masks and token kinds of a made-up input), `cells`
(what each (query, key) cell is), `grid` (the terminal grid for short inputs), `blocks` (the block overview for
long inputs), `compact` (which key each column of HF's compact rows holds), `batch_slots` (`--batch`), `reach`
(`--reach`), `from_model` (`--from-model`: a real model's attentions) and `ranges` (positions as short text)."""
