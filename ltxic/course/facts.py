"""One source for the numbers the course's prose gives about runs: read from the committed result files, formatted
as markdown. A lesson shows them with ``display(Markdown(...))``; README.md and the book's pages hold them in
generated blocks (``<!-- facts:NAME -->`` ... ``<!-- /facts -->``) that :func:`refresh_fact_blocks` rewrites and
``tests/test_prose_figures.py`` checks, so no figure about a run is typed by hand anywhere.

The files: ``benchmarks/results/h100/results.json`` (parameter counts of the real checkpoint's parts, an H100's
memory), ``benchmarks/results/ltx23_real_path.json`` (LTX-2.3 through ``ltxic train`` and ``ltxic sample``),
``benchmarks/results/train_speed/call11`` (the shipped ``ltx23_h100`` step against a plain loop) and
``data_samples/tiny/pretrain_record.json`` (the tiny kit).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from ltxic.course.runner import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
H100_RESULTS = RESULTS / "h100" / "results.json"
REAL_PATH_RESULTS = RESULTS / "ltx23_real_path.json"
SPEED_RUN = RESULTS / "train_speed" / "call11"
TINY_RECORD = REPO_ROOT / "data_samples" / "tiny" / "pretrain_record.json"
TINY_DECODER_RECORD = REPO_ROOT / "data_samples" / "tiny" / "decoder_record.json"  # the video decoder tuned after pretraining


@cache
def _json(path: Path) -> Any:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------- the numbers
def parameter_split() -> dict[str, float]:
    """Billions of parameters in the LTX-2.3 checkpoint, counted on the meta device with the real shapes: the
    transformer, the text projection with the two connectors, and their sum (the "22B" of the name)."""
    parts = {r["setting"]: r["params"] for r in _json(H100_RESULTS)["results"] if r["section"] == "components"}
    transformer, connectors = parts["transformer"] / 1e9, parts["text_projection_and_connectors"] / 1e9
    return {"transformer": transformer, "connectors": connectors, "total": transformer + connectors}


def card_memory_gib() -> dict[str, float]:
    """The memory line of each card the configs target, in GiB: what PyTorch reported on the benchmark's H100 80 GB,
    and the cap the 24 GB config was measured under. Every chart draws these, from here."""
    h100 = float(_json(H100_RESULTS)["meta"]["gpu_total_gib"])
    small = float(_json(REAL_PATH_RESULTS)["24gb"]["cap_gib"])
    return {"H100 80 GB": h100, "24 GB card": small}


def h100_memory_gib() -> float:
    """An H100 80 GB's memory as PyTorch sees it (GiB), measured on the benchmark's card."""
    return card_memory_gib()["H100 80 GB"]


def full_run_times() -> dict[str, dict[str, Any]]:
    """The ``ltx23_h100`` run's length two ways: through ``ltxic train`` at the config's first bucket (the RunPod
    chapter's table) and with the trainer's step timed by ``benchmarks/train_speed.py`` (lesson 04)."""
    from ltxic.training.config import example_config, load_config

    cfg = load_config(example_config("ltx23_h100"), check_files=False)
    steps = cfg.optimization.steps
    real = _json(REAL_PATH_RESULTS)["h100"]["train"]
    fast, plain = _json(SPEED_RUN / "fast.json"), _json(SPEED_RUN / "plain.json")
    return {
        "train_path": {"steps": steps, "bucket": str(cfg.dataset.resolution_buckets[0]),
                       "step_s": real["step_seconds_median"], "hours": steps * real["step_seconds_median"] / 3600,
                       "peak_gib": real["step_peak_gib"]},
        "speed_run": {"steps": steps, "bucket": "768x448x49", "step_s": fast["step_median_s"],
                      "minutes": steps * fast["step_median_s"] / 60, "peak_gib": fast["peak_gib"],
                      "plain_step_s": plain["step_median_s"], "speedup": plain["step_median_s"] / fast["step_median_s"]},
    }


# ----------------------------------------------------------------------------------------------- as prose
def parameter_split_markdown() -> str:
    """Why the course says both "22B" and a smaller transformer: the split, from the parameter count."""
    p = parameter_split()
    return (f"The LTX-2.3 checkpoint holds **{p['total']:.2f} B** parameters (the \"22B\" of its name): the audio-video "
            f"transformer, **{p['transformer']:.2f} B**, plus **{p['connectors']:.2f} B** in the text projection and the "
            f"two connectors that turn Gemma's output into each stream's context. The LoRA adapts the transformer; the "
            f"connectors run once per prompt. (Counted on the meta device with the real shapes: "
            f"`benchmarks/results/h100/results.json`.)")


def gpu_run_times_markdown() -> str:
    """The RunPod chapter's training time and lesson 04's, side by side, with what differs between them."""
    t = full_run_times()
    real, speed = t["train_path"], t["speed_run"]
    return (f"Two measurements of the full `ltx23_h100` run ({real['steps']} steps), from two setups. Through "
            f"`ltxic train` at the config's first bucket, {real['bucket']}, when the config still ran its blocks eagerly "
            f"and recomputed every one: {real['step_s']:.2f} s a step, **{real['hours']:.1f} h** "
            f"(`benchmarks/results/ltx23_real_path.json`, the RunPod chapter's table). With the shipped settings "
            f"(compiled blocks, half of each block's activations kept) at {speed['bucket']}, timed by "
            f"`benchmarks/train_speed.py`: {speed['step_s']:.2f} s a step, **{speed['minutes']:.0f} min**, "
            f"{speed['speedup']:.1f}x a plain ltx-core loop in the same run (lesson 04). The two differ in bucket "
            f"(more tokens per step at {real['bucket']}) and in the step itself (eager and fully recomputed against "
            f"compiled): the first is an upper bound for {real['bucket']} clips, the second the shipped config at "
            f"{speed['bucket']}.")


def memory_lines_markdown() -> str:
    """The memory lines the charts draw, and where they come from."""
    lines = card_memory_gib()
    return ("The dashed lines in the memory charts: " + "; ".join(f"{name} at {gib:.1f} GiB" for name, gib in lines.items())
            + " (the H100's total as PyTorch reported it on the benchmark card, and the cap the 24 GB config was "
              "measured under).")


def tiny_kit_markdown() -> str:
    """The tiny kit's size and codec quality, from its pretrain record (and its decoder record, once the video
    decoder was fine-tuned on the same latents after pretraining)."""
    record = _json(TINY_RECORD)
    source = "`data_samples/tiny/pretrain_record.json`"
    parts = []
    psnr = _find_number(record, "psnr")
    if TINY_DECODER_RECORD.is_file():
        psnr = float(_json(TINY_DECODER_RECORD)["eval_after"]["video_psnr_db"])
        source += ", the video decoder's `data_samples/tiny/decoder_record.json`"
    if psnr is not None:
        parts.append(f"its video codec reconstructs held-out toy clips at {psnr:.1f} dB PSNR")
    params = _find_number(record, "transformer_params")
    if params is not None:
        parts.append(f"its transformer has {params / 1e6:.2f} M parameters")
    return (f"The tiny kit's records ({source}): " + ", ".join(parts) + "."
            if parts else "The tiny kit's pretrain record is `data_samples/tiny/pretrain_record.json`.")


def _find_number(record: Any, key_part: str) -> float | None:
    """The first number in a nested record whose key contains ``key_part`` (records grow new sections)."""
    if isinstance(record, dict):
        for key, value in record.items():
            if key_part in str(key).lower() and isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        for value in record.values():
            found = _find_number(value, key_part)
            if found is not None:
                return found
    return None


def real_path_markdown() -> str:
    """LTX-2.3 at full size through ``ltxic train`` and ``ltxic sample`` (``benchmarks/results/ltx23_real_path.json``)."""
    data = _json(REAL_PATH_RESULTS)
    h100, small = data["h100"], data["24gb"]
    stages = sum(v["seconds"] for v in h100["sample"].values())
    return (f"Measured at full size with random weights (`benchmarks/results/ltx23_real_path.json`, on an "
            f"{h100['device']}): `ltx23_h100` (then eager, every block recomputed) trains at "
            f"{h100['train']['step_seconds_median']:.1f} s/step at 960x544x121 in {h100['train']['step_peak_gib']:.0f} GiB, "
            f"and a two-stage {h100['sample_size']} clip takes {stages:.0f} s in its stages ({h100['sample_seconds']:.0f} s "
            f"with loading); `ltx23_24gb` (then without block offload) stays under a {small['cap_gib']:.0f} GiB cap in every "
            f"stage (fp8 blocks, Gemma streamed from host memory, {small['train']['step_seconds_median']:.1f} s/step at "
            f"{small['sample_size']}).")


SIDE_BY_SIDE_RUNS = ("h200_session3_run1.json", "h200_session3_run2.json")  # ltxic first, then the pipelines first
SIDE_BY_SIDE_24GB = "h200_session3_run3_24gb.json"
SIDE_BY_SIDE_IC = "h200_session4_ic_lora.json"  # ltxic-ic, pipelines-ic, pipelines-ic, ltxic-ic in one call


def sampling_speed_markdown() -> str:
    """``ltxic sample --two-stage`` beside ltx-pipelines' ``TI2VidTwoStagesPipeline`` in the same calls
    (``benchmarks/sample_side_by_side.py``; ``benchmarks/results/side_by_side/``)."""
    folder = RESULTS / "side_by_side"
    runs = [_json(folder / name) for name in SIDE_BY_SIDE_RUNS]
    capped = _json(folder / SIDE_BY_SIDE_24GB)
    pairs = ", ".join(f"{r['sides']['ltxic']['wall_seconds']:.0f} s against {r['sides']['pipelines']['wall_seconds']:.0f} s"
                      for r in runs)
    ratios = ", ".join(f"{r['ratios']['ltxic / pipelines']['time']:.2f}x" for r in runs)
    mine, theirs = capped["sides"]["ltxic-24gb"], capped["sides"]["pipelines-24gb"]
    ic = _json(folder / SIDE_BY_SIDE_IC)
    ic_ratio = ic["ratios"]["ltxic-ic / pipelines-ic"]
    ic_mine = [r for k, r in ic["sides"].items() if k.startswith("ltxic-ic")]
    ic_theirs = [r for k, r in ic["sides"].items() if k.startswith("pipelines-ic")]
    ic_walls = [" and ".join(f"{r['wall_seconds']:.0f}" for r in side) for side in (ic_mine, ic_theirs)]
    return (f"Beside ltx-pipelines' `TI2VidTwoStagesPipeline` on the same full-size tree (random weights), the same "
            f"{runs[0]['size']} clip with LTX-2.3's defaults, each pair in one call on an {runs[0]['device']} "
            f"(`benchmarks/results/side_by_side/`): `ltxic sample --two-stage` took {pairs} from import to written "
            f"mp4 ({ratios} the pipelines' time; ltxic ran first, then second), at a peak of "
            f"{runs[0]['sides']['ltxic']['peak_gib']:.1f} against {runs[0]['sides']['pipelines']['peak_gib']:.1f} GiB. "
            f"Under a {mine['cap_gib']} GiB cap, `--fp8 --offload-text-encoder` took {mine['wall_seconds']:.0f} s at "
            f"{mine['peak_gib']:.1f} GiB; the pipelines with fp8 weights {theirs['wall_seconds']:.0f} s at "
            f"{theirs['peak_gib']:.1f} GiB. With an IC-LoRA and a reference image, `ltxic sample --two-stage --distilled` "
            f"took {ic_walls[0]} s against `ICLoraPipeline`'s {ic_walls[1]} s in one call, both orders "
            f"({ic_ratio['time']:.2f}x on average), at a peak of {ic_mine[0]['peak_gib']:.1f} against "
            f"{ic_theirs[0]['peak_gib']:.1f} GiB.")


def train_speed_markdown() -> str:
    """The trainer's own step against a plain ltx-core loop (``benchmarks/results/train_speed``)."""
    t = full_run_times()["speed_run"]
    lean, plain12 = _json(RESULTS / "train_speed/call12/lean.json"), _json(RESULTS / "train_speed/call12/plain.json")
    offload = _json(RESULTS / "train_speed/call6/24gb.json")
    return "\n".join([
        f"- `ltx23_h100`: **{t['step_s']:.2f} s** a step in {t['peak_gib']:.1f} GiB (fits an H100 80 GB), "
        f"{t['speedup']:.1f}x a plain ltx-core loop in the same run ({t['plain_step_s']:.2f} s): "
        f"{t['steps']} steps in {t['minutes']:.0f} min;",
        f"- fp8 weights with every block recomputed (the lean setting): {lean['step_median_s']:.2f} s in "
        f"{lean['peak_gib']:.1f} GiB, against the plain loop's {plain12['step_median_s']:.2f} s in {plain12['peak_gib']:.1f} GiB;",
        f"- `ltx23_24gb` with block offload: {offload['step_median_s']:.2f} s at a {offload['peak_gib']:.1f} GiB peak "
        f"(rank {offload['lora_rank']}, attention only, under a {offload['cap_gib']} GiB cap).",
    ])


