"""The LTX-2.3 path on a miniature of the official files, on the CPU: download, train, sample, and the errors.

The miniature (``ltxic.models.miniature``) has the official key names, prefixes and config schema at tiny sizes, so every
part loads through ltx-core's builders exactly as the real 22B files do on a GPU.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from ltxic.io import media
from ltxic.models import ltx23
from ltxic.cli import main
from ltxic.training.config import example_config
from ltxic.models.kit import Models
from ltxic.models.lora import LoRAError, load_lora
from ltxic.models.miniature import build_miniature
from ltxic.models.transformer import CheckpointError

DATA = Path(__file__).resolve().parent.parent / "data_samples"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("comfyui")
    build_miniature(root)
    return root


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    """Four clips of one identity (with its consent record) from data_samples, paths made absolute."""
    data = json.loads((DATA / "dataset.json").read_text())
    entries = [e for e in data["entries"] if e["identity"] == "ava"][:4]
    for e in entries:
        for k in ("video_path", "reference_image", "reference_audio"):
            e[k] = str(DATA / e[k])
    data["entries"] = entries
    data["identities"] = {"ava": data["identities"]["ava"]}
    data["allow_outside_paths"] = True  # the clips stay in data_samples/
    path = tmp_path_factory.mktemp("data") / "dataset.json"
    path.write_text(json.dumps(data))
    return path


def test_kit_parts_load_and_run(tree) -> None:
    models = Models.from_comfyui(tree, device="cpu", dtype=torch.float32)
    assert models.name == "ltx-2.3-22b" and models.upsampler is not None and models.distilled_lora is not None
    frames = torch.rand(1, 3, 9, 64, 96) * 2 - 1
    latent = models.video_codec.encode(frames)
    assert latent.shape[2:] == (2, 2, 3)
    assert models.video_codec.decode(latent).shape == (1, 3, 9, 64, 96)
    wave = torch.randn(1, 1, 16000) * 0.1
    a = models.audio_codec.encode(wave)
    assert a.shape[1] * a.shape[3] == models.transformer.audio_patchify_proj.in_features
    out = models.audio_codec.decode(a)
    assert out.shape[1] == 2 and models.audio_codec.output_sample_rate == 48000
    v_ctx, a_ctx, mask = models.text_encoder.encode(["A person speaks in a green room."])
    assert v_ctx.shape[:2] == a_ctx.shape[:2] == mask.shape == (1, 1024)
    assert torch.isfinite(v_ctx).all() and torch.isfinite(a_ctx).all()
    models.release_encoders()
    assert models.text_encoder._gemma is None and "video_encoder" not in models.video_codec.loaded()


def test_download_train_sample_from_the_command_line(tree, small_dataset, tmp_path, monkeypatch) -> None:
    """What a RunPod user types, on the miniature: download, train (cache, 5 steps, validation), two-stage sample."""
    from tests.test_assets import FakeHub  # the Hub-like loopback server of the download tests

    # 1. ltxic download: the shipped manifest's default files, served from the miniature by a loopback hub
    from ltxic.data.assets import load_manifest

    files, assets = {}, []
    for asset in load_manifest():
        if not asset.default:
            continue
        entry = {"name": asset.name, "description": asset.description, "default": True, "files": []}
        for f in asset.files:
            local = tree / f.target
            if not local.exists():  # miniature Gemma shards differ in number from the real folder's
                continue
            files[(f.repo_id, f.filename)] = local.read_bytes()
            entry["files"].append({"repo_id": f.repo_id, "filename": f.filename, "target": f.target,
                                   "size": local.stat().st_size, "size_exact": True, "sha256": None})
        gemma = tree / ltx23.GEMMA_DIR
        if asset.name == "gemma-3-12b-hf":
            for shard in sorted(gemma.glob("model-*.safetensors")):
                repo = asset.files[0].repo_id
                files[(repo, shard.name)] = shard.read_bytes()
                entry["files"].append({"repo_id": repo, "filename": shard.name, "target": f"{ltx23.GEMMA_DIR}/{shard.name}",
                                       "size": shard.stat().st_size, "size_exact": True, "sha256": None})
        assets.append(entry)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "assets": assets}))
    hub = FakeHub(files)
    import threading

    thread = threading.Thread(target=hub.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{hub.server_address[1]}")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf_cache"))
        root = tmp_path / "workspace"
        assert main(["download", "--root", str(root), "--manifest", str(manifest), "--workers", "2"]) == 0
    finally:
        hub.shutdown()
        hub.server_close()
    for rel in (ltx23.CHECKPOINT_FILE, ltx23.SPATIAL_UPSAMPLER_FILE, ltx23.DISTILLED_LORA_FILE):
        assert (root / rel).read_bytes() == (tree / rel).read_bytes()

    # 2. ltxic train with the shipped ltx23_h100 config, pointed at the tree and a small dataset
    cfg = yaml.safe_load(example_config("ltx23_h100").read_text())
    cfg["model"].update(comfyui_root=str(root), dtype="float32")
    cfg["dataset"].update(dataset_file=str(small_dataset), resolution_buckets=["128x128x25"])
    cfg["optimization"].update(steps=5, warmup_steps=1)
    cfg["lora"].update(rank=4, alpha=4)
    cfg["validation"].update(interval=5, prompts=["A person speaks in a bright green room, close-up."],
                             num_inference_steps=2, resolution="128x128x25",
                             reference_image=str(DATA / "refs/ava.jpg"), reference_audio=str(DATA / "voice/ava_1.wav"))
    cfg["output"].update(dir=str(tmp_path / "run"), checkpoint_interval=5)
    config = tmp_path / "ltx23_mini.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(config)]) == 0
    run = tmp_path / "run"
    lora = run / "checkpoints" / "step_000005" / "lora.safetensors"
    assert lora.exists()
    clip = run / "validation" / "step_000005" / "00.mp4"
    info = media.probe_video(clip)
    assert info.has_audio and (info.width, info.height) == (128, 128)
    stages = json.loads((run / "stages.json").read_text())
    assert {"video encode", "audio encode", "text encode", "transformer load", "validation"} <= set(stages["stages"])
    with safe_open(str(lora), framework="pt") as fh:
        meta = fh.metadata()
        assert all(k.startswith("diffusion_model.transformer_blocks.") for k in fh.keys())
    assert meta["base_model"] == "ltx-2.3-22b" and meta["training_strategy"] == "audio_ref_only_ic"

    # 3. ltxic sample in two stages, with the references and the identity's consent
    out = tmp_path / "samples"
    assert main(["sample", "--comfyui-root", str(root), "--lora", str(lora), "--two-stage",
                 "--reference-image", str(DATA / "refs/ava.jpg"), "--reference-audio", str(DATA / "voice/ava_1.wav"),
                 "--dataset", str(small_dataset), "--identity", "ava", "--prompt", "A person nods in a blue room.",
                 "--width", "128", "--height", "128", "--frames", "25", "--steps", "2", "--dtype", "float32",
                 "--device", "cpu", "--out", str(out)]) == 0
    (mp4,) = out.glob("*.mp4")
    info = media.probe_video(mp4)
    assert info.has_audio and (info.width, info.height, info.frames) == (128, 128, 25)
    assert {"text encode", "stage 1 load", "stage 1", "upsample", "stage 2 load", "stage 2", "decode"} <= set(
        json.loads((out / "stages.json").read_text())["stages"])

    # ...and without consent for the references it refuses
    assert main(["sample", "--comfyui-root", str(root), "--lora", str(lora), "--two-stage",
                 "--reference-image", str(DATA / "refs/ava.jpg"), "--reference-audio", str(DATA / "voice/ava_1.wav"),
                 "--prompt", "x", "--width", "128", "--height", "128", "--frames", "25", "--steps", "1",
                 "--dtype", "float32", "--device", "cpu", "--out", str(tmp_path / "refused")]) == 1


def test_checkpoint_of_another_version_is_refused(tree, tmp_path) -> None:
    path = tree / ltx23.CHECKPOINT_FILE
    with safe_open(str(path), framework="pt") as fh:
        config = json.loads(fh.metadata()["config"])
        tensors = {k: fh.get_tensor(k) for k in list(fh.keys())[:4]}
    old = copy.deepcopy(config)  # LTX-2 19B: caption projection inside the transformer, vocoder without BWE
    for key in ("caption_proj_before_connector", "cross_attention_adaln"):
        old["transformer"].pop(key)
    old["vocoder"] = old["vocoder"]["vocoder"]
    save_file(tensors, str(tmp_path / "ltx-2-19b-dev.safetensors"), metadata={"config": json.dumps(old)})
    with pytest.raises(CheckpointError, match=r"ltx-2-19b-dev\.safetensors: .*another version.*ltxic download --only checkpoint"):
        Models.ltx23(tmp_path / "ltx-2-19b-dev.safetensors", tree / ltx23.GEMMA_DIR)


def test_truncated_checkpoint_is_refused(tree, tmp_path) -> None:
    broken = tmp_path / "ltx-2.3-22b-dev.safetensors"
    data = (tree / ltx23.CHECKPOINT_FILE).read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"ltx-2\.3-22b-dev\.safetensors: .*(truncated|download it again)"):
        Models.ltx23(broken, tree / ltx23.GEMMA_DIR)


def test_incomplete_checkpoint_names_the_missing_keys(tree, tmp_path) -> None:
    with safe_open(str(tree / ltx23.CHECKPOINT_FILE), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("vae.decoder.up_blocks.0")}
    path = tmp_path / "ltx-2.3-22b-dev.safetensors"
    save_file(tensors, str(path), metadata=meta)
    codec = Models.ltx23(path, device="cpu", dtype=torch.float32).video_codec
    with pytest.raises(CheckpointError, match=r"video decoder is incomplete: \d+ weights are missing .*'vae\.decoder\.up_blocks\.0"):
        codec.decode(torch.zeros(1, codec.encoder.per_channel_statistics.get_buffer("mean-of-means").numel(), 1, 1, 1))


def test_comfyui_single_file_gemma_is_refused(tree) -> None:
    single = tree / "models" / "text_encoders" / "gemma_3_12B_it_fp4_mixed.safetensors"
    with pytest.raises(CheckpointError, match=r"gemma_3_12B_it_fp4_mixed\.safetensors: this is one file.*ltxic download --only gemma-3-12b-hf"):
        Models.ltx23(tree / ltx23.CHECKPOINT_FILE, single)


def test_lora_of_another_base_is_refused(tree, tmp_path) -> None:
    import ltxic

    tiny = ltxic.build_transformer("tiny")
    ltxic.inject_lora(tiny, ltxic.LoRAConfig(rank=2, alpha=2))
    path = ltxic.save_lora(tiny, tmp_path / "tiny_lora.safetensors", config=ltxic.LoRAConfig(rank=2, alpha=2))
    model = ltx23.load_transformer(tree / ltx23.CHECKPOINT_FILE, dtype=torch.float32)
    with pytest.raises(LoRAError, match="trained for base model 'tiny'"):
        load_lora(model, path)


def test_our_gemma_and_processor_configurators_build_ltx_cores_12b_modules() -> None:
    """With no config.json the folder configurators give exactly ltx-core's hard-coded Gemma 3 12B modules."""
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import (
        EmbeddingsProcessorConfigurator as CoreProcessor,
    )
    from ltx_core.text_encoders.gemma.encoders.encoder_configurator import GemmaTextEncoderConfigurator

    official = json.loads((Path(ltx23.__file__).parent / "ltx23_config.json").read_text())
    gemma = ltx23.gemma_config(Path("/nonexistent"))
    with torch.device("meta"):
        ours = ltx23.GemmaConfigurator(gemma).from_config(official)
        theirs = GemmaTextEncoderConfigurator.from_config(official)
        ours_p = ltx23.EmbeddingsProcessorConfigurator(3840, 48).from_config(official)
        theirs_p = CoreProcessor.from_config(official)
    for a, b in ((ours, theirs), (ours_p, theirs_p)):
        assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_released_parts_come_back_on_use(tree) -> None:
    models = Models.from_comfyui(tree, device="cpu", dtype=torch.float32)
    a = models.text_encoder.encode(["a person speaks"])[0]
    models.release_encoders()
    b = models.text_encoder.encode(["a person speaks"])[0]
    assert torch.equal(a, b)
    shutil.rmtree(tree / "unused", ignore_errors=True)


