"""benchmarks/train_speed.py on the CPU at miniature size: the workload's shapes, the plain baseline, the trainer's
own loop and the FLOP count run and report what the GPU run commits."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_speed", ROOT / "benchmarks" / "train_speed.py")
train_speed = importlib.util.module_from_spec(spec)
sys.modules["train_speed"] = train_speed
spec.loader.exec_module(train_speed)


def test_the_workload_has_the_issues_token_counts() -> None:
    cfg = train_speed.load_cfg("ltx23_h100", {}, Path("/tmp"), 4, cpu=True)
    counts = train_speed.token_counts(train_speed.cached_samples(cfg, train_speed.WORKLOAD, "full", count=1))
    # 768x448x49: 24x14x7 latents; the full-size reference image 24x14; 2 s and 10 s of audio at 25 latents/s
    assert counts == {"video_target_tokens": 2352, "video_reference_tokens": 336, "audio_target_tokens": 52,
                      "audio_reference_tokens": 251, "context_tokens": 1024, "tokens": 2991}
    half = train_speed.load_cfg("ltx23_h100", {"training_strategy": {"reference_downscale_factor": 2}}, Path("/tmp"), 4,
                                cpu=True)
    assert train_speed.token_counts(train_speed.cached_samples(half, train_speed.WORKLOAD, "full", count=1))[
        "video_reference_tokens"] == 84


def test_plain_trainer_and_flops_run_at_miniature_size(tmp_path: Path) -> None:
    for variant in ("plain", "eager_all", "flops", "24gb"):  # 24gb: fp8 blocks streamed from host memory
        code = train_speed.main(["--worker", variant, "--out", str(tmp_path), "--scale", "mini", "--device", "cpu",
                                 "--steps", "3", "--warmup", "1"])
        result = json.loads((tmp_path / f"{variant}.json").read_text())
        assert code == 0 and result["status"] == "ok", result
    trainer = json.loads((tmp_path / "eager_all.json").read_text())
    assert trainer["recompute_blocks"] == 2 and len(trainer["losses"]) == 3 and trainer["lora_rank"] == 128
    assert trainer["step_median_s"] > 0 and len(trainer["step_times_s"]) == 3
    plain = json.loads((tmp_path / "plain.json").read_text())
    assert plain["gradient_checkpointing"] and plain["lora_params_m"] == trainer["lora_params_m"]
    flops = json.loads((tmp_path / "flops.json").read_text())
    assert flops["step_flops"] > 0 and flops["tokens"] == 2991
    # the call's table: tokens/s from flops.json, the ratio to the same call's plain loop; the 24 GB config trains
    # another adapter, so the default workload's FLOPs do not apply to it
    rows = {row["variant"]: row for row in train_speed.summarize(tmp_path)}
    assert rows["eager_all"]["tokens_per_s"] == round(2991 / trainer["step_median_s"])
    assert rows["eager_all"]["plain_over_this"] == round(plain["step_median_s"] / trainer["step_median_s"], 2)
    assert rows["plain"]["recompute_blocks"] == "all" and rows["24gb"]["tokens_per_s"] is None
    assert rows["eager_all"]["mfu"] is None  # no matmul rate on the CPU
    assert "| eager_all | 2 |" in (tmp_path / "summary.md").read_text()


def test_the_profile_covers_only_the_steady_steps(tmp_path: Path) -> None:
    code = train_speed.main(["--worker", "profile_eager_all", "--out", str(tmp_path), "--scale", "mini",
                             "--device", "cpu", "--steps", "5", "--warmup", "1"])
    result = json.loads((tmp_path / "profile_eager_all.json").read_text())
    assert code == 0 and result["status"] == "ok", result
    # 5 steps: the first (warm-up) and the last (followed by the checkpoint) stay out
    assert result["forwards"] == 5 and result["profiled_steps"] == 3
    table = (tmp_path / "profile_eager_all.txt").read_text()
    steps = next(line for line in table.splitlines() if line.strip().startswith("ProfilerStep"))
    assert steps.split()[-1] == "3"  # three recorded steps


def test_the_profile_sorts_h200_kernels_by_kind() -> None:
    # names as the profiler reported them on an H200 (results/train_speed/call14); cuDNN's attention and the fused
    # AdamW kernel both contain "mm"
    adamw = ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous namespace)::"
             "FusedOptimizerTensorListMetadata<4>, at::native::(anonymous namespace)::FusedAdamMathFunctor<float, 4>>")
    kinds = {name: train_speed.kernel_kind(name) for name in (
        "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT",
        "cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x128_1x4x1_cga1x1",
        "void cudnn::fusion::compute_dot_do_o_specialized<true, 128>(void const*, void const*, void*)",
        adamw, "triton_poi_fused_add_gelu_gelu_backward_mul_view_11")}
    assert list(kinds.values()) == ["matmul", "attention", "attention", "optimizer", "elementwise and other"]
