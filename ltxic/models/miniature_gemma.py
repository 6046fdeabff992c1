"""The miniature Gemma 3 folder: a real SentencePiece tokenizer trained on caption-like English, the Hugging Face
side files, and Gemma weights with the multimodal checkpoint's key names (plus a stand-in for ComfyUI's single file)."""

from __future__ import annotations

import functools
import itertools
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from ltxic.io.files import atomic_path, write_json_atomic
from ltxic.models.safetensors_stream import TensorSpec, spec_nbytes
from ltxic.models.miniature_parts import Build, FULL_GEMMA_SHARDS, GEMMA_DIR_REL, GEMMA_HIDDEN, GEMMA_IMAGE_SIZE, GEMMA_LAYERS, GEMMA_MM_TOKENS, GEMMA_PATCH, GEMMA_USER_SYMBOLS, GEMMA_VOCAB, SCALES, ScaleSpec

# --------------------------------------------------------------------------------------------- Gemma


def _caption_corpus() -> list[str]:
    """Deterministic caption-like English, enough for a ~1k-piece BPE vocabulary."""
    subjects = ["A young woman", "An old man", "A smiling girl", "A tall boy", "The presenter", "A chef", "Two friends",
                "A singer", "The host", "A dancer", "A teacher", "A doctor"]
    actions = ["speaks to the camera", "walks along the beach", "laughs and waves", "sings softly", "turns slowly",
               "looks out of the window", "explains the recipe", "plays the guitar", "reads a letter aloud",
               "nods and smiles", "drinks a cup of coffee", "dances in the rain"]
    places = ["in a bright kitchen", "at sunset", "in a busy street", "on a quiet stage", "in a dark studio",
              "under soft warm light", "in the forest", "beside a river", "in a modern office", "at night"]
    extras = ["The camera slowly zooms in.", "Birds chirp in the background.", "Soft piano music plays.",
              "The scene is shot in close-up.", "A gentle breeze moves the curtains.", "People chat nearby.",
              "The lighting is cinematic and moody.", "Rain taps on the glass.", "The voice is calm and clear.",
              "Colors are warm and saturated.", "Numbers 0 1 2 3 4 5 6 7 8 9, punctuation: !?;'\"()-"]
    lines = [f"{s} {a} {p}. {e}" for s, a, p, e in itertools.product(subjects, actions, places, extras)]
    return lines[::7]


def _train_tokenizer(workdir: Path, vocab_size: int = GEMMA_VOCAB) -> Path:
    import sentencepiece as spm

    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(_caption_corpus()) + "\n", encoding="utf-8")
    prefix = workdir / "tokenizer"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=list(GEMMA_USER_SYMBOLS),
        num_threads=1,
        minloglevel=2,
    )
    return prefix.with_suffix(".model")


def _hf_tokenizer(spm_model: Path, chat_template: str) -> Any:
    """A Hugging Face ``GemmaTokenizerFast`` converted from the SentencePiece model (needs protobuf)."""
    from transformers import GemmaTokenizerFast

    tok = GemmaTokenizerFast(
        vocab_file=str(spm_model),
        extra_special_tokens={
            "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
        },
        chat_template=chat_template,
        add_bos_token=True,  # Gemma prepends <bos>
        add_eos_token=False,
    )
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    return tok


_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _token_ids(special_ids: dict[str, int]) -> dict[str, Any]:
    """The Gemma config's special-token fields for this tokenizer (Gemma's own ids: <pad>=0, <eos>=1, <bos>=2)."""
    return {
        "boi_token_index": special_ids["<start_of_image>"],
        "eoi_token_index": special_ids["<end_of_image>"],
        "image_token_index": special_ids["<image_soft_token>"],
        "eos_token_id": [1, special_ids["<end_of_turn>"]],
        "bos_token_id": 2,
        "pad_token_id": 0,
    }


def gemma_config(vocab_size: int, special_ids: dict[str, int], scale: str = "mini") -> Any:
    """The folder's Gemma 3 config: tiny, or (``scale="full"``) ltx-core's Gemma 3 12B (``GEMMA3_CONFIG_FOR_LTX``,
    vocabulary 262208, SigLIP 27 layers at 896 px) with the special-token ids of the folder's tokenizer."""
    from transformers import Gemma3Config

    if scale == "full":
        from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

        data = GEMMA3_CONFIG_FOR_LTX.to_dict()
        data.pop("transformers_version", None)
        data.update(_token_ids(special_ids))
        return Gemma3Config.from_dict(data)
    if scale != "mini":
        raise ValueError(f"unknown scale {scale!r}; valid: {', '.join(SCALES)}")
    return Gemma3Config(
        text_config={
            "hidden_size": GEMMA_HIDDEN,
            "num_hidden_layers": GEMMA_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "query_pre_attn_scalar": 32,
            "intermediate_size": 128,
            "vocab_size": vocab_size,
            "sliding_window": 16,
            "layer_types": ["sliding_attention", "full_attention"],  # Gemma 3's local/global pattern, shortened
            "max_position_embeddings": 2048,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "rope_theta": 1000000.0,
            "rope_local_base_freq": 10000.0,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": GEMMA_IMAGE_SIZE,
            "patch_size": GEMMA_PATCH,
            "vision_use_head": False,
        },
        mm_tokens_per_image=GEMMA_MM_TOKENS,
        **_token_ids(special_ids),
        torch_dtype="bfloat16",
        architectures=["Gemma3ForConditionalGeneration"],
    )


