"""``ltxic sample --two-stage`` beside ltx-pipelines' ``TI2VidTwoStagesPipeline``, same tree, same clip, same run.

Text to video with sound, LTX-2.3's defaults on both sides (ltx-pipelines' ``LTX_2_3_PARAMS``: 30 stage-1 steps with
the multi-modal guidance, the distilled LoRA at 1.0 in stage 2), the same prompt, ltx-pipelines' default negative prompt and one
seed. ltxic runs through its command line (``ltxic.cli.main``) and reports its own ``stages.json``; the pipeline's
stages are timed by wrapping its module's helpers (``encode_prompts``, the two transformer loads, ``denoise_audio_video``
twice, ``upsample_video``, the video decoder, whose iterator is consumed inside the clock, the audio decoder, and
``encode_video`` writing the mp4 as their command line does), with CUDA synchronized and the peak reset around each
(:class:`ltxic.io.profiling.StageClock`). Each side's wall time runs from before its package's pipeline code is
imported to the written mp4; ``process_seconds`` is the whole process, interpreter start included. Each side runs in its own process (a fresh CUDA context, so
each peak is its own), one after the other:

* ``ltxic``: ``ltxic sample --two-stage`` as users run it (the guidance passes one after another, as the pipelines);
* ``ltxic-batched``: the same with ``--batch-guidance`` (a step's passes as one batch);
* ``pipelines``: ``TI2VidTwoStagesPipeline``;
* ``ltxic-24gb``: ``--fp8 --offload-text-encoder`` with the process capped at 24 GiB
  (``torch.cuda.set_per_process_memory_fraction``);
* ``pipelines-24gb``: ``TI2VidTwoStagesPipeline`` with ``QuantizationPolicy.fp8_cast()`` under the same cap;
* ``ltxic-ic``: ``ltxic sample --two-stage --distilled`` with an IC-LoRA (strategy ``ic``) and a reference portrait;
* ``pipelines-ic``: ``ICLoraPipeline`` with the same IC-LoRA and the portrait as a one-frame conditioning video.

The IC sides treat the tree's checkpoint as the distilled model (random weights: the same shapes and work) and share
one IC-LoRA, the tree's distilled LoRA cut to rank 128 with the metadata an IC-LoRA carries (``OUT/ic/``).

Results: ``OUT/side_by_side.json``, rewritten after every side (a side that fails records its error).

On a GPU, with the full-size tree (``benchmarks/ltx23_real_path.py`` shows how it is written)::

    python benchmarks/sample_side_by_side.py --tree /root/tree --out OUT

``--miniature`` runs both on the CPU in float32 on the miniature of the official files, with the patches
``tests/test_guidance_parity.py`` describes (the pipelines' prompt encoding, bf16 and CUDA calls, latent widths);
it checks the harness, its seconds say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import types
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROMPT = "A person slowly turns head left while speaking in a sunlit kitchen."


class _Float32Torch(types.ModuleType):
    bfloat16 = torch.float32
    cuda = types.SimpleNamespace(synchronize=lambda *a, **k: None, empty_cache=lambda: None, is_available=lambda: False)

    def __getattr__(self, name: str):
        return getattr(torch, name)


def _patch(stack: ExitStack, obj, name: str, value) -> None:
    old = getattr(obj, name)
    setattr(obj, name, value)
    stack.callback(setattr, obj, name, old)


def _miniature_patches(stack: ExitStack, module, tree: Path) -> None:
    """CPU only: what tests/test_guidance_parity.py patches, for the same reasons."""
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessorOutput
    from ltx_core.types import AudioLatentShape
    from ltx_pipelines.utils import helpers

    from ltxic.models.kit import Models

    encoder = Models.from_comfyui(tree, device="cpu", dtype=torch.float32).text_encoder
    _patch(stack, module, "encode_prompts", lambda prompts, ledger, **kw: [
        EmbeddingsProcessorOutput(*encoder.encode([p])) for p in prompts])
    _patch(stack, module, "torch", _Float32Torch("torch"))
    _patch(stack, module, "cleanup_memory", gc.collect)
    shape_of = AudioLatentShape.from_video_pixel_shape
    _patch(stack, helpers, "AudioLatentShape", types.SimpleNamespace(
        from_video_pixel_shape=lambda shape: shape_of(shape, channels=2)))


def run_ltxic(args: argparse.Namespace, out: Path) -> dict:
    from ltxic.cli import main

    cmd = ["sample", "--comfyui-root", str(args.tree), "--two-stage", "--prompt", PROMPT, "--width", str(args.width),
           "--height", str(args.height), "--frames", str(args.frames), "--seed", str(args.seed), "--out", str(out)]
    if args.miniature:
        cmd += ["--dtype", "float32", "--device", "cpu", "--stg-blocks", "1"]
    cmd += SIDES[args.side]["ltxic_flags"] + (["--steps", str(args.steps)] if args.steps else [])
    if SIDES[args.side].get("ic"):
        cmd += ["--lora", str(Path(args.out) / IC_LORA), "--reference-image", str(IC_REFERENCE),
                "--dataset", str(ROOT / "data_samples/dataset.json"), "--identity", "dex"]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    rc = main(cmd)
    wall = time.perf_counter() - t0
    if rc:
        raise SystemExit(f"ltxic sample failed ({rc})")
    stages = json.loads((out / "stages.json").read_text())["stages"]
    return {"command": "ltxic " + " ".join(cmd), "wall_seconds": round(wall, 2), "stages": stages,
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}


def run_pipelines(args: argparse.Namespace, out: Path) -> dict:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()  # their command line imports the pipelines, and writes the clip, as ltxic sample does
    ic_side = bool(SIDES[args.side].get("ic"))
    if ic_side:
        import ltx_pipelines.ic_lora as two
    else:
        import ltx_pipelines.ti2vid_two_stages as two
    from ltx_core.loader import LTXV_LORA_COMFY_RENAMING_MAP
    from ltx_core.loader.primitives import LoraPathStrengthAndSDOps
    from ltx_pipelines.utils.constants import DEFAULT_NEGATIVE_PROMPT, LTX_2_3_PARAMS

    from ltxic.io.profiling import StageClock
    from ltxic.models import ltx23

    tree = Path(args.tree)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.miniature else "cpu")
    clock = StageClock()
    video_params, audio_params = LTX_2_3_PARAMS.video_guider_params, LTX_2_3_PARAMS.audio_guider_params
    if args.miniature:  # the 2-block miniature has no block 28
        video_params, audio_params = replace(video_params, stg_blocks=[1]), replace(audio_params, stg_blocks=[1])
    with ExitStack() as stack:
        if args.miniature:
            _miniature_patches(stack, two, tree)
        denoise_calls = iter(("stage 1", "stage 2"))

        def timed(name_of, fn):
            def wrapper(*a, **k):
                with clock(name_of() if callable(name_of) else name_of):
                    return fn(*a, **k)
            return wrapper

        _patch(stack, two, "encode_prompts", timed("text encode", two.encode_prompts))
        _patch(stack, two, "denoise_audio_video", timed(lambda: next(denoise_calls), two.denoise_audio_video))
        _patch(stack, two, "upsample_video", timed("upsample", two.upsample_video))
        decode_video = two.vae_decode_video  # an iterator: consumed inside the clock
        _patch(stack, two, "vae_decode_video", timed("decode video", lambda *a, **k: list(decode_video(*a, **k))))
        _patch(stack, two, "vae_decode_audio", timed("decode audio", two.vae_decode_audio))
        distilled = [LoraPathStrengthAndSDOps(str(tree / ltx23.DISTILLED_LORA_FILE), 1.0, LTXV_LORA_COMFY_RENAMING_MAP)]
        quantization = None
        if SIDES[args.side].get("fp8"):
            from ltx_core.quantization import QuantizationPolicy

            quantization = QuantizationPolicy.fp8_cast()
        if ic_side:  # the checkpoint stands in for the distilled one; the IC-LoRA on stage 1, as their command line
            pipe = two.ICLoraPipeline(str(tree / ltx23.CHECKPOINT_FILE), str(tree / ltx23.SPATIAL_UPSAMPLER_FILE),
                                      str(tree / ltx23.GEMMA_DIR),
                                      [LoraPathStrengthAndSDOps(str(Path(args.out) / IC_LORA), 1.0,
                                                                LTXV_LORA_COMFY_RENAMING_MAP)],
                                      device=device, quantization=quantization)
        else:
            pipe = two.TI2VidTwoStagesPipeline(str(tree / ltx23.CHECKPOINT_FILE), distilled,
                                               str(tree / ltx23.SPATIAL_UPSAMPLER_FILE), str(tree / ltx23.GEMMA_DIR), [],
                                               device=device, quantization=quantization)
        if args.miniature:
            pipe.pipeline_components.video_latent_channels = 16
            for ledger in (pipe.stage_1_model_ledger, pipe.stage_2_model_ledger) if ic_side else (pipe.stage_2_model_ledger,):
                ledger.transformer = (lambda build: lambda: build().float())(ledger.transformer)
        # their transformer loads, timed apart as ltxic's "stage N load"
        for n, ledger in ((1, pipe.stage_1_model_ledger), (2, pipe.stage_2_model_ledger)):
            ledger.transformer = timed(f"stage {n} load", ledger.transformer)
        # the tiling their own command line (ti2vid_two_stages.main) decodes with; untiled, a 960x576x121 decode
        # alone runs one H200 out of memory
        from ltx_core.model.video_vae import TilingConfig

        # under inference mode, as their command line (ti2vid_two_stages.main) runs it: the pipeline's __call__
        # itself records autograd history, and at this size that alone runs the H200 out of memory at stage 1
        with torch.inference_mode():
            if ic_side:
                video, audio = pipe(prompt=PROMPT, seed=args.seed, height=args.height, width=args.width,
                                    num_frames=args.frames, frame_rate=24.0, images=[],
                                    video_conditioning=[(str(Path(args.out) / IC_REFERENCE_VIDEO), 1.0)], tiling_config=TilingConfig.default())
            else:
                video, audio = pipe(prompt=PROMPT, negative_prompt=DEFAULT_NEGATIVE_PROMPT, seed=args.seed, height=args.height,
                                    width=args.width, num_frames=args.frames, frame_rate=24.0,
                                    num_inference_steps=args.steps or LTX_2_3_PARAMS.num_inference_steps,
                                    video_guider_params=video_params, audio_guider_params=audio_params, images=[],
                                    tiling_config=TilingConfig.default())
            frames = sum(chunk.shape[0] for chunk in video)
            with clock("write mp4"):  # as their command line (ti2vid_two_stages.main) writes it
                from ltx_pipelines.utils.media_io import encode_video

                encode_video(video=iter(video), fps=24, audio=audio, output_path=str(out / "clip.mp4"),
                             video_chunks_number=len(video))
        wall = time.perf_counter() - t0
    return {"wall_seconds": round(wall, 2), "frames": int(frames), "stages": clock.as_dict(),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None}


SIDES: dict[str, dict] = {
    "ltxic": {"ltxic_flags": []},
    "ltxic-batched": {"ltxic_flags": ["--batch-guidance"]},
    "pipelines": {},
    "ltxic-24gb": {"ltxic_flags": ["--fp8", "--offload-text-encoder"], "cap_gib": 24},
    "pipelines-24gb": {"fp8": True, "cap_gib": 24},
    "ltxic-ic": {"ltxic_flags": ["--distilled"], "ic": True},
    "pipelines-ic": {"ic": True},
}
# the IC sides' inputs, written once into OUT by write_ic_inputs
IC_LORA = "ic/ic_lora.safetensors"
IC_REFERENCE_VIDEO = "ic/reference.mp4"
IC_REFERENCE = ROOT / "data_samples" / "refs" / "dex.jpg"


def write_ic_inputs(tree: Path, out: Path, rank: int = 128) -> None:
    """The IC sides' inputs under ``out``: an IC-LoRA (the tree's distilled LoRA cut to ``rank``, with an IC-LoRA's
    metadata) and the reference portrait as a one-frame video for ``ICLoraPipeline``."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ltxic.io.media import read_image, write_video
    from ltxic.models import ltx23

    (out / IC_LORA).parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    with safe_open(str(tree / ltx23.DISTILLED_LORA_FILE), framework="pt") as fh:
        for key in fh.keys():
            t = fh.get_tensor(key)
            tensors[key] = (t[:rank] if ".lora_A." in key else t[:, :rank]).contiguous()
    save_file(tensors, str(out / IC_LORA), metadata={"training_strategy": "ic", "reference_downscale_factor": "1"})
    write_video(out / IC_REFERENCE_VIDEO, read_image(IC_REFERENCE)[None], 24.0)


