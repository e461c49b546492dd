"""HF transformers helpers (the `hf`/`test` extras): models (an HF LED built from the same weights, the oracle
side of `check --hf`), interop (convert between HF and led_torch models, swap HF's attention for a kernel)."""
