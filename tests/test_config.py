"""The training config: YAML in, typed sections out, and every mistake named with its field and its fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ltxic.data.buckets import ResolutionBucket, nearest_valid_bucket
from ltxic.training.config import DEFAULT_TARGET_MODULES, MODEL_PRESETS, ConfigError, TrainingConfig, example_config, load_config

EXAMPLES = ("tiny_cpu", "ltx23_h100", "ltx23_24gb")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A run folder with the input files a config points at (contents do not matter to the config)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text('{"version": 1, "identities": {}, "entries": []}\n')
    (tmp_path / "data" / "face.jpg").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "data" / "voice.wav").write_bytes(b"RIFF")
    (tmp_path / "base.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return tmp_path


def good_dict() -> dict:
    return {
        "model": {"preset": "tiny", "dtype": "float32"},
        "dataset": {"dataset_file": "data/dataset.json", "resolution_buckets": ["128x128x25", "96x64x17"]},
        "training_strategy": {"name": "audio_ref_only_ic"},
        "optimization": {"steps": 300, "learning_rate": 5e-4, "warmup_steps": 20},
        "lora": {"rank": 16, "alpha": 16},
        "validation": {
            "interval": 100,
            "reference_image": "data/face.jpg",
            "reference_audio": "data/voice.wav",
            "prompts": ["A person nods while speaking in a bright blue room."],
        },
        "output": {"dir": "out", "checkpoint_interval": 100, "keep_last_n": 2},
    }


def write(folder: Path, data: dict, name: str = "run.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems_of(folder: Path, data: dict, **kwargs) -> tuple[str, dict[str, str]]:
    path = write(folder, data)
    with pytest.raises(ConfigError) as info:
        load_config(path, **kwargs)
    err = info.value
    assert str(path) in str(err)  # every message names the file
    return str(err), dict(err.problems)


# ---------------------------------------------------------------------------------------------- buckets


def test_bucket_parse_and_str():
    b = ResolutionBucket.parse("768x448x49")
    assert (b.width, b.height, b.frames) == (768, 448, 49)
    assert str(b) == "768x448x49"
    assert ResolutionBucket.parse(" 960X544X121 ") == ResolutionBucket(960, 544, 121)
    assert ResolutionBucket.parse([544, 960, 121]) == ResolutionBucket(544, 960, 121)
    assert b.latent_size == (7, 14, 24)
    assert b.num_latent_tokens == 7 * 14 * 24


def test_the_common_24gb_bucket_is_explained():
    with pytest.raises(ValueError) as info:
        ResolutionBucket.parse("768x432x49")
    msg = str(info.value)
    assert "432 = 13.5 x 32" in msg
    assert "'768x448x49' or '768x416x49'" in msg


def test_bad_frames_offer_nearest_8k_plus_1():
    with pytest.raises(ValueError) as info:
        ResolutionBucket.parse("768x448x50")
    msg = str(info.value)
    assert "frames 50 is not 8k+1" in msg
    assert "'768x448x49' or '768x448x57'" in msg


def test_malformed_bucket():
    with pytest.raises(ValueError, match=r"WIDTHxHEIGHTxFRAMES"):
        ResolutionBucket.parse("768x448")


@pytest.mark.parametrize(
    ("asked", "nearest"),
    [
        ((768, 432, 49), (768, 448, 49)),  # a tie rounds up
        ((770, 430, 50), (768, 416, 49)),
        ((1000, 560, 100), (992, 576, 97)),  # 560 is a tie (544 | 576): up
        ((10, 10, 0), (32, 32, 1)),  # never below the smallest valid size
        ((960, 544, 121), (960, 544, 121)),  # a valid bucket is its own nearest
    ],
)
def test_nearest_valid_bucket(asked, nearest):
    got = nearest_valid_bucket(*asked)
    assert (got.width, got.height, got.frames) == nearest
    assert got.is_valid


# ----------------------------------------------------------------------------------------- good configs


def test_good_config_loads_and_resolves_paths_against_the_yaml_folder(files: Path, monkeypatch):
    monkeypatch.chdir(files.parent)  # somewhere else: resolution must not depend on the current folder
    cfg = load_config(write(files, good_dict()))
    assert cfg.dataset.dataset_file == files / "data" / "dataset.json"
    assert cfg.validation.reference_audio == files / "data" / "voice.wav"
    assert cfg.output.dir == files / "out"
    assert cfg.dataset.resolution_buckets == [ResolutionBucket(128, 128, 25), ResolutionBucket(96, 64, 17)]
    assert cfg.validation_resolution == ResolutionBucket(128, 128, 25)
    assert cfg.lora.target_modules == list(DEFAULT_TARGET_MODULES)
    assert cfg.optimization.batch_size == 1 and cfg.optimization.scheduler == "linear"
    # 0 for audio_ref_only_ic (the portrait enters as reference tokens), Lightricks' default otherwise
    assert cfg.training_strategy.first_frame_conditioning_p == 0.0
    data = good_dict()
    data["training_strategy"] = {"name": "ic"}
    assert load_config(write(files, data)).training_strategy.first_frame_conditioning_p == 0.1
    # validation guidance: null = the kit's defaults (ltxic.sampling.guidance.Guidance.for_kit); a mapping overrides
    assert cfg.validation.guidance is None
    data = good_dict()
    data["validation"] = {**data["validation"], "guidance": {"video": {"cfg": 4.0}, "reference_audio": 2.0}}
    assert load_config(write(files, data)).validation.guidance == {"video": {"cfg": 4.0}, "reference_audio": 2.0}
    data["validation"]["guidance"] = {"video": {"cfgg": 4.0}}
    with pytest.raises(ConfigError, match="cfgg"):
        load_config(write(files, data))


def test_round_trip_through_yaml(files: Path, tmp_path_factory):
    cfg = load_config(write(files, good_dict()))
    same_folder = cfg.to_yaml(files / "copy.yaml")
    assert load_config(same_folder) == cfg
    text = same_folder.read_text()
    assert "dataset_file: data/dataset.json" in text  # paths stay relative, so the folder can move
    assert "128x128x25" in text
    elsewhere = cfg.to_yaml(tmp_path_factory.mktemp("elsewhere") / "deep" / "copy.yaml")
    assert load_config(elsewhere) == cfg
    assert not list(elsewhere.parent.glob(".*.tmp"))  # the atomic write leaves no temp file


def test_to_yaml_does_not_touch_an_existing_file_on_failure(files: Path, monkeypatch):
    cfg = load_config(write(files, good_dict()))
    target = files / "keep.yaml"
    target.write_text("previous\n")
    real_write_text = Path.write_text

    def write_half_then_fail(self, text, *args, **kwargs):  # a crash in the middle of the write
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("simulated crash")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="simulated crash"):
        cfg.to_yaml(target)
    monkeypatch.undo()
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in files.iterdir() if p.name.startswith(".")) == []


def test_dumps_and_json_schema(files: Path):
    cfg = load_config(write(files, good_dict()))
    assert cfg.model_dump()["dataset"]["resolution_buckets"][0] == "128x128x25"
    assert TrainingConfig.model_validate(cfg.model_dump()) == cfg
    assert cfg.model_dump(mode="json")["dataset"]["resolution_buckets"] == ["128x128x25", "96x64x17"]
    assert TrainingConfig.model_validate_json(cfg.model_dump_json()) == cfg
    schema = TrainingConfig.model_json_schema()  # for editors' YAML completion
    assert schema["$defs"]["LoraConfig"]["properties"]["rank"]["exclusiveMinimum"] == 0


def test_model_validate_checks_values_but_not_files():
    cfg = TrainingConfig.model_validate(good_dict())  # the files do not exist; plain validation allows that
    assert cfg.dataset.dataset_file == Path("data/dataset.json")
    bad = good_dict()
    bad["lora"]["rank"] = 0
    with pytest.raises(ValueError, match="greater than 0"):
        TrainingConfig.model_validate(bad)


def test_assignment_is_validated(files: Path):
    cfg = load_config(write(files, good_dict()))
    cfg.optimization.steps = 100
    with pytest.raises(ValueError):
        cfg.lora.rank = -1


def test_base_dir_override(files: Path, tmp_path_factory):
    other = tmp_path_factory.mktemp("configs")
    cfg = load_config(write(other, good_dict()), base_dir=files)
    assert cfg.dataset.dataset_file == files / "data" / "dataset.json"


def test_empty_section_means_defaults(files: Path):
    path = files / "run.yaml"
    path.write_text(yaml.safe_dump(good_dict(), sort_keys=False) + "")
    text = path.read_text().replace("lora:\n  rank: 16\n  alpha: 16\n", "lora:\n  # rank: 16\n")
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.lora.rank == 128 and cfg.lora.alpha == 128


def test_shipped_examples_parse():
    for name in EXAMPLES:
        cfg = load_config(example_config(name), check_files=False)
        for bucket in cfg.dataset.resolution_buckets:
            assert bucket.is_valid
        assert cfg.training_strategy.name == "audio_ref_only_ic"
    tiny = load_config(example_config("tiny_cpu"), check_files=False)
    assert tiny.model.preset == "tiny" and tiny.optimization.steps <= 1000 and tiny.lora.rank <= 32
    assert tiny.dataset.dataset_file.parts[-2:] == ("data_samples", "dataset.json")
    repo_root = Path(__file__).resolve().parents[1]
    assert tiny.dataset.dataset_file == repo_root / "data_samples" / "dataset.json"  # works from a checkout
    h100 = load_config(example_config("ltx23_h100"), check_files=False)
    assert (h100.model.preset, h100.model.dtype) == ("ltx-2.3-22b", "bfloat16")
    assert (h100.lora.rank, h100.lora.alpha) == (128, 128)
    assert (h100.optimization.learning_rate, h100.optimization.steps) == (1e-4, 6000)
    assert h100.validation.interval == 500 and h100.output.checkpoint_interval == 500
    assert ResolutionBucket(960, 544, 121) in h100.dataset.resolution_buckets
    small = load_config(example_config("ltx23_24gb"), check_files=False)
    assert small.model.fp8 and small.optimization.gradient_checkpointing
    assert small.dataset.resolution_buckets == [ResolutionBucket(768, 448, 49)]


def test_example_config_unknown_name():
    with pytest.raises(KeyError, match="tiny_cpu"):
        example_config("tiny-cpu")


def test_presets_match_the_models_module():
    from ltxic.models.transformer import PRESETS

    assert sorted(MODEL_PRESETS) == sorted(PRESETS)


# ------------------------------------------------------------------------------------------- bad inputs


def test_every_problem_is_listed_at_once(files: Path):
    data = good_dict()
    data["lora"]["rank"] = 0
    data["lora"]["alpha"] = -4
    data["optimization"]["learning_rate"] = 0
    data["dataset"]["resolution_buckets"] = ["768x432x49"]
    text, problems = problems_of(files, data)
    assert "4 problems" in text
    assert set(problems) == {"lora.rank", "lora.alpha", "optimization.learning_rate", "dataset.resolution_buckets[0]"}


def test_rank_alpha_lr_must_be_positive(files: Path):
    data = good_dict()
    data["lora"].update(rank=0, alpha=0)
    data["optimization"]["learning_rate"] = -1e-4
    _, problems = problems_of(files, data)
    assert "greater than 0 (got 0)" in problems["lora.rank"] and "16-128 is typical" in problems["lora.rank"]
    assert "greater than 0 (got 0)" in problems["lora.alpha"] and "equal to rank" in problems["lora.alpha"]
    assert "(got -0.0001)" in problems["optimization.learning_rate"]
    assert "1e-4 suits LoRAs" in problems["optimization.learning_rate"]


def test_invalid_bucket_in_config(files: Path):
    data = good_dict()
    data["dataset"]["resolution_buckets"] = ["128x128x25", "768x432x49"]
    data["validation"]["resolution"] = "100x100x10"
    _, problems = problems_of(files, data)
    msg = problems["dataset.resolution_buckets[1]"]
    assert "432 = 13.5 x 32" in msg and "'768x448x49' or '768x416x49'" in msg
    assert "width 100 = 3.125 x 32 and height 100 = 3.125 x 32" in problems["validation.resolution"]
    assert "frames 10 is not 8k+1" in problems["validation.resolution"]


def test_unknown_keys_get_a_suggestion(files: Path):
    data = good_dict()
    data["lora"]["rnak"] = 8
    data["optimisation"] = data.pop("optimization")
    _, problems = problems_of(files, data)
    assert "unknown key 'rnak'. Did you mean 'rank'?" in problems["lora.rnak"]
    assert "Did you mean 'optimization'?" in problems["optimisation"]


def test_unknown_strategy_lists_the_valid_ones(files: Path):
    data = good_dict()
    data["training_strategy"]["name"] = "audio_ref_ic"
    _, problems = problems_of(files, data)
    msg = problems["training_strategy.name"]
    assert "unknown strategy 'audio_ref_ic'" in msg
    assert "text_to_video, ic, audio_ref_only_ic" in msg
    assert "Did you mean 'audio_ref_only_ic'?" in msg


def test_unknown_preset(files: Path):
    data = good_dict()
    data["model"]["preset"] = "ltx-2.3"
    _, problems = problems_of(files, data)
    assert "unknown preset 'ltx-2.3'; valid: tiny, ltx-2.3-22b. Did you mean 'ltx-2.3-22b'?" in problems["model.preset"]


def test_model_needs_preset_or_checkpoint(files: Path):
    data = good_dict()
    data["model"] = {"dtype": "float32"}
    _, problems = problems_of(files, data)
    assert "neither model.preset nor model.checkpoint" in problems["model.preset"]


def test_checkpoint_must_be_safetensors(files: Path):
    (files / "base.ckpt").write_bytes(b"x")
    data = good_dict()
    data["model"]["checkpoint"] = "base.ckpt"
    _, problems = problems_of(files, data)
    assert "must be a .safetensors file" in problems["model.checkpoint"]
    data["model"]["checkpoint"] = "base.safetensors"
    assert load_config(write(files, data)).model.checkpoint == files / "base.safetensors"


def test_missing_files_name_the_field_and_the_resolved_path(files: Path):
    data = good_dict()
    data["dataset"]["dataset_file"] = "data/missing.json"
    data["model"]["checkpoint"] = "models/nope.safetensors"
    data["validation"]["reference_image"] = "data/nope.jpg"
    data["validation"]["reference_audio"] = "../nope.wav"
    _, problems = problems_of(files, data)
    assert f"file not found: {files / 'data' / 'missing.json'}" in problems["dataset.dataset_file"]
    assert "ltxic pair" in problems["dataset.dataset_file"]
    assert f"file not found: {files / 'models' / 'nope.safetensors'}" in problems["model.checkpoint"]
    assert f"file not found: {files / 'data' / 'nope.jpg'}" in problems["validation.reference_image"]
    assert f"file not found: {files.parent / 'nope.wav'}" in problems["validation.reference_audio"]
    assert f"relative paths resolve against {files}" in problems["validation.reference_audio"]
    # the same config is fine when file checks are off (data not made yet)
    assert load_config(files / "run.yaml", check_files=False).dataset.dataset_file == files / "data" / "missing.json"


def test_a_folder_is_not_a_file(files: Path):
    data = good_dict()
    data["dataset"]["dataset_file"] = "data"
    _, problems = problems_of(files, data)
    assert "is a folder, expected a file" in problems["dataset.dataset_file"]


def test_missing_required_field_and_section(files: Path):
    data = good_dict()
    del data["dataset"]["dataset_file"]
    del data["training_strategy"]
    _, problems = problems_of(files, data)
    assert "required but missing" in problems["dataset.dataset_file"]
    assert "ltxic pair" in problems["dataset.dataset_file"]
    assert "add a 'training_strategy:' section" in problems["training_strategy"]


def test_validation_needs_its_references(files: Path):
    data = good_dict()
    del data["validation"]["reference_audio"]
    data["validation"]["prompts"] = []
    _, problems = problems_of(files, data)
    assert "reference voice clip" in problems["validation.reference_audio"]
    assert "no prompts" in problems["validation.prompts"]
    data["validation"]["interval"] = 0  # disabled: nothing needed
    assert load_config(write(files, data)).validation.interval == 0


def test_warmup_must_be_shorter_than_the_run(files: Path):
    data = good_dict()
    data["optimization"].update(steps=50, warmup_steps=50)
    _, problems = problems_of(files, data)
    assert "50 must be below optimization.steps (50)" in problems["optimization.warmup_steps"]


def test_wrong_choice_and_type(files: Path):
    data = good_dict()
    data["optimization"]["scheduler"] = "cosin"
    data["optimization"]["mixed_precision"] = "fp16"
    data["lora"]["dropout"] = 1.5
    data["optimization"]["batch_size"] = "one"
    _, problems = problems_of(files, data)
    assert "Did you mean 'cosine'?" in problems["optimization.scheduler"]
    assert "valid: no, bf16" in problems["optimization.mixed_precision"]
    assert "(got 1.5)" in problems["lora.dropout"]
    assert "(got 'one')" in problems["optimization.batch_size"]


def test_yaml_syntax_error_names_file_and_line(files: Path):
    path = files / "broken.yaml"
    path.write_text("model:\n  preset: tiny\nlora:\n  rank: [16\n  alpha: 16\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "YAML syntax error" in msg
    assert "line 5" in msg


def test_duplicate_key_is_an_error(files: Path):
    path = files / "dup.yaml"
    path.write_text("lora:\n  rank: 16\n  rank: 32\n")
    with pytest.raises(ConfigError, match=r"line 3.*key 'rank' appears twice \(first on line 2\)"):
        load_config(path)


def test_missing_empty_and_non_mapping_files(files: Path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(files / "nope.yaml")
    (files / "empty.yaml").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_config(files / "empty.yaml")
    (files / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections, got list"):
        load_config(files / "list.yaml")


def test_unsafe_yaml_tags_are_refused(files: Path):
    path = files / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load_config(path)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    err = ConfigError("run.yaml", [("lora.rank", "bad")])
    assert str(err) == "run.yaml: 1 problem in the training config:\n  - lora.rank: bad"


def test_cli_validate_config(files: Path, capsys):
    from ltxic.cli import main

    good = write(files, good_dict())
    assert main(["validate-config", str(good)]) == 0
    assert "ok" in capsys.readouterr().out
    data = good_dict()
    data["lora"]["rank"] = 0
    bad = write(files, data, "bad.yaml")
    assert main(["validate-config", str(bad)]) == 1
    assert "lora.rank" in capsys.readouterr().err
    assert main(["validate-config", "--no-check-files", str(example_config("ltx23_h100"))]) == 0
    assert os.path.exists(good)


def test_with_overrides_replaces_fields_and_validates_again(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(example_config("tiny_cpu"), check_files=False)
    steps_in_file = cfg.optimization.steps
    short = cfg.with_overrides({"optimization.steps": 60, "output.dir": "run", "validation.interval": 30})
    assert (short.optimization.steps, short.validation.interval) == (60, 30)
    assert short.output.dir == tmp_path / "run"  # relative to the current folder
    assert short.dataset.dataset_file == cfg.dataset.dataset_file and cfg.optimization.steps == steps_in_file != 60  # a copy
    with pytest.raises(ConfigError) as err:
        cfg.with_overrides({"optimization.stepz": 60, "lora.rank": 0})
    text = str(err.value)
    assert "optimization.stepz" in text and "optimization.steps" in text  # names the field and the valid ones
    with pytest.raises(ConfigError, match="lora.rank"):
        cfg.with_overrides({"lora.rank": 0})
