"""ltxic.course.widgets: each widget built on real small data (the shipped toy clips, a tiny generated grid), its
callbacks driven by setting a control's ``.value``, and its output checked against the plain function behind it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ltxic.course import widgets as W
from ltxic.identity.metrics import CheckpointSample, compare_checkpoints, drift_curve, rewindow
from ltxic.io.media import probe_video, read_video
from tests.inference_kit import make_lora

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data_samples"
DATASET = json.loads((DATA / "dataset.json").read_text())
CAPTION = {e["video_path"]: e["caption"] for e in DATASET["entries"]}

pytestmark = pytest.mark.usefixtures("one_thread")


def _bundle_is_live_and_static(explorer: W.Explorer) -> None:
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # JupyterLab draws the widget
    assert bundle["text/html"] == explorer.static_html  # a page without a kernel draws the default state
    assert "interactive in JupyterLab" in bundle["text/plain"]


# ----------------------------------------------------------------------------------------------- lesson 03
def test_caption_box_lints_as_you_type() -> None:
    ids = DATASET["identities"]
    ex = W.caption_linter("A person nods twice while speaking in a dim green room, close-up.", ids, identity="ava")
    box, report = ex.controls["caption"], ex.outputs["report"]
    assert report.value.startswith("<p><b>clean</b>")
    _bundle_is_live_and_static(ex)

    box.value = "A blonde woman with blue eyes talks."
    assert "issues</b>" in report.value
    for word in ("blonde", "blue eyes", "woman", "reference_conflict"):
        assert word in report.value
    assert report.value == W.caption_lint_html(box.value, ids, "ava")

    box.value = "Bo nods twice while speaking in a dim green room, close-up."
    assert "names_other_identity" in report.value and "blonde" not in report.value
    assert "suggested rewrite: <i>The person nods twice" in report.value
    box.value = "Ava nods twice while speaking in a dim green room, close-up."
    assert "names_subject" in report.value


def test_lint_caption_is_the_dataset_linter_on_an_entry_with_a_reference() -> None:
    from ltxic.data.captions import check_captions

    text = "He is moving naturally."
    kinds = {i.kind for i in W.lint_caption(text)}
    # the caption alone, plus the conflict with the reference every IC-LoRA entry has
    assert kinds == {i.kind for i in check_captions([text]).issues} | {"reference_conflict"}
    assert {"gender", "vague_motion"} <= kinds
    assert W.lint_caption("A person nods twice while speaking in a dim green room, close-up.") == []


# ----------------------------------------------------------------------------------------------- lesson 05
@pytest.fixture(scope="module")
def checkpoints():
    """Two 'checkpoints' whose samples are real toy clips: ava's own (step 100) and bo's (step 200), scored against
    ava's reference by compare_checkpoints, as lesson 05 does."""
    ref_image, ref_audio = DATA / "refs" / "ava.jpg", DATA / "voice" / "ava_0.wav"
    samples = {step: [CheckpointSample(DATA / clip, ref_image, ref_audio, CAPTION[clip])]
               for step, clip in ((100, "clips/ava_000.mp4"), (200, "clips/bo_000.mp4"))}
    rows = compare_checkpoints(samples, embedders="toy")
    return samples, rows, ref_image


def test_checkpoint_view_reads_the_clips_and_their_row(checkpoints) -> None:
    samples, rows, _ = checkpoints
    view = W.checkpoint_view(100, samples, rows)
    caption, frames, fps = view.clips[0]
    assert np.array_equal(frames, read_video(DATA / "clips/ava_000.mp4"))
    assert fps == float(probe_video(DATA / "clips/ava_000.mp4").fps) and caption == CAPTION["clips/ava_000.mp4"]
    assert view.scores is rows[0] and rows[0]["step"] == 100
    with pytest.raises(KeyError, match="300"):
        W.checkpoint_view(300, samples, rows)


def test_checkpoint_slider_shows_that_checkpoint(checkpoints) -> None:
    samples, rows, ref = checkpoints
    own, other = (f"{r['face_similarity']:.3f}" for r in rows)
    assert own != other  # ava's clip against ava's face, bo's against ava's
    ex = W.checkpoint_explorer(samples, rows, ref, n_frames=4)
    slider, frames, scores = ex.controls["checkpoint"], ex.outputs["frames"], ex.outputs["scores"]
    assert slider.value == 200 and "step 200" in scores.value and other in scores.value
    at_200 = frames.value
    _bundle_is_live_and_static(ex)

    slider.value = 100
    assert "step 100" in scores.value and own in scores.value and other not in scores.value
    assert frames.value != at_200 and frames.value[:8] == b"\x89PNG\r\n\x1a\n"
    slider.value = 200
    assert frames.value == at_200  # the same checkpoint draws the same strip
    assert "step 200" in ex.static_html and ex.static_html.count("data:image/png;base64,") == 1


def test_checkpoint_strips_draw_every_checkpoint(checkpoints) -> None:
    samples, rows, ref = checkpoints
    fig = W.plot_checkpoint_strips(samples, rows, ref, n_frames=3)
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert [lab.splitlines()[0] for lab in labels] == ["step 100", "step 200"]
    assert f"face {rows[1]['face_similarity']:.3f}" in labels[1]
    assert len(fig.axes) == 2 * (1 + 3)