def gemma_checkpoint_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Keys of the multimodal QAT checkpoint (saved by transformers 4): the inverse of ltx-core's GEMMA_LLM_KEY_OPS.

    The real file nests the SigLIP tower as ``vision_tower.vision_model.*``; transformers 5 dropped that level from
    ``SiglipVisionModel`` (its own loader strips it), so under transformers 5 a loader that uses ltx-core's key ops
    must also map ``vision_tower.vision_model.`` to ``vision_tower.``. The miniature keeps the real names.
    """
    return dict(_gemma_checkpoint_items(model))


def _gemma_checkpoint_items(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    renames = (
        ("model.language_model.", "language_model.model."),
        ("model.vision_tower.vision_model.", "vision_tower.vision_model."),  # transformers 4 module layout
        ("model.vision_tower.", "vision_tower.vision_model."),  # transformers 5 module layout
        ("model.multi_modal_projector.", "multi_modal_projector."),
    )
    for key, value in model.state_dict().items():
        if key == "lm_head.weight":  # tied to embed_tokens; ltx-core duplicates it back
            continue
        for src, dst in renames:
            if key.startswith(src):
                yield dst + key[len(src):], value
                break
        else:
            raise KeyError(f"unexpected Gemma parameter {key}")



@functools.lru_cache(maxsize=1)
def _tokenizer_bundle() -> tuple[tuple[tuple[str, bytes], ...], int, tuple[tuple[str, int], ...]]:
    """The trained tokenizer's files (Hugging Face + SentencePiece), its length and the special ids (deterministic)."""
    with tempfile.TemporaryDirectory() as tmpdir:
        work = Path(tmpdir)
        spm_model = _train_tokenizer(work)
        tok = _hf_tokenizer(spm_model, _CHAT_TEMPLATE)
        hf_dir = work / "hf"
        tok.save_pretrained(str(hf_dir))
        shutil.copyfile(spm_model, hf_dir / "tokenizer.model")
        files = tuple((p.name, p.read_bytes()) for p in sorted(hf_dir.iterdir()) if p.is_file())
        special = tuple((s, int(tok.convert_tokens_to_ids(s))) for s in GEMMA_USER_SYMBOLS)
        return files, len(tok), special


def gemma_config_for(spec: ScaleSpec) -> Any:
    _, vocab, special = _tokenizer_bundle()
    return gemma_config(vocab, dict(special), scale=spec.gemma_scale)


def write_gemma_side_files(folder: Path, spec: ScaleSpec) -> None:
    """Everything in the Gemma folder but the weights: tokenizer, image processor, processor and model configs."""
    from transformers import Gemma3ImageProcessor

    files, _, _ = _tokenizer_bundle()
    with tempfile.TemporaryDirectory() as tmpdir:
        Gemma3ImageProcessor(
            size={"height": spec.gemma_image_size, "width": spec.gemma_image_size},
            image_mean=[0.5, 0.5, 0.5],
            image_std=[0.5, 0.5, 0.5],
            do_pan_and_scan=False,
        ).save_pretrained(tmpdir)
        files += tuple((p.name, p.read_bytes()) for p in sorted(Path(tmpdir).iterdir()) if p.is_file())
    for name, data in files:
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
    # the real folder has it; write it in full whatever the transformers version wrote
    write_json_atomic(folder / "special_tokens_map.json", {
        "bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
        "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>",
    })
    write_json_atomic(folder / "processor_config.json",
                      {"image_seq_length": spec.gemma_mm_tokens, "processor_class": "Gemma3Processor"})
    write_json_atomic(folder / "config.json", gemma_config_for(spec).to_dict())


def gemma_part(config: Any, b: Build) -> Iterator[tuple[str, torch.Tensor]]:
    from transformers import Gemma3ForConditionalGeneration

    with b.modules():
        model = Gemma3ForConditionalGeneration(config).eval()
    yield from _gemma_checkpoint_items(model)


def gemma_shards(spec: ScaleSpec, specs: Mapping[str, TensorSpec]) -> dict[str, str]:
    """Which shard holds each key: the miniature's two (language model | the rest), or 5 of about equal size."""
    if spec.gemma_scale == "mini":
        return {k: f"{GEMMA_DIR_REL}/model-0000{1 if k.startswith('language_model.') else 2}-of-00002.safetensors"
                for k in specs}
    n = FULL_GEMMA_SHARDS
    total = sum(spec_nbytes(s) for s in specs.values()) or 1
    out, cum = {}, 0
    for k in sorted(specs):
        size = spec_nbytes(specs[k])
        index = min(n - 1, (2 * cum + size) * n // (2 * total))
        out[k] = f"{GEMMA_DIR_REL}/model-{index + 1:05d}-of-{n:05d}.safetensors"
        cum += size
    return out
