"""Multi-process training on CPU (gloo): 2 ranks under torchrun, in both modes, train the same LoRA as 1 process with
twice the batch; a run whose rank is killed resumes exactly. The tiny LTX-2 base with a real LoRA and the real
``audio_ref_only_ic`` strategy (tests/trainer_standins.py); tests/distributed_worker.py is one rank.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import distributed_worker as worker
from ltxic.training.distributed import Distributed
from ltxic.training.checkpoints import latest_checkpoint
from ltxic.training.loop import read_metrics

TESTS = Path(__file__).parent
STEPS, INTERVAL, BATCH = 8, 2, 2
LAST = f"step_{STEPS:06d}"
# float32 sums in another order (a batch of 4 vs two of 2 averaged by the all-reduce): differences of a few ulps
# per step that AdamW carries along; 8 steps measured about 1e-7 on LoRA weights of about 0.1 here. AdamW divides by
# sqrt(v), so where an element's gradient is near zero those ulps move its update by a visible share of the learning
# rate (1e-3): CI's CPU measured 3.4e-6 on one element of 512. A rank that skipped the all-reduce, or trained on the
# wrong clips, moves many weights by the order of the learning rate at once: 1e-5 is far below that.
ATOL, RTOL = 1e-5, 1e-5

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """A 1-process run with batch size 2 x BATCH."""
    out = tmp_path_factory.mktemp("one")
    worker.run(out, STEPS, INTERVAL, 2 * BATCH)
    return out


def torchrun(out: Path, mode: str, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(TESTS / "distributed_worker.py"), str(out), str(STEPS), str(INTERVAL), str(BATCH), mode, *extra]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]
    return err.decode()


def assert_same_run(out: Path, reference: Path) -> None:
    ours, theirs = load_file(out / "checkpoints" / LAST / "lora.safetensors"), load_file(reference / "checkpoints" / LAST / "lora.safetensors")
    assert ours.keys() == theirs.keys()
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], atol=ATOL, rtol=RTOL)
    rows, ref_rows = read_metrics(out), read_metrics(reference)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for key in ("loss", "video_loss", "audio_loss", "grad_norm", "lr"):
        torch.testing.assert_close(torch.tensor([r[key] for r in rows]), torch.tensor([r[key] for r in ref_rows]),
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_train_the_lora_of_one_process_with_twice_the_batch(tmp_path, reference, mode) -> None:
    err = finish(torchrun(tmp_path, mode))
    assert f"effective batch size {2 * BATCH * 2} = world size 2 x batch size {BATCH} x gradient accumulation 2 (mode: {mode})" in err
    assert_same_run(tmp_path, reference)
    # only rank 0 writes: one log, one set of checkpoints; every rank's RNG state is in them
    state = torch.load(tmp_path / "checkpoints" / LAST / "training_state.pt", weights_only=True)
    assert len(state["rng_ranks"]) == 2 and state["data_order"]["batch_size"] == 2 * BATCH
    assert not list(tmp_path.glob("checkpoints/.tmp-*"))


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_kill_one_rank_then_resume_matches_uninterrupted(tmp_path, reference, mode) -> None:
    # after the first checkpoint every loss call sleeps, so the kill lands between checkpoints
    proc = torchrun(tmp_path, mode, "4")
    deadline = time.monotonic() + 90
    while not ((tmp_path / "checkpoints" / "latest").exists() and (tmp_path / "pid.rank1").exists()):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 90 s"
        time.sleep(0.02)
    os.kill(int((tmp_path / "pid.rank1").read_text()), signal.SIGKILL)
    proc.communicate(timeout=120)  # torchrun stops rank 0 and fails
    assert proc.returncode != 0
    assert INTERVAL <= len(read_metrics(tmp_path)) < STEPS
    first = latest_checkpoint(tmp_path)
    assert first is not None and first.name != LAST

    finish(torchrun(tmp_path, mode, "--resume"))
    assert_same_run(tmp_path, reference)  # same LoRA, same loss curve, each step logged once


def test_share_splits_the_global_batch_and_scales_the_loss() -> None:
    ranks = [Distributed(world_size=2, rank=r, mode="ddp") for r in range(2)]
    assert [r.share([7, 3, 5, 1]) for r in ranks] == [([7, 3], 0, 1.0), ([5, 1], 2, 1.0)]
    assert [r.share([7, 3, 5]) for r in ranks] == [([7, 3], 0, 4 / 3), ([5], 2, 2 / 3)]
    assert [r.share([9]) for r in ranks] == [([9], 0, 2.0), ([9], 0, 0.0)]  # an empty share trains with weight 0
    assert Distributed().share([4, 2]) == ([4, 2], 0, 1.0)


def test_per_sample_noise_does_not_depend_on_the_split() -> None:
    """The loss of a batch of 2 with per-sample generators equals the mean of the two halves' losses."""
    import trainer_standins as standins
    from ltxic.models.strategies import collate
    from ltxic.training.loop import sample_generator

    model, strategy, samples = standins.make_model(), standins.strategy(), standins.make_samples(2)
    with torch.no_grad():
        whole, _ = strategy.loss(model, collate(samples), [sample_generator(1, 2, 0, j) for j in range(2)])
        halves = [strategy.loss(model, collate([samples[j]]), [sample_generator(1, 2, 0, j)])[0] for j in range(2)]
        single, _ = strategy.loss(model, collate(samples[:1]), sample_generator(1, 2, 0, 0))
    torch.testing.assert_close(whole, (halves[0] + halves[1]) / 2, atol=1e-6, rtol=1e-6)
    assert torch.equal(single, halves[0])  # a batch of one draws what it always drew