def multi_gpu_markdown() -> str:
    """Two H200s against one (``benchmarks/results/train_speed/call3``)."""
    run = RESULTS / "train_speed" / "call3"
    one, ddp = _json(run / "eager_none.json"), _json(run / "eager_none_ddp2.json")
    one_all, fsdp = _json(run / "eager_all.json"), _json(run / "eager_all_fsdp2.json")

    def throughput(r: dict[str, Any]) -> float:  # examples a second over all GPUs
        return r["world_size"] / r["step_median_s"]

    return "\n".join([
        f"- `ddp` runs at **{throughput(ddp) / throughput(one):.2f}x** the throughput of one GPU, with no recompute, "
        f"{ddp['peak_gib']:.0f} GiB per GPU.",
        f"- `fsdp` peaks at **{fsdp['peak_gib'] / one_all['peak_gib']:.0%}** of one GPU's memory: {fsdp['peak_gib']:.1f} "
        f"against {one_all['peak_gib']:.1f} GiB per GPU with every block recomputed, at "
        f"{throughput(fsdp) / throughput(one_all):.2f}x one GPU's throughput. It is the mode for cards that cannot hold "
        f"the 22B base and its adapters.",
    ])


def h100_shapes_markdown() -> str:
    """The real shapes on an H100 (``benchmarks/results/h100/results.json``)."""
    rows = {(r["section"], r["setting"]): r for r in _json(H100_RESULTS)["results"] if r.get("status") == "ok"}
    fwd, fp8 = rows[("inference", "full_960x544x121")], rows[("fp8", "full_960x544x121")]
    big, small = rows[("training", "train_960x544x121")], rows[("training", "train_768x448x49")]
    return (f"Real shapes on an H100 (random weights): one 960x544x121 forward {fwd['median_s']:.2f} s at "
            f"{fwd['peak_allocated_gib']:.0f} GiB; a rank-128 LoRA training step with gradient checkpointing "
            f"{big['step_median_s']:.1f} s at {big['peak_allocated_gib']:.0f} GiB ({small['step_median_s']:.1f} s at "
            f"768x448x49); fp8 weights {fp8['weights_gib']:.1f} GiB instead of {fwd['weights_gib']:.1f} GiB "
            f"(`benchmarks/results/h100/results.json`; details and the two-stage pipeline: `benchmarks/README.md`).")


