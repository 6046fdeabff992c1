"""The miniature of LTX-2.3's official files loads through ltx-core's own real loading path on a CPU."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import torch
from ltx_core.guidance.perturbations import BatchedPerturbationConfig
from ltx_core.loader.sd_ops import LTXV_LORA_COMFY_RENAMING_MAP, SDOps
from ltx_core.loader.sft_loader import SafetensorsModelStateDictLoader
from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
from ltx_core.model.audio_vae import (
    AUDIO_VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER,
    VOCODER_COMFY_KEYS_FILTER,
)
from ltx_core.model.audio_vae.ops import AudioProcessor
from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator
from ltx_core.model.transformer.modality import Modality
from ltx_core.model.video_vae import VAE_DECODER_COMFY_KEYS_FILTER, VAE_ENCODER_COMFY_KEYS_FILTER
from ltx_core.text_encoders.gemma.embeddings_connector import (
    AudioEmbeddings1DConnectorConfigurator,
    Embeddings1DConnectorConfigurator,
)
from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
from ltx_core.text_encoders.gemma.encoders.encoder_configurator import EMBEDDINGS_PROCESSOR_KEY_OPS, GEMMA_LLM_KEY_OPS
from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2
from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer
from ltx_core.types import Audio
from ltx_pipelines.utils.model_ledger import ModelLedger
from safetensors import safe_open

import ltxic
from ltxic.models import miniature, miniature_parts, safetensors_stream
from ltxic.models.miniature import MiniatureFiles, build_miniature
from ltxic.models.miniature_parts import official_config

pytestmark = pytest.mark.usefixtures("one_thread")

CPU = torch.device("cpu")
PUBLISHED_PREFIXES = {
    "model.diffusion_model.", "vae.encoder.", "vae.decoder.", "vae.per_channel_statistics.", "audio_vae.encoder.",
    "audio_vae.decoder.", "audio_vae.per_channel_statistics.", "vocoder.", "text_embedding_projection.",
}
LTX_FILTERS: tuple[SDOps, ...] = (
    LTXV_MODEL_COMFY_RENAMING_MAP, VAE_ENCODER_COMFY_KEYS_FILTER, VAE_DECODER_COMFY_KEYS_FILTER,
    AUDIO_VAE_ENCODER_COMFY_KEYS_FILTER, AUDIO_VAE_DECODER_COMFY_KEYS_FILTER, VOCODER_COMFY_KEYS_FILTER,
    EMBEDDINGS_PROCESSOR_KEY_OPS,
)


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> MiniatureFiles:
    return build_miniature(tmp_path_factory.mktemp("comfyui"), seed=0)


@pytest.fixture(scope="module")
def ledger(mini: MiniatureFiles) -> ModelLedger:
    return ModelLedger(dtype=torch.float32, device=CPU, checkpoint_path=str(mini.checkpoint),
                       spatial_upsampler_path=str(mini.spatial_upscaler))


def keys(path: Path) -> list[str]:
    with safe_open(str(path), "pt") as f:
        return list(f.keys())


def assert_materialised(model: torch.nn.Module) -> None:
    on_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    assert not on_meta, on_meta[:10]


def key_tree(d: Any, prefix: str = "") -> set[str]:
    if not isinstance(d, dict):
        return set()
    return {f"{prefix}{k}" for k in d} | {p for k, v in d.items() for p in key_tree(v, f"{prefix}{k}.")}


def test_tree_layout_and_size(mini: MiniatureFiles) -> None:
    rel = {p.relative_to(mini.root).as_posix() for p in mini.all_files()}
    for expected in (
        "models/checkpoints/ltx-2.3-22b-dev.safetensors",
        "models/latent_upscale_models/ltx-2.3-spatial-upscaler-x2-1.1.safetensors",
        "models/latent_upscale_models/ltx-2.3-temporal-upscaler-x2-1.0.safetensors",
        "models/loras/ltx-2.3-22b-distilled-lora-384-1.1.safetensors",
        "models/text_encoders/gemma_3_12B_it_fp4_mixed.safetensors",
        "models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/model-00001-of-00002.safetensors",
        "models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/model-00002-of-00002.safetensors",
        "models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/model.safetensors.index.json",
        "models/text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/tokenizer.model",
    ):
        assert expected in rel
    assert sum(p.stat().st_size for p in mini.all_files()) < 20e6
    assert not [p for p in mini.root.rglob("*.tmp")]


def test_deterministic(mini: MiniatureFiles, tmp_path: Path) -> None:
    again = build_miniature(tmp_path, seed=0)
    assert again.checkpoint.read_bytes() == mini.checkpoint.read_bytes()
    assert again.distilled_lora.read_bytes() == mini.distilled_lora.read_bytes()
    shard = "model-00001-of-00002.safetensors"
    assert (again.gemma_dir / shard).read_bytes() == (mini.gemma_dir / shard).read_bytes()


def test_checkpoint_keys_are_the_published_components(mini: MiniatureFiles) -> None:
    all_keys = keys(mini.checkpoint)
    prefixes = {p for p in PUBLISHED_PREFIXES if any(k.startswith(p) for k in all_keys)}
    assert prefixes == PUBLISHED_PREFIXES
    assert all(any(k.startswith(p) for p in PUBLISHED_PREFIXES) for k in all_keys)
    orphans = [k for k in all_keys if all(f.apply_to_key(k) is None for f in LTX_FILTERS)]
    assert not orphans
    assert any(k.startswith("model.diffusion_model.video_embeddings_connector.") for k in all_keys)
    assert any(k.startswith("model.diffusion_model.audio_embeddings_connector.") for k in all_keys)
    assert any(k.startswith("vocoder.vocoder.") for k in all_keys)
    assert any(k.startswith("vocoder.bwe_generator.") for k in all_keys)
    with safe_open(str(mini.checkpoint), "pt") as f:
        assert json.loads(f.metadata()["config"]) == miniature_parts.MINIATURE_CONFIG
        assert {f.get_slice(k).get_dtype() for k in all_keys} == {"BF16"}
        std = f.get_tensor("vae.per_channel_statistics.std-of-means").float()
        assert ((std > 0.5) & (std < 2)).all()


def test_config_has_the_official_schema() -> None:
    official, mini_cfg = official_config(), miniature_parts.MINIATURE_CONFIG
    assert official["transformer"]["num_layers"] == 48 and official["vae"]["latent_channels"] == 128
    assert set(mini_cfg) == set(official)
    for section in official:
        extra = key_tree(mini_cfg[section]) - key_tree(official[section])
        assert key_tree(official[section]) <= key_tree(mini_cfg[section]), section
        assert extra == ({"audio_in_channels"} if section == "transformer" else set()), section
    t = mini_cfg["transformer"]
    for key, value in official["transformer"].items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            assert t[key] == value, key  # structural choices (strings, flags, lists) are kept
    blocks = lambda cfg, k: [name for name, _ in cfg["vae"][k]]  # noqa: E731
    assert blocks(mini_cfg, "encoder_blocks") == blocks(official, "encoder_blocks")
    assert blocks(mini_cfg, "decoder_blocks") == blocks(official, "decoder_blocks")
    assert mini_cfg["vocoder"]["bwe"]["output_sampling_rate"] == 48000


def test_ltx_core_builds_and_runs_every_part(ledger: ModelLedger) -> None:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        encoder = ledger.video_encoder()
        assert_materialised(encoder)
        latent = encoder(torch.rand(1, 3, 9, 64, 64, generator=gen) * 2 - 1)
        assert latent.shape == (1, 16, 2, 2, 2) and torch.isfinite(latent).all()

        decoder = ledger.video_decoder()
        assert_materialised(decoder)
        video = decoder(latent)
        assert video.shape == (1, 3, 9, 64, 64) and torch.isfinite(video).all()

        upsampler = ledger.spatial_upsampler()
        assert_materialised(upsampler)
        up = upsampler(latent)
        assert up.shape == (1, 16, 2, 4, 4) and torch.isfinite(up).all()

        cfg = miniature_parts.MINIATURE_CONFIG["audio_vae"]
        processor = AudioProcessor(target_sample_rate=16000, mel_bins=64, mel_hop_length=160, n_fft=1024)
        t = torch.arange(16000) / 16000
        wave = torch.stack([torch.sin(2 * torch.pi * 440 * t), torch.sin(2 * torch.pi * 220 * t)])[None] * 0.3
        mel = processor.waveform_to_mel(Audio(waveform=wave, sampling_rate=16000))
        assert mel.shape[:2] == (1, 2) and mel.shape[-1] == cfg["model"]["params"]["ddconfig"]["mel_bins"]
        audio_encoder = ledger.audio_encoder()
        assert_materialised(audio_encoder)
        audio_latent = audio_encoder(mel)
        assert audio_latent.shape[:2] == (1, miniature_parts.AUDIO_Z) and audio_latent.shape[-1] == 16
        assert torch.isfinite(audio_latent).all()

        audio_decoder = ledger.audio_decoder()
        assert_materialised(audio_decoder)
        mel_out = audio_decoder(audio_latent)
        assert mel_out.shape[:2] == (1, 2) and mel_out.shape[-1] == 64 and torch.isfinite(mel_out).all()

        vocoder = ledger.vocoder()
        assert_materialised(vocoder)
        assert vocoder.output_sampling_rate == 48000
        wav = vocoder(mel_out)
        assert wav.shape[:2] == (1, 2) and torch.isfinite(wav).all()
        assert wav.shape[-1] == mel_out.shape[2] * 160 * 3  # hop 160 at 16 kHz, then 16 -> 48 kHz

        transformer = ledger.transformer().velocity_model
        assert_materialised(transformer)
        vx, ax = run_transformer(transformer, latent, audio_latent)
        assert vx.shape == (1, 8, 16) and torch.isfinite(vx).all()
        assert ax.shape == (1, audio_latent.shape[2], 32) and torch.isfinite(ax).all()


def run_transformer(model: torch.nn.Module, latent: torch.Tensor, audio_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = miniature_parts.MINIATURE_CONFIG["transformer"]
    v_tok, v_pos = ltxic.video_tokens(latent, fps=24.0)
    a_tok, a_pos = ltxic.audio_tokens(audio_latent)
    sigma = torch.tensor([0.7])
    gen = torch.Generator().manual_seed(1)
    video = Modality(latent=v_tok, sigma=sigma, timesteps=sigma.expand(1, v_tok.shape[1]), positions=v_pos,
                     context=torch.randn(1, 5, t["cross_attention_dim"], generator=gen))
    audio = Modality(latent=a_tok, sigma=sigma, timesteps=sigma.expand(1, a_tok.shape[1]), positions=a_pos,
                     context=torch.randn(1, 5, t["audio_cross_attention_dim"], generator=gen))
    return model(video, audio, BatchedPerturbationConfig.empty(1))


def test_gemma_folder_loads_offline(mini: MiniatureFiles) -> None:
    from transformers import AutoImageProcessor, AutoTokenizer, Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor

    folder = str(mini.gemma_dir)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert [tok.pad_token_id, tok.eos_token_id, tok.bos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    ids = tok("A young woman speaks to the camera at sunset.").input_ids
    assert ids[0] == 2 and 3 not in ids and len(ids) < 20
    assert tok.decode(ids, skip_special_tokens=True) == "A young woman speaks to the camera at sunset."

    ltx_tok = LTXVGemmaTokenizer(folder, 1024)
    pairs = ltx_tok.tokenize_with_weights("A chef sings softly.")["gemma"]
    assert len(pairs) == 1024 and pairs[0] == (0, 0) and pairs[-1][1] == 1

    image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    pixels = image_processor(torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8), return_tensors="pt").pixel_values
    assert pixels.shape == (1, 3, 28, 28)
    Gemma3Processor(image_processor=image_processor, tokenizer=tok)

    config = Gemma3Config.from_pretrained(folder, local_files_only=True)
    assert config.text_config.vocab_size == len(tok)
    encoder = GemmaTextEncoder(model=Gemma3ForConditionalGeneration(config))
    key_ops = GEMMA_LLM_KEY_OPS
    if not hasattr(encoder.model.model.vision_tower, "vision_model"):
        # transformers 5 dropped SiglipVisionModel's `vision_model` level; the real (and miniature) file has it.
        key_ops = key_ops.with_replacement("vision_tower.vision_model.", "vision_tower.")
    shards = sorted(str(p) for p in mini.gemma_dir.glob("model-*.safetensors"))
    index = json.loads((mini.gemma_dir / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == [Path(s).name for s in shards]
    prefixes = {k.split(".")[0] + "." + k.split(".")[1] for k in index["weight_map"]}
    assert prefixes == {"language_model.model", "vision_tower.vision_model", "multi_modal_projector.mm_input_projection_weight",
                        "multi_modal_projector.mm_soft_emb_norm"}
    sd = SafetensorsModelStateDictLoader().load(shards, sd_ops=key_ops, device=CPU).sd
    result = encoder.load_state_dict(sd, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.equal(encoder.model.lm_head.weight, encoder.model.model.language_model.embed_tokens.weight)

    encoder.float().eval()
    with torch.no_grad():
        out = encoder.model.model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    hidden = out.hidden_states
    assert len(hidden) == config.text_config.num_hidden_layers + 1
    assert all(h.shape == (1, len(ids), config.text_config.hidden_size) and torch.isfinite(h).all() for h in hidden)

    # The checkpoint's text projection + connectors (ltx-core's classes at the miniature's sizes) take them.
    processor = miniature_embeddings_processor(mini, config.text_config.hidden_size, len(hidden))
    mask = torch.ones(1, len(ids), dtype=torch.long)
    pad = 128 - len(ids)  # the connectors' 128 learnable registers need a multiple-of-128 sequence (left padding)
    padded = tuple(torch.nn.functional.pad(h, (0, 0, pad, 0)) for h in hidden)
    with torch.no_grad():
        emb = processor.process_hidden_states(padded, torch.nn.functional.pad(mask, (pad, 0)))
    assert emb.video_encoding.shape == (1, 128, 64) and emb.audio_encoding.shape == (1, 128, 32)
    assert torch.isfinite(emb.video_encoding).all() and torch.isfinite(emb.audio_encoding).all()


def miniature_embeddings_processor(mini: MiniatureFiles, gemma_hidden: int, gemma_states: int) -> EmbeddingsProcessor:
    """ltx-core's EmbeddingsProcessorConfigurator hard-codes the 12B Gemma; build the same classes at our sizes."""
    cfg = miniature_parts.MINIATURE_CONFIG
    t = cfg["transformer"]
    flat = gemma_hidden * gemma_states
    processor = EmbeddingsProcessor(
        feature_extractor=FeatureExtractorV2(
            video_aggregate_embed=torch.nn.Linear(flat, t["num_attention_heads"] * t["attention_head_dim"]),
            embedding_dim=gemma_hidden,
            audio_aggregate_embed=torch.nn.Linear(flat, t["audio_num_attention_heads"] * t["audio_attention_head_dim"]),
        ),
        video_connector=Embeddings1DConnectorConfigurator.from_config(cfg),
        audio_connector=AudioEmbeddings1DConnectorConfigurator.from_config(cfg),
    )
    sd = SafetensorsModelStateDictLoader().load([str(mini.checkpoint)], sd_ops=EMBEDDINGS_PROCESSOR_KEY_OPS, device=CPU).sd
    result = processor.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    assert not result.missing_keys and not result.unexpected_keys
    return processor.eval()


