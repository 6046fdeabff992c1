"""The concept figure is drawn from a real batch: the trainer's cache of a data_samples clip, collated and laid out
by the strategy's own training_step_inputs, and the figure states that batch's token counts."""

import json
from pathlib import Path

import numpy as np
import pytest

from ltxic.course.concept import identity_recipes_markdown, plot_token_layout, token_layout
from ltxic.training.config import example_config, load_config

DATA = Path(__file__).resolve().parents[1] / "data_samples"


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    # one training clip of data_samples (absolute paths), so the cache encodes one entry
    tmp = tmp_path_factory.mktemp("concept")
    data = json.loads((DATA / "dataset.json").read_text())
    entry = next(e for e in data["entries"] if e["split"] == "train")
    for key in ("video_path", "reference_image", "reference_audio"):
        entry[key] = str(DATA / entry[key])
    data["entries"], data["allow_outside_paths"] = [entry], True
    (tmp / "dataset.json").write_text(json.dumps(data))
    cfg = load_config(example_config("tiny_cpu")).with_overrides(
        {"dataset.dataset_file": str(tmp / "dataset.json"), "output.dir": str(tmp / "run")})
    return token_layout(cfg, sigma=0.6), cfg, entry


def test_layout_is_the_batch_the_trainer_builds(layout):
    lay, cfg, entry = layout
    _, _, frames, height, width = lay.video_latent_shape
    assert lay.strategy == cfg.training_strategy.name == "audio_ref_only_ic"
    assert lay.caption == entry["caption"] and lay.identity == entry["identity"]
    assert lay.video.n_target == frames * height * width
    assert lay.video.n_reference == int(np.prod(lay.reference_latent_shape[2:]))
    assert lay.audio.n_reference == lay.reference_audio_latent_shape[2]
    # target tokens at the sampled timestep, reference tokens clean, and only targets in the loss
    for stream in (lay.video, lay.audio):
        assert np.allclose(stream.timesteps[:stream.n_target], 0.6)
        assert np.all(stream.timesteps[stream.n_target:] == 0)
        assert stream.in_loss[:stream.n_target].all() and not stream.in_loss[stream.n_target:].any()
    # the voice sits before the clip, the face at its start
    assert lay.audio.end_s[lay.audio.n_target:].max() < 0 <= lay.audio.start_s[:lay.audio.n_target].min()
    assert lay.video.start_s[lay.video.n_target:].min() == 0


def test_figure_states_the_batch_counts(layout):
    lay, _, _ = layout
    fig = plot_token_layout(lay)
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    labels = " ".join(t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts())
    for stream in (lay.video, lay.audio):
        assert f"{stream.n_target} tokens, timestep 0.60" in texts
        assert f"{stream.n_reference} tokens, timestep 0 " in texts
    assert f"reference voice ({lay.audio.n_reference} tokens)" in labels
    assert "negative time" in texts and fig._repr_png_()[:4] == b"\x89PNG"


def test_recipes_table_uses_the_batch(layout):
    lay, _, _ = layout
    table = identity_recipes_markdown(lay)
    frame = lay.video_latent_shape[3] * lay.video_latent_shape[4]
    assert f"{lay.video.n_reference} extra tokens" in table
    assert f"({frame} of its {lay.video.n_target} tokens)" in table
    assert table.count("\n") == 8 and table.startswith("| | reference as IC tokens")