def tiny_identity_markdown(identity: str = "dex") -> str:
    """The tiny kit's IC-LoRA against the base for a held-out identity (``benchmarks/results/identity_eval.json``)."""
    data = _json(RESULTS / "identity_eval.json")
    rows = {r["condition"]: r for r in data["identity"]["by_identity"][identity]["summary"]}
    base, lora = rows["base_text_only"], rows["lora_strength_1"]
    return (f"On the tiny kit, the CPU recipe's IC-LoRA ({data['train']['wall_seconds_total']:.0f} s of training, "
            f"`benchmarks/results/identity_eval.json`) puts a held-out person's face and voice into the prompt's scene "
            f"far above the base for the same prompts and seeds (face {lora['face_similarity']:.2f} vs "
            f"{base['face_similarity']:.2f}, voice {lora['voice_similarity']:.2f} vs {base['voice_similarity']:.2f} "
            f"similarity).")


# ----------------------------------------------------------------------------------------------- generated blocks
FACTS: dict[str, Callable[[], str]] = {
    "parameter_split": parameter_split_markdown,
    "gpu_run_times": gpu_run_times_markdown,
    "memory_lines": memory_lines_markdown,
    "real_path": real_path_markdown,
    "sampling_speed": sampling_speed_markdown,
    "train_speed": train_speed_markdown,
    "multi_gpu": multi_gpu_markdown,
    "h100_shapes": h100_shapes_markdown,
    "tiny_identity": tiny_identity_markdown,
}
_BLOCK = re.compile(r"(<!-- facts:(?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(\n<!-- /facts -->)", re.S)