def test_config_chooses_the_mode() -> None:
    from pydantic import ValidationError

    from ltxic.training.config import example_config, load_config
    from ltxic.training.trainer import options_from_config

    cfg = load_config(example_config("tiny_cpu"), check_files=False)
    assert cfg.optimization.distributed == "auto" and options_from_config(cfg).distributed == "auto"
    data = cfg.model_dump(mode="json")
    data["optimization"]["distributed"] = "fsdp"
    assert options_from_config(type(cfg).model_validate(data)).distributed == "fsdp"
    data["optimization"]["distributed"] = "deepspeed"
    with pytest.raises(ValidationError, match="distributed"):
        type(cfg).model_validate(data)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_ltxic_train_under_torchrun_with_the_tiny_kit(tmp_path, tiny_kit, mode) -> None:
    """`torchrun --nproc_per_node 2 -m ltxic.cli train CONFIG`: the ranks share the caching, the cache is a 1-process
    run's, the LoRA is a 1-process run's with twice the batch, and rank 0 alone writes the validation clips
    (under FSDP every rank runs the sampler: the forward gathers the shards). With gradient checkpointing."""
    import json

    import yaml

    from ltxic.training.cache import INDEX_FILE
    from ltxic.training.config import example_config, load_config
    from ltxic.training.trainer import train

    # one caption and one pair of references for every clip: the 1-process run batches two clips, and a batch
    # needs equal text and reference lengths
    dataset = json.loads(tiny_kit.read_text())
    for entry in dataset["entries"]:
        for name in ("caption", "reference_image", "reference_audio"):
            entry[name] = dataset["entries"][0][name]
    tiny_kit.write_text(json.dumps(dataset))
    cfg = load_config(example_config("tiny_cpu"), check_files=False).model_dump(mode="json")
    cfg["dataset"].update(dataset_file=str(tiny_kit), resolution_buckets=["64x64x17"], cache_dir=str(tmp_path / "cache2"))
    first = dataset["entries"][0]
    cfg["optimization"].update(steps=4, warmup_steps=1, batch_size=1, gradient_accumulation_steps=1, distributed=mode,
                               gradient_checkpointing=True)
    cfg["lora"].update(rank=4, alpha=4)
    cfg["validation"].update(interval=4, num_inference_steps=2, prompts=[first["caption"]],
                             reference_image=str(tiny_kit.parent / first["reference_image"]),
                             reference_audio=str(tiny_kit.parent / first["reference_audio"]))
    cfg["output"].update(dir=str(tmp_path / "two"), checkpoint_interval=4)
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "ltxic.cli", "train", str(path)], env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    assert f"effective batch size 2 = world size 2 x batch size 1 x gradient accumulation 1 (mode: {mode})".encode() in proc.stderr
    written = sorted(p.name for p in (tmp_path / "two" / "validation" / "step_000004").iterdir())
    assert written == ["00.mp4", "00.safetensors", "scores.json"]  # once, by rank 0

    cfg["dataset"]["cache_dir"] = str(tmp_path / "cache1")
    cfg["optimization"]["batch_size"] = 2
    cfg["output"]["dir"] = str(tmp_path / "one")
    cfg["validation"]["interval"] = 0
    path.write_text(yaml.safe_dump(cfg))
    train(load_config(path), progress=False)

    two, one = (json.loads((tmp_path / name / INDEX_FILE).read_text())["entries"] for name in ("cache2", "cache1"))
    assert [e["key"] for e in two] == [e["key"] for e in one] and len(one) == 4
    for entry in one:
        ours, theirs = (load_file(tmp_path / name / entry["path"]) for name in ("cache2", "cache1"))
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    lora = "checkpoints/step_000004/lora.safetensors"
    ours, theirs = load_file(tmp_path / "two" / lora), load_file(tmp_path / "one" / lora)
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(torch.tensor([r["loss"] for r in read_metrics(tmp_path / "two")]),
                               torch.tensor([r["loss"] for r in read_metrics(tmp_path / "one")]), atol=1e-5, rtol=1e-5)