def test_transformer_load_reads_only_the_transformers_weights(tree) -> None:
    """The checkpoint files the text connectors under the transformer's prefix; the loader must not read them (at
    full size they are 3.3 GB on the GPU beside the model while it loads)."""
    from ltx_core.loader.registry import DummyRegistry

    checkpoint = tree / ltx23.CHECKPOINT_FILE
    with safe_open(str(checkpoint), framework="pt") as fh:
        filed = {k.removeprefix("model.diffusion_model.") for k in fh.keys() if k.startswith("model.diffusion_model.")}
    for fp8 in (False, True):
        model = ltx23.load_transformer(checkpoint, dtype=torch.float32, fp8=fp8)
        own = set(model.state_dict())
        assert any("embeddings_connector" in k for k in filed - own)  # what there is to skip
        builder = ltx23.transformer_builder(checkpoint, fp8=fp8)
        read = builder.load_sd([str(checkpoint)], registry=DummyRegistry(), device=torch.device("cpu"),
                               sd_ops=builder.model_sd_ops).sd
        assert set(read) == own


def test_two_stage_upsampler_never_shares_the_device_with_a_transformer(tree) -> None:
    """Kept on the device (offload_device=None), each model is built for its stage and freed after it: the upsampler
    runs with no transformer alive, and neither is left once the clip is done."""
    import gc

    from ltx_core.model.transformer.model import LTXModel
    from ltx_core.model.upsampler import LatentUpsampler

    from ltxic.sampling.pipeline import TwoStagePipeline

    def alive(cls: type) -> int:
        return sum(issubclass(type(o), cls) for o in gc.get_objects())  # type(): no __class__ lookups

    models = Models.from_comfyui(tree, device="cpu", dtype=torch.float32)
    seen: list[int] = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: seen.append(alive(LTXModel)) if isinstance(module, LatentUpsampler) else None)
    try:
        pipe = TwoStagePipeline(models, device="cpu", offload_device=None)
        result = pipe("A person nods in a blue room.", width=128, height=128, frames=25, stage1_steps=2)
    finally:
        hook.remove()
    assert result.frames.shape[:3] == (25, 128, 128)
    gc.collect()
    assert seen == [0] and alive(LatentUpsampler) == 0 and alive(LTXModel) == 0 and models.has_upsampler