def fact_blocks(text: str) -> list[tuple[str, str]]:
    """``(name, body)`` of each generated block in a markdown text."""
    return [(m["name"], m["body"]) for m in _BLOCK.finditer(text)]


def refresh_fact_blocks(text: str) -> str:
    """``text`` with every generated block's body rendered again from the result files."""
    def render(m: re.Match[str]) -> str:
        if m["name"] not in FACTS:
            raise KeyError(f"unknown facts block {m['name']!r}; known: {sorted(FACTS)}")
        return m.group(1) + FACTS[m["name"]]() + m.group(4)

    return _BLOCK.sub(render, text)


def strip_fact_blocks(text: str) -> str:
    """``text`` without the generated blocks' bodies (what a person typed)."""
    return _BLOCK.sub(lambda m: m.group(1) + m.group(4), text)


__all__ = ["FACTS", "RUN_FIGURE", "card_memory_gib", "fact_blocks", "full_run_times", "gpu_run_times_markdown", "h100_memory_gib",
           "memory_lines_markdown", "parameter_split", "parameter_split_markdown", "refresh_fact_blocks", "run_figures",
           "strip_fact_blocks", "tiny_kit_markdown"]


# ----------------------------------------------------------------------------------------------- hand-typed figures
# What a figure about a run looks like in prose: a time, a memory size, a picked step, a parameter count, a
# measured speed-up or share, a cost.
RUN_FIGURE = re.compile(
    r"(?<![\w.])(?:"
    r"\d+(?:\.\d+)?\s?(?:ms|s|min|h)(?:/step)?\b"  # times
    r"|\d+(?:\.\d+)?\s?GiB\b"  # memory
    r"|step \d+\b"  # a step picked
    r"|\d+(?:\.\d+)?\s?(?:[MB]|billion|million)(?:-parameter|\s+parameters?)\b"  # parameter counts
    r"|\d+(?:\.\d+)?\s?billion\b"
    r"|\d+\.\d+x\b"  # measured speed-ups
    r"|\d+(?:\.\d+)?%"  # measured shares
    r"|\$\s?\d+"  # costs
    r")")


def run_figures(text: str, allowed: Callable[[str, str], bool] = lambda figure, context: False) -> list[str]:
    """The figures about runs typed by hand in a markdown ``text``: each match of :data:`RUN_FIGURE` outside the
    generated blocks, with its surrounding words, unless ``allowed(figure, context)``."""
    text = strip_fact_blocks(text)
    found = []
    for m in RUN_FIGURE.finditer(text):
        context = text[max(0, m.start() - 40):m.end() + 40].replace("\n", " ")
        if not allowed(m.group(0), context):
            found.append(f"{m.group(0)!r} in '...{context}...'")
    return found