# ----------------------------------------------------------------------------------------------- lesson 07
@pytest.fixture(scope="module")
def drift():
    path = DATA / "clips" / "ava_000.mp4"
    fps = float(probe_video(path).fps)
    frames = read_video(path)
    return frames, fps, drift_curve(frames, DATA / "refs" / "ava.jpg", window_s=4 / fps, fps=fps, embedders="toy")


def test_rewindow_equals_measuring_again(drift) -> None:
    frames, fps, curve = drift
    again = drift_curve(frames, DATA / "refs" / "ava.jpg", window_s=8 / fps, fps=fps, embedders="toy")
    re = rewindow(curve, 8 / fps, fps)
    assert np.allclose(re.times, again.times) and np.allclose(re.similarity, again.similarity, equal_nan=True)
    assert len(re.times) < len(curve.times) and re.window_s == pytest.approx(8 / fps)


def test_window_slider_recomputes_the_curve(drift) -> None:
    frames, fps, curve = drift
    choices = [4 / fps, 8 / fps]
    ex = W.drift_explorer(curve, fps, windows=choices)
    slider, plot, text = ex.controls["window"], ex.outputs["plot"], ex.outputs["text"]
    assert slider.value == choices[0]
    before_png, before = plot.value, text.value
    assert f"({len(curve.times)})" in before
    _bundle_is_live_and_static(ex)

    slider.value = choices[1]
    c, line = W.drift_view(curve, choices[1], fps)
    assert text.value == f"<p>{line}</p>" and text.value != before
    assert f"({len(c.times)})" in text.value and f"lowest {np.nanmin(c.similarity):.3f}" in text.value
    assert plot.value != before_png


def test_window_choices_fit_the_clip(drift) -> None:
    _, fps, curve = drift
    duration = len(curve.per_frame) / fps
    choices = W.window_choices(curve, fps)
    assert curve.window_s in choices and all(c >= 2 / fps for c in choices)
    assert all(c <= duration / 2 for c in choices if c != curve.window_s)
    assert len(W.plot_drift_windows(curve, fps).axes[0].lines) == 1 + len(choices)


# ----------------------------------------------------------------------------------------------- lesson 06
@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 2 x 2 grid of real generations (the shipped tiny kit, a LoRA with random non-zero weights), scored."""
    from ltxic.sampling.generate import GenerateConfig

    lora = make_lora(tmp_path_factory.mktemp("lora") / "lora.safetensors", factor=1)
    rows = W.guidance_grid(lora, dataset=DATA / "dataset.json", identity="dex",
                           reference_image=DATA / "refs" / "dex.jpg", reference_audio=DATA / "voice" / "dex_0.wav",
                           embedders="toy",
                           prompt="A person nods while speaking in a dim green room, close-up.",
                           config=GenerateConfig(width=64, height=64, frames=9, steps=2), strengths=(0.0, 1.0),
                           scales=(0.0, 3.0))
    return rows


def test_guidance_grid_has_one_clip_per_cell(grid) -> None:
    assert sorted((r["lora_strength"], r["reference_guidance"]) for r in grid) == [(0, 0), (0, 3), (1, 0), (1, 3)]
    assert all(np.asarray(r["_frames"]).shape == (9, 64, 64, 3) for r in grid)
    assert not np.array_equal(W.grid_cell(grid, 0, 3)["_frames"], W.grid_cell(grid, 1, 3)["_frames"])
    with pytest.raises(KeyError, match="0.5"):
        W.grid_cell(grid, 0.5, 3)


def test_strength_and_guidance_sliders_show_that_clip(grid) -> None:
    ex = W.guidance_explorer(grid, DATA / "refs" / "dex.jpg", n_frames=3)
    strength, guidance = ex.controls["strength"], ex.controls["guidance"]
    frames, scores = ex.outputs["frames"], ex.outputs["scores"]
    assert (strength.value, guidance.value) == (1.0, 3.0)
    _bundle_is_live_and_static(ex)
    seen = {(1.0, 3.0): frames.value}
    for s, g in ((0.0, 3.0), (0.0, 0.0), (1.0, 0.0)):
        strength.value, guidance.value = s, g
        row = W.grid_cell(grid, s, g)
        assert f"strength {s:g}, reference guidance {g:g}" in scores.value
        assert f"{row['face_similarity']:.3f}" in scores.value and f"{row['voice_similarity']:.3f}" in scores.value
        seen[(s, g)] = frames.value
    assert len(set(seen.values())) == 4  # every cell draws its own clip
    strength.value, guidance.value = 1.0, 3.0
    assert frames.value == seen[(1.0, 3.0)]


def test_guidance_grid_figure_labels_every_cell(grid) -> None:
    fig = W.plot_guidance_grid(grid, DATA / "refs" / "dex.jpg")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("guidance")]
    assert len(titles) == 4
    row = W.grid_cell(grid, 1.0, 0.0)
    assert f"guidance 0\nface {row['face_similarity']:.3f} voice {row['voice_similarity']:.3f}" in titles