def test_distilled_two_stage_refines_with_the_same_model_and_no_distilled_lora(tree, tmp_path) -> None:
    """``stage1_distilled`` (``ltxic sample --distilled``): the checkpoint is the distilled model, so stage 2 refines
    with it as it is, as ICLoraPipeline does: a tree holding the distilled LoRA gives the same clip as a kit without
    it; without the flag the LoRA changes stage 2."""
    import gc

    from ltx_core.model.transformer.model import LTXModel

    from ltxic.sampling.guidance import Guidance
    from ltxic.sampling.pipeline import TwoStagePipeline

    files = ltx23.LTX23Files.from_comfyui(tree)
    with_lora = Models.from_comfyui(tree, device="cpu", dtype=torch.float32)
    without = Models.ltx23(files.checkpoint, files.gemma_root, spatial_upsampler=files.spatial_upsampler,
                           distilled_lora=None, device="cpu", dtype=torch.float32)
    run = dict(width=128, height=128, frames=9, guidance=Guidance.off(), seed=3)
    transformers_at_decode: list[int] = []
    decoder = type(with_lora.video_codec.decoder)
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda module, args: transformers_at_decode.append(
            sum(isinstance(o, LTXModel) for o in gc.get_objects())) if type(module) is decoder else None)
    try:
        a = TwoStagePipeline(with_lora, device="cpu", offload_device=None)("A person nods.", stage1_distilled=True, **run)
    finally:
        hook.remove()
    assert transformers_at_decode and set(transformers_at_decode) == {0}  # the one model is freed before the decode
    b = TwoStagePipeline(without, device="cpu", offload_device=None)("A person nods.", stage1_distilled=True, **run)
    assert torch.equal(a.video_latent, b.video_latent) and torch.equal(a.audio_latent, b.audio_latent)
    c = TwoStagePipeline(with_lora, device="cpu", offload_device=None)("A person nods.", stage1_steps=8, **run)
    assert not torch.equal(a.stage1_video_latent, c.stage1_video_latent)  # 8 distilled sigmas, not the 8-step schedule

    out = tmp_path / "distilled"
    assert main(["sample", "--comfyui-root", str(tree), "--two-stage", "--distilled", "--prompt", "A person nods.",
                 "--width", "128", "--height", "128", "--frames", "9", "--dtype", "float32", "--device", "cpu",
                 "--out", str(out)]) == 0
    (mp4,) = out.glob("*.mp4")
    assert media.probe_video(mp4).frames == 9


