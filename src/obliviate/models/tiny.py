"""The embedded tiny model: a byte-level BPE tokenizer trained on the corpus and a small Llama.

Sizes follow measurements on a 2-core CPU (see docs/benchmark.md): a 128-wide, 2-layer Llama with
tied embeddings memorises ~1,000 QA pairs in a minute or two in fp32.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

PAD, EOS = "<pad>", "</s>"


@dataclass(frozen=True)
class TinyModelConfig:
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 384
    max_position_embeddings: int = 128
    vocab_size: int = 2048

    def as_dict(self) -> dict:
        return asdict(self)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_frequency: int = 2) -> Any:
    """Train a byte-level BPE on ``texts`` and wrap it as a regular HF fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   model_max_length=512)


def build_tiny_llama(tokenizer: Any, config: TinyModelConfig, seed: int = 0) -> Any:
    """A randomly initialised LlamaForCausalLM sized for the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(llama)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