def _track_process_peak():
    """The stage clocks reset CUDA's peak counter at every stage; keep the process's own peak across the resets."""
    if not torch.cuda.is_available():
        return lambda: 0
    seen = [0]
    reset = torch.cuda.reset_peak_memory_stats

    def keeping_peak(*a, **k):
        seen[0] = max(seen[0], torch.cuda.max_memory_allocated())
        return reset(*a, **k)

    torch.cuda.reset_peak_memory_stats = keeping_peak
    return lambda: max(seen[0], torch.cuda.max_memory_allocated())


def _peak_allocations(snapshot: dict, top: int = 12) -> dict:
    """Replay the allocator's trace (``torch.cuda.memory._record_memory_history``) to the moment most memory was
    allocated, and group what was alive then by the first frame outside torch: where the peak's bytes came from."""
    live: dict[int, tuple[int, str]] = {}
    total = peak = 0
    at_peak: dict[int, tuple[int, str]] = {}
    for event in snapshot["device_traces"][0]:
        action, addr, size = event["action"], event["addr"], event["size"]
        if action == "alloc":
            frames = [f for f in event.get("frames", []) if "/torch/" not in f["filename"] and f["filename"] != "??"]
            where = " < ".join(f"{f['filename'].split('site-packages/')[-1].split('/work/')[-1]}:{f['line']} {f['name']}"
                               for f in frames[:3])
            live[addr] = (size, where)
            total += size
            if total > peak:
                peak, at_peak = total, dict(live)
        elif action == "free_requested" and addr in live:
            total -= live.pop(addr)[0]
    groups: dict[str, list[int]] = {}
    for size, where in at_peak.values():
        g = groups.setdefault(where, [0, 0])
        g[0] += size
        g[1] += 1
    rows = sorted(groups.items(), key=lambda kv: -kv[1][0])
    return {"peak_gib_traced": round(peak / 2**30, 3), "tensors_alive": len(at_peak),
            "by_origin": [{"gib": round(b / 2**30, 3), "tensors": n, "where": w} for w, (b, n) in rows[:top]]}