def _randomize(model: torch.nn.Module, std: float = 0.05) -> None:
    from ltxic.models.lora import lora_modules

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in lora_modules(model).values():
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * std)


def test_our_lora_fuses_in_ltx_core_like_our_adapters(tree, tmp_path) -> None:
    """ltx-pipelines' loading (the builder's .lora(...) with the ComfyUI renaming map) on the miniature checkpoint."""
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.single_gpu_model_builder import SingleGPUModelBuilder
    from ltx_core.model.transformer import LTXV_MODEL_COMFY_RENAMING_MAP, LTXModelConfigurator

    from ltxic.models.lora import LoRAConfig, inject_lora, save_lora, set_lora_strength
    from test_models import run, tiny_inputs

    ckpt = tree / ltx23.CHECKPOINT_FILE
    base = ltx23.load_transformer(ckpt, dtype=torch.float32)  # the file is bf16: float32 holds it exactly
    inputs = tiny_inputs(base, seed=3)
    model = copy.deepcopy(base)
    cfg = LoRAConfig(rank=4, alpha=2)
    inject_lora(model, cfg)
    _randomize(model)
    path = save_lora(model, tmp_path / "ltx-2.3-22b-ic-lora.safetensors", config=cfg,
                     metadata={"training_strategy": "audio_ref_only_ic", "reference_downscale_factor": 1})
    set_lora_strength(model, 0.8)
    want = run(model, *inputs)
    assert not torch.allclose(want[0], run(base, *inputs)[0], atol=1e-3)
    fused = (
        SingleGPUModelBuilder(model_class_configurator=LTXModelConfigurator, model_path=str(ckpt),
                              model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP)
        .lora(str(path), 0.8, LTXV_LORA_COMFY_RENAMING_MAP)
        .build(device=torch.device("cpu"), dtype=torch.float32)
    )
    got = run(fused.float(), *inputs)
    for w, g in zip(want, got):
        assert torch.allclose(w, g, atol=1e-4, rtol=0), (w - g).abs().max()


