"""Training options that change how, not what, is trained: length-grouped batches and gradient
checkpointing run every scope they apply to and still unlearn."""

from __future__ import annotations

import pytest
import torch

from obliviate import api
from obliviate.logprobs import sequence_nll


def forget_nll(model, tokenizer, records):
    from obliviate.data.encoding import encode_pair, pad_batch

    batch = pad_batch([encode_pair(tokenizer, r["question"], r["answer"]).as_dict() for r in records],
                      tokenizer.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    sums, counts = sequence_nll(logits, batch["labels"])
    return float((sums / counts).mean())


@pytest.mark.parametrize("scope", ["full", "lora"])
def test_grouped_batches_and_activation_checkpointing_still_unlearn(tiny_models, tiny_data, scope):
    from obliviate.models.loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(tiny_models.target)
    before = forget_nll(load_model(tiny_models.target), tokenizer, tiny_data.forget)
    rate = "5e-4" if scope == "full" else "5e-3"
    result = api.unlearn(tiny_models.target, tiny_data.forget, tiny_data.retain, method="npo",
                         overrides=[f"scope={scope}", "schedule.epochs=5", f"training.learning_rate={rate}",
                                    "training.batch_size=4", "training.group_by_length=true",
                                    "training.activation_checkpointing=true"], show_progress=False)
    model = result.model.merge_and_unload() if scope == "lora" else result.model
    model.eval()
    assert forget_nll(model, tokenizer, tiny_data.forget) > before + 0.5