def test_comfy_single_file_gemma_stand_in(mini: MiniatureFiles) -> None:
    with safe_open(str(mini.comfy_gemma), "pt") as f:
        assert all(k.startswith("model.") for k in f.keys()) and not f.metadata()
    assert mini.comfy_gemma.suffix == ".safetensors" and mini.comfy_gemma.is_file()


def test_temporal_upscaler_builds(mini: MiniatureFiles) -> None:
    from ltx_core.model.upsampler import LatentUpsamplerConfigurator

    model = SingleGPUModelBuilder(model_class_configurator=LatentUpsamplerConfigurator,
                                  model_path=str(mini.temporal_upscaler)).build(device=CPU, dtype=torch.float32)
    assert_materialised(model)
    with torch.no_grad():
        out = model(torch.randn(1, 16, 2, 2, 2))
    assert out.shape[2] > 2 and out.shape[3:] == (2, 2) and torch.isfinite(out).all()


def test_distilled_lora_fuses_through_ltx_core(mini: MiniatureFiles) -> None:
    lora_keys = keys(mini.distilled_lora)
    assert lora_keys and all(k.startswith("diffusion_model.transformer_blocks.") for k in lora_keys)
    builder = SingleGPUModelBuilder(model_class_configurator=LTXModelConfigurator, model_path=str(mini.checkpoint),
                                    model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP)
    base = builder.build(device=CPU, dtype=torch.float32).state_dict()
    fused_model = builder.lora(str(mini.distilled_lora), 1.0, LTXV_LORA_COMFY_RENAMING_MAP).build(device=CPU, dtype=torch.float32)
    assert_materialised(fused_model)
    fused = fused_model.state_dict()
    targets = {k.removeprefix("diffusion_model.").replace(".lora_A.weight", ".weight") for k in lora_keys if ".lora_A." in k}
    changed = {k for k in base if not torch.equal(base[k], fused[k])}
    assert changed == targets


