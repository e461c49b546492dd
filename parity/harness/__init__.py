"""The harness: run the same weights and inputs through two implementations and say where they differ.

strategies (hypothesis cases), malformed (damaged files), tolerances (the one budget table), compare and
report (per-output errors, first divergence, JSON, reproducers), implementations (the registry of sides:
led_ref, led_torch per backend, HF), check (model-level runs), generation (tie-aware token parity),
checkpoints (a real checkpoint and text), hypothesis_runs (one seed, one set of cases; bounded shrinking).
"""
