"""Everything around the model that is not its math: config, HF parameter names, checkpoint files, the
tokenizer, generation settings, output containers, input validation and the embedded default model.

led_torch takes its I/O and policy from here (docs/architecture.md), so both packages read a checkpoint,
resolve generation defaults and reject bad input the same way.
"""