# --------------------------------------------------------------------------------------------- full scale (plan only)


def test_streaming_writer_matches_save_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    tensors = {
        "b.bf16": torch.randn(3, 5, generator=gen).to(torch.bfloat16),
        "a.f32": torch.randn(7, generator=gen),
        "c.f16": torch.randn(2, 2, 2, generator=gen).half(),
        "d.i64": torch.arange(6).reshape(2, 3),
        "e.i32": torch.arange(5, dtype=torch.int32),
        "f.u8": torch.arange(9, dtype=torch.uint8),
        "g.i8": -torch.arange(4, dtype=torch.int8),
        "h.bool": torch.tensor([True, False, True]),
        "i.f64": torch.randn(4, generator=gen, dtype=torch.float64),
        "j.scalar": torch.tensor(1.5),
        "k.empty": torch.zeros(0, 4),
        "l.transposed": torch.randn(4, 3, generator=gen).t(),  # not contiguous
        "m.é-unicode/name": torch.ones(2, dtype=torch.bfloat16),
    }
    metadata = {"config": json.dumps({"x": [1, 2], "s": "é\n\"q\""}), "format": "pt"}
    reference, streamed = tmp_path / "ref.safetensors", tmp_path / "streamed.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(reference), metadata=metadata)
    specs = {k: (v.dtype, tuple(v.shape)) for k, v in tensors.items()}
    with safetensors_stream.StreamingSafetensorsWriter(streamed, specs, metadata, max_pending_bytes=16) as writer:
        for k in sorted(tensors, reverse=True):  # any order
            writer.write(k, tensors[k])
    # same header (as JSON: safetensors writes the metadata from a hash map, so its key order varies between
    # processes) and byte-identical data
    ours, theirs = streamed.read_bytes(), reference.read_bytes()
    n = int.from_bytes(theirs[:8], "little")
    assert ours[:8] == theirs[:8]
    assert json.loads(ours[8:8 + n]) == json.loads(theirs[8:8 + n])
    assert ours[8 + n:] == theirs[8 + n:]
    assert safetensors_stream.safetensors_size(specs, metadata) == streamed.stat().st_size
    with safe_open(str(streamed), "pt") as f:
        assert f.metadata() == metadata
        for k, v in tensors.items():
            assert torch.equal(f.get_tensor(k), v)

    # no metadata, floats converted to the planned dtype on write
    plain = {"w": torch.randn(3, 4, generator=gen), "v": torch.arange(3)}
    save_file({"w": plain["w"].to(torch.bfloat16), "v": plain["v"]}, str(reference))
    with safetensors_stream.StreamingSafetensorsWriter(streamed, {"w": (torch.bfloat16, (3, 4)), "v": (torch.int64, (3,))}) as w:
        w.write("v", plain["v"])
        w.write("w", plain["w"])
    # same header (as JSON: safetensors writes the metadata from a hash map, so its key order varies between
    # processes) and byte-identical data
    ours, theirs = streamed.read_bytes(), reference.read_bytes()
    n = int.from_bytes(theirs[:8], "little")
    assert ours[:8] == theirs[:8]
    assert json.loads(ours[8:8 + n]) == json.loads(theirs[8:8 + n])
    assert ours[8 + n:] == theirs[8 + n:]


