"""A tiny text encoder for the toy caption vocabulary: it plays Gemma's part for the tiny LTX-2.

Word-level tokens (unknown words become ``<unk>``; every caption starts with ``<bos>`` so even an empty
prompt has one token to attend to), learned token and position embeddings, a small pre-norm transformer,
and two projection heads: ``video_context (B, L, 128)`` and ``audio_context (B, L, 64)``, the widths the tiny
transformer's cross-attention takes (LTX-2.3 also projects captions per stream before the transformer).
It is trained with the transformer in pretraining and frozen afterwards, as Gemma is in LTX-2.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ltxic.models.codecs import CodecError, read_module_file, save_module
from ltxic.io.files import write_json_atomic

PAD, UNK, BOS = "<pad>", "<unk>", "<bos>"
SPECIALS = (PAD, UNK, BOS)
_TOKEN_RE = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")

TINY_TEXT_CONFIG: dict[str, Any] = {
    "width": 128, "layers": 2, "heads": 4, "ff_mult": 2, "max_len": 48, "video_dim": 128, "audio_dim": 64,
}


def split_words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks (``close-up`` stays one word)."""
    return _TOKEN_RE.findall(text.lower())


def build_vocab(texts: Iterable[str]) -> list[str]:
    """Special tokens, then every word of ``texts`` in sorted order (deterministic)."""
    words = sorted({w for t in texts for w in split_words(t)} - set(SPECIALS))
    return [*SPECIALS, *words]


class TextEncoder(nn.Module):
    """Captions -> ``(video_context (B,L,128), audio_context (B,L,64), mask (B,L) int64)``; 1 = real token."""

    kind = "ltxic.text_encoder"

    def __init__(self, config: dict[str, Any] | None = None, vocab: Sequence[str] | None = None) -> None:
        super().__init__()
        config = copy.deepcopy(config if config is not None else TINY_TEXT_CONFIG)
        if vocab is not None:
            config["vocab"] = list(vocab)
        vocab = config.get("vocab")
        if not vocab or list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise CodecError(f"TextEncoder: vocab must start with {list(SPECIALS)}; build it with ltxic.models.text_encoder.build_vocab(captions)")
        self.config = config
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        width = config["width"]
        self.max_len = config["max_len"]
        self.token_embedding = nn.Embedding(len(self.vocab), width)
        self.position_embedding = nn.Parameter(torch.zeros(self.max_len, width))
        layer = nn.TransformerEncoderLayer(
            width, config["heads"], width * config["ff_mult"], dropout=0.0, batch_first=True, norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config["layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.video_head = nn.Linear(width, config["video_dim"])
        self.audio_head = nn.Linear(width, config["audio_dim"])
        nn.init.normal_(self.token_embedding.weight, std=0.5)
        nn.init.normal_(self.position_embedding, std=0.1)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(B, L)`` (``<bos>`` first, ``<pad>`` after the end) and mask ``(B, L)`` int64."""
        if isinstance(texts, str):
            raise CodecError("TextEncoder.encode takes a list of captions, not one string: wrap it as [caption]")
        ids = []
        for text in texts:
            words = split_words(text)
            if len(words) + 1 > self.max_len:
                raise CodecError(f"caption has {len(words)} words, more than the text encoder's max_len - 1 = {self.max_len - 1}: shorten it")
            ids.append([self.index[BOS]] + [self.index.get(w, self.index[UNK]) for w in words])
        length = max(len(i) for i in ids)
        tokens = torch.full((len(ids), length), self.index[PAD], dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for row, seq in enumerate(ids):
            tokens[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        return tokens, mask

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.token_embedding(tokens) + self.position_embedding[: tokens.shape[1]]
        h = self.norm(self.blocks(h, src_key_padding_mask=mask == 0))
        return self.video_head(h), self.audio_head(h)

    def encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(video_context, audio_context, mask)`` on this module's device; padded positions are zeroed."""
        tokens, mask = self.tokenize(texts)
        device = self.token_embedding.weight.device
        return self.encode_tokens(tokens.to(device), mask.to(device))

    def encode_each(self, texts: Sequence[str], *, release: bool = False) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One :meth:`encode` per text, unpadded (the samplers' interface, shared with LTX-2.3's encoder; ``release``
        has nothing to free here)."""
        return [self.encode([text]) for text in texts]

    def encode_tokens(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`encode` from ids already made by :meth:`tokenize` (and on this module's device)."""
        video, audio = self(tokens, mask)
        keep = mask.unsqueeze(-1).to(video.dtype)
        return video * keep, audio * keep, mask

    def save(self, path: str | os.PathLike[str], half: bool = True) -> Path:
        """Weights as safetensors (config and vocab in the metadata) plus ``vocab.json`` beside them."""
        path = save_module(self, path, half=half)
        write_json_atomic(Path(path).with_name("vocab.json"), self.vocab)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> TextEncoder:
        tensors, meta = read_module_file(path, cls.kind)
        config = json.loads(meta["config"])
        vocab_path = Path(path).with_name("vocab.json")
        if vocab_path.exists():
            vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
            if vocab != config["vocab"]:
                raise CodecError(f"{vocab_path}: differs from the vocabulary stored in {path}; they were not saved together")
        model = cls(config)
        model.load_state_dict(tensors, strict=True)
        return model.eval().to(device)