def run_side(args: argparse.Namespace) -> dict:
    """One side in this process; its record."""
    side = SIDES[args.side]
    out = Path(args.out) / args.side
    out.mkdir(parents=True, exist_ok=True)
    record: dict = {"side": args.side}
    if side.get("cap_gib") and torch.cuda.is_available() and not args.miniature:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(side["cap_gib"] * 2**30 / total)
        record["cap_gib"] = side["cap_gib"]
    peak = _track_process_peak()
    trace = args.memory_trace and torch.cuda.is_available()
    if trace:
        torch.cuda.memory._record_memory_history(max_entries=2_000_000, stacks="python")
    try:
        record.update(run_pipelines(args, out) if args.side.startswith("pipelines") else run_ltxic(args, out))
        if torch.cuda.is_available():
            record["peak_gib"] = round(peak() / 2**30, 2)
        if trace:
            record["memory_trace"] = _peak_allocations(torch.cuda.memory._snapshot())
    except (Exception, SystemExit) as err:  # an OOM under the cap is a result too
        record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:500]
        import traceback

        record["where"] = [f"{f.filename.split('site-packages/')[-1]}:{f.lineno} {f.name}"
                           for f in traceback.extract_tb(err.__traceback__)][-8:]
        if torch.cuda.is_available():
            record["peak_gib_at_error"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", required=True, help="the ComfyUI tree with the official files")
    p.add_argument("--out", required=True)
    p.add_argument("--width", type=int, default=960)
    p.add_argument("--height", type=int, default=576)
    p.add_argument("--frames", type=int, default=121)
    p.add_argument("--seed", type=int, default=10)
    p.add_argument("--steps", type=int, default=None, help="stage-1 steps (default: LTX-2.3's 30)")
    p.add_argument("--memory-trace", action="store_true",
                   help="record CUDA allocations and report what was alive at the peak, by origin (slows the run)")
    p.add_argument("--sides", nargs="+", choices=list(SIDES), default=list(SIDES), help="which runs, in this order")
    p.add_argument("--side", choices=list(SIDES), help=argparse.SUPPRESS)  # one side, in this process
    p.add_argument("--side-timeout", type=float, default=600.0, help="seconds each side may take")
    p.add_argument("--miniature", action="store_true", help="CPU, float32, the miniature: checks the harness only")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.side:
        (out / args.side).mkdir(parents=True, exist_ok=True)
        (out / args.side / "record.json").write_text(json.dumps(run_side(args), indent=1) + "\n")
        return 0
    import os
    import subprocess

    result = {"size": f"{args.width}x{args.height}x{args.frames}", "prompt": PROMPT, "miniature": args.miniature,
              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.miniature else "cpu",
              "command": "python benchmarks/sample_side_by_side.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "sides": {}}
    env = {**os.environ, "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")}
    base = [sys.executable, str(Path(__file__).resolve()), "--tree", args.tree, "--out", str(out), "--width", str(args.width),
            "--height", str(args.height), "--frames", str(args.frames), "--seed", str(args.seed)]
    base += (["--steps", str(args.steps)] if args.steps else []) + (["--memory-trace"] if args.memory_trace else [])
    if any(SIDES[name].get("ic") for name in args.sides):
        write_ic_inputs(Path(args.tree), out)
    runs: dict[str, list[dict]] = {}
    for name in args.sides:  # a side named again runs again, recorded as "name#2", ...
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(base + ["--side", name] + (["--miniature"] if args.miniature else []), env=env,
                                  timeout=args.side_timeout)
            record_file = out / name / "record.json"
            record = json.loads(record_file.read_text()) if record_file.is_file() else {"error": f"exit {proc.returncode}"}
            record_file.unlink(missing_ok=True)
        except subprocess.TimeoutExpired:
            record = {"error": f"timed out after {args.side_timeout:.0f} s"}
        record["process_seconds"] = round(time.perf_counter() - t0, 1)
        runs.setdefault(name, []).append(record)
        key = name if len(runs[name]) == 1 else f"{name}#{len(runs[name])}"
        result["sides"][key] = record
        result["ratios"] = _ratios(runs)
        (out / "side_by_side.json").write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps({key: record}, indent=1), flush=True)
    return 0


def _ratios(runs: dict[str, list[dict]]) -> dict:
    """ltxic over the pipelines: mean wall time and the highest peak over each side's finished runs."""
    ratios = {}
    for mine, theirs in (("ltxic", "pipelines"), ("ltxic-batched", "pipelines"), ("ltxic-24gb", "pipelines-24gb"),
                         ("ltxic-ic", "pipelines-ic")):
        a = [r for r in runs.get(mine, []) if "wall_seconds" in r]
        b = [r for r in runs.get(theirs, []) if "wall_seconds" in r]
        if a and b:
            wall_a, wall_b = (sum(r["wall_seconds"] for r in x) / len(x) for x in (a, b))
            peak_a, peak_b = (max(r.get("peak_gib") or 0 for r in x) for x in (a, b))
            ratios[f"{mine} / {theirs}"] = {"runs": [len(a), len(b)], "time": round(wall_a / wall_b, 3),
                                            "peak_memory": round(peak_a / peak_b, 3) if peak_a and peak_b else None}
    return ratios


if __name__ == "__main__":
    raise SystemExit(main())