def test_streaming_writer_refuses_incomplete_or_wrong_tensors(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    specs = {"a": (torch.float32, (2,)), "b": (torch.float32, (3,))}
    with pytest.raises(ValueError, match="never written"):
        with safetensors_stream.StreamingSafetensorsWriter(path, specs) as w:
            w.write("a", torch.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        with safetensors_stream.StreamingSafetensorsWriter(path, specs) as w:
            w.write("a", torch.zeros(3))
    assert not path.exists() and not list(tmp_path.iterdir())  # nothing half-written survives


def test_mini_plan_matches_the_files(mini: MiniatureFiles) -> None:
    plan = miniature.plan_files("mini")
    assert miniature.plan_tree("mini") == {rel: fp.nbytes for rel, fp in sorted(plan.items())}
    on_disk = {p.relative_to(mini.root).as_posix() for p in mini.all_files() if p.suffix == ".safetensors"}
    assert set(plan) == on_disk
    for rel, fp in plan.items():
        assert (mini.root / rel).stat().st_size == fp.nbytes, rel
        with safe_open(str(mini.root / rel), "pt") as f:
            assert set(f.keys()) == set(fp.tensors)
            assert all(list(f.get_slice(k).get_shape()) == list(fp.tensors[k][1]) for k in f.keys())


@pytest.fixture(scope="module")
def full_plan() -> dict[str, miniature.FilePlan]:
    return miniature.plan_files("full")  # meta device: allocates nothing (~10 s)


def test_full_scale_plan_is_the_official_architecture(full_plan: dict[str, miniature.FilePlan], mini: MiniatureFiles) -> None:
    from ltx_core.text_encoders.gemma.config import GEMMA3_CONFIG_FOR_LTX

    ckpt = full_plan[miniature.CHECKPOINT_REL]
    assert ckpt.parts["transformer"] == 18_988_838_144  # the ltx-2.3-22b preset of ltxic.models.transformer
    assert ckpt.metadata == {"config": json.dumps(official_config())}
    assert 45e9 < ckpt.nbytes < 47e9
    assert {dtype for dtype, _ in ckpt.tensors.values()} == {torch.bfloat16}
    t = official_config()["transformer"]
    assert ckpt.tensors["model.diffusion_model.patchify_proj.weight"][1] == (4096, 128)
    assert ckpt.tensors["text_embedding_projection.video_aggregate_embed.weight"][1] == (4096, 3840 * 49)
    assert f"model.diffusion_model.transformer_blocks.{t['num_layers'] - 1}.attn1.to_q.weight" in ckpt.tensors

    shards = {rel: fp for rel, fp in full_plan.items() if rel.startswith(miniature.GEMMA_DIR_REL + "/")}
    assert sorted(Path(rel).name for rel in shards) == [f"model-0000{i}-of-00005.safetensors" for i in range(1, 6)]
    assert 23.5e9 < sum(fp.nbytes for fp in shards.values()) < 25e9
    assert all(fp.metadata == {"format": "pt"} for fp in shards.values())
    gemma = {k: s for fp in shards.values() for k, s in fp.tensors.items()}
    text = GEMMA3_CONFIG_FOR_LTX.text_config
    assert gemma["language_model.model.embed_tokens.weight"][1] == (text.vocab_size, text.hidden_size)
    assert f"language_model.model.layers.{text.num_hidden_layers - 1}.mlp.down_proj.weight" in gemma
    assert "vision_tower.vision_model.encoder.layers.26.mlp.fc2.weight" in gemma
    assert "vision_tower.vision_model.encoder.layers.27.mlp.fc2.weight" not in gemma

    lora = full_plan[miniature.DISTILLED_LORA_REL]
    assert 7e9 < lora.nbytes < 8.5e9
    assert lora.tensors["diffusion_model.transformer_blocks.0.attn1.to_q.lora_A.weight"][1] == (384, 4096)
    for rel in (miniature.SPATIAL_UPSCALER_REL, miniature.TEMPORAL_UPSCALER_REL):
        assert json.loads(full_plan[rel].metadata["config"])["mid_channels"] == 512
        assert 0.1e9 < full_plan[rel].nbytes < 1e9
    assert 75e9 < sum(fp.nbytes for fp in full_plan.values()) < 82e9

    # same key names as the miniature, only more layers
    def shape_free(names: Iterable[str]) -> set[str]:
        return {re.sub(r"\.\d+\.", ".N.", re.sub(r"\.\d+\.", ".N.", k)) for k in names}

    for rel in (miniature.CHECKPOINT_REL, miniature.DISTILLED_LORA_REL, miniature.SPATIAL_UPSCALER_REL):
        assert shape_free(keys(mini.root / rel)) == shape_free(full_plan[rel].tensors), rel
    mini_gemma = [k for p in mini.gemma_dir.glob("model-*.safetensors") for k in keys(p)]
    assert shape_free(mini_gemma) == shape_free(gemma)


def test_main_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert miniature.main(["--plan"]) == 0
    out = capsys.readouterr().out
    assert "ltx-2.3-22b-dev.safetensors" in out and "weights in all" in out


def test_random_transformer_is_the_loaded_one_without_the_file(mini: MiniatureFiles) -> None:
    """``random_transformer`` (benchmarks build 22B in seconds with it) gives the model ``load_transformer`` builds
    from the checkpoint: same parameter names, shapes and dtypes, with and without fp8, and it runs."""
    from ltxic.models.ltx23 import load_transformer

    for fp8 in (False, True):
        loaded = load_transformer(mini.checkpoint, dtype=torch.bfloat16, fp8=fp8)
        made = miniature_parts.random_transformer("mini", dtype=torch.bfloat16, fp8=fp8)
        want = {k: (tuple(v.shape), v.dtype) for k, v in loaded.state_dict().items()}
        assert {k: (tuple(v.shape), v.dtype) for k, v in made.state_dict().items()} == want
        assert made.ltxic_config == loaded.ltxic_config
        linear = made.transformer_blocks[0].attn1.to_q
        assert ("forward" in linear.__dict__) == fp8  # ltx-core's upcast per matmul, as the loader sets it
        assert (linear.bias.dtype == torch.float8_e4m3fn) == fp8  # the policy stores biases in fp8 too ...
        assert made.transformer_blocks[0].attn1.to_gate_logits.weight.dtype == torch.bfloat16  # ... but not the gates


def test_random_transformer_weights_depend_on_the_seed_alone() -> None:
    """Two benchmark variants in separate processes must train the same base: whatever the global RNG drew before."""
    torch.manual_seed(1)
    first = miniature_parts.random_transformer("mini", dtype=torch.float32, seed=3).state_dict()
    torch.rand(10)  # the global RNG moves on
    second = miniature_parts.random_transformer("mini", dtype=torch.float32, seed=3).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    other = miniature_parts.random_transformer("mini", dtype=torch.float32, seed=4).state_dict()
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_comfy_scale_has_comfyuis_latent_sizes_and_stays_narrow(mini: MiniatureFiles) -> None:
    """``scale="comfy"``: the latent interfaces at the sizes a real ComfyUI fixes (128 video latent channels, 8 x 16
    audio latents, 128 audio statistics), the rest the miniature's; the mini scale is unchanged by it."""
    plan = miniature.plan_files("comfy")
    ckpt = plan[miniature.CHECKPOINT_REL]
    cfg = json.loads(ckpt.metadata["config"])
    assert cfg["vae"]["latent_channels"] == 128 and cfg["transformer"]["in_channels"] == 128
    dd = cfg["audio_vae"]["model"]["params"]["ddconfig"]
    assert dd["z_channels"] * dd["mel_bins"] // 4 == 128 == cfg["transformer"]["audio_in_channels"]
    t = ckpt.tensors
    assert t["model.diffusion_model.patchify_proj.weight"][1] == (64, 128)  # 128 channels in, miniature width inside
    assert t["model.diffusion_model.audio_patchify_proj.weight"][1] == (32, 128)
    assert t["vae.per_channel_statistics.mean-of-means"][1] == (128,)
    assert t["audio_vae.per_channel_statistics.mean-of-means"][1] == (128,)
    assert t["audio_vae.decoder.conv_in.conv.weight"][1][1] == 8
    assert json.loads(plan[miniature.SPATIAL_UPSCALER_REL].metadata["config"])["in_channels"] == 128
    assert 10e6 < sum(fp.nbytes for fp in plan.values()) < 40e6
    mini_plan = miniature.plan_files("mini")
    assert set(plan) == set(mini_plan)
    for rel in plan:
        if rel.startswith(miniature.GEMMA_DIR_REL + "/"):  # the same Gemma folder
            assert plan[rel].tensors == mini_plan[rel].tensors, rel
        elif rel != miniature.COMFY_GEMMA_REL:  # same names, other sizes (no shortcut where a block keeps its width)
            assert {k for k in plan[rel].tensors if "shortcut" not in k} == \
                {k for k in mini_plan[rel].tensors if "shortcut" not in k}, rel
    assert miniature.plan_tree("mini") == {rel: (mini.root / rel).stat().st_size for rel in mini_plan}



def test_disk_check_counts_each_disk_for_its_own_files(tmp_path) -> None:
    """A Gemma folder linked to another disk (here /dev/shm) is counted there, not on the tree's disk."""
    import tempfile

    from ltxic.models.miniature_parts import CHECKPOINT_REL, GEMMA_DIR_REL

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a filesystem other than the test's temporary folder")
    sizes = {CHECKPOINT_REL: 46, GEMMA_DIR_REL + "/model-00001-of-00002.safetensors": 12,
             GEMMA_DIR_REL + "/model-00002-of-00002.safetensors": 12}
    root = tmp_path / "tree"
    def disks(needs):
        return [(folder.stat().st_dev, n) for folder, n in needs]

    assert disks(miniature.disk_needs(root, sizes)) == [(tmp_path.stat().st_dev, 70)]
    with tempfile.TemporaryDirectory(dir=shm) as elsewhere:
        (root / GEMMA_DIR_REL).parent.mkdir(parents=True)
        (root / GEMMA_DIR_REL).symlink_to(elsewhere)
        needs = miniature.disk_needs(root, sizes)
        assert disks(needs) == [(tmp_path.stat().st_dev, 46), (shm.stat().st_dev, 24)]
        assert needs[1][0] == Path(elsewhere).resolve()
