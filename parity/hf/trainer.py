"""HF's `Trainer` and `Seq2SeqTrainer` that save a led_torch model as HF saves its own (the `hf` extra).

HF's trainers train, evaluate and generate with a led_torch model as it is. Saving is the one step that asks for
HF's class: `Trainer._save` calls `save_pretrained` only on a `transformers.PreTrainedModel`, and writes any other
model's `state_dict()` with `safetensors.torch.save_file`, which refuses tied tensors (led_torch's embedding,
encoder/decoder `embed_tokens` and `lm_head` are one tensor, as in HF) and would leave no config.json. led_torch
cannot derive from `PreTrainedModel` (it never imports transformers), so these subclasses save it with its own
`save_pretrained`: config.json, generation_config.json and model.safetensors in HF's layout, which HF and both
packages load. Everything else is HF's:

    from parity.hf.trainer import Seq2SeqTrainer
    trainer = Seq2SeqTrainer(model=led_torch_model, args=Seq2SeqTrainingArguments(...), ...)
    trainer.train(); trainer.evaluate(); trainer.save_model("out/")
"""

from __future__ import annotations

import os

import torch
import transformers
from transformers.trainer import TRAINING_ARGS_NAME

from led_torch import LEDPreTrainedModel


class SavesLedTorch:
    """The `_save` of HF's trainers, with led_torch models written by their own `save_pretrained`."""

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        if not isinstance(model, LEDPreTrainedModel):
            super()._save(output_dir, state_dict)
            return
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        model.save_pretrained(output_dir, state_dict=state_dict)
        # what HF's _save writes next to the model: the tokenizer, and the training arguments
        tokenizer = self.processing_class or getattr(self.data_collator, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.save_pretrained(output_dir)
        torch.save(self.args, os.path.join(output_dir, TRAINING_ARGS_NAME))


class Trainer(SavesLedTorch, transformers.Trainer):
    """`transformers.Trainer`; `save_model` writes a led_torch model with its `save_pretrained`."""


class Seq2SeqTrainer(SavesLedTorch, transformers.Seq2SeqTrainer):
    """`transformers.Seq2SeqTrainer`; `save_model` writes a led_torch model with its `save_pretrained`."""