@pytest.mark.parametrize("factor", [1, 2])
def test_ltx_pipelines_ic_lora_reads_our_reference_factor(tree, tmp_path, factor) -> None:
    """ltx-pipelines' ICLoraPipeline, built on the miniature files, reads the factor the LoRA was trained with."""
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.primitives import LoraPathStrengthAndSDOps
    from ltx_pipelines.ic_lora import ICLoraPipeline

    from ltxic.models.lora import LoRAConfig, inject_lora, save_lora

    model = ltx23.load_transformer(tree / ltx23.CHECKPOINT_FILE, dtype=torch.float32)
    inject_lora(model, LoRAConfig(rank=2, alpha=2))
    path = save_lora(model, tmp_path / f"ref{factor}.safetensors", config=LoRAConfig(rank=2, alpha=2),
                     metadata={"training_strategy": "audio_ref_only_ic", "reference_downscale_factor": factor})
    pipe = ICLoraPipeline(str(tree / ltx23.CHECKPOINT_FILE), str(tree / ltx23.SPATIAL_UPSAMPLER_FILE),
                          str(tree / ltx23.GEMMA_DIR), [LoraPathStrengthAndSDOps(str(path), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)],
                          device=torch.device("cpu"))
    assert pipe.reference_downscale_factor == factor


def test_encoding_once_frees_gemma_before_the_connectors_are_built(tree) -> None:
    """The two-stage sampler encodes its prompts once, as ltx-pipelines' encode_prompts: every prompt through Gemma,
    Gemma freed, then the connectors; the contexts equal encoding one prompt at a time with both kept."""
    prompts = ["A person speaks in a green room.", "A person nods."]
    kept = Models.from_comfyui(tree, device="cpu", dtype=torch.float32).text_encoder
    want = [kept.encode([p]) for p in prompts]
    assert kept._gemma is not None and kept._processor is not None

    class Watched(ltx23.TextEncoder):
        gemma_alive_at_processor_build: list[bool] = []

        @property
        def processor(self):
            if self._processor is None:
                self.gemma_alive_at_processor_build.append(self._gemma is not None)
            return super().processor

    once = Watched(tree / ltx23.GEMMA_DIR, tree / ltx23.CHECKPOINT_FILE, device="cpu", dtype=torch.float32)
    got = once.encode_each(prompts, release=True)
    assert Watched.gemma_alive_at_processor_build == [False]
    assert once._gemma is None and once._processor is None
    for w, g in zip(want, got):
        for a, b in zip(w, g):
            assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="streams Gemma's layers from pinned host memory to a CUDA device")
def test_streamed_gemma_encodes_like_the_resident_one(tree) -> None:
    resident = Models.from_comfyui(tree, device="cuda", dtype=torch.bfloat16)
    streamed = Models.from_comfyui(tree, device="cuda", dtype=torch.bfloat16, offload_text_encoder=True)
    prompts = ["A person speaks in a green room.", "A person nods."]
    want = resident.text_encoder.encode(prompts)
    got = streamed.text_encoder.encode(prompts)
    layer = streamed.text_encoder.gemma.model.model.language_model.layers[0]
    assert next(layer.parameters()).device.type == "cpu"  # back in host memory after the forward
    for w, g in zip(want, got):
        assert torch.equal(w, g)
