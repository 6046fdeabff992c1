"""Widgets to explore a lesson's results in JupyterLab, each with a static counterpart for the book.

What a widget shows for given values is a plain function here, tested on its own; the widget only wires its sliders
or text box to it. The book has no kernel, so an :class:`Explorer` also carries the static HTML of its default state
(the book drops the widget view and shows that), and each lesson shows a ``plot_*`` figure of every value the
widget moves over.

* lesson 03: :func:`caption_linter`, a caption box linted as you type (:func:`caption_lint_html`);
* lesson 05: :func:`checkpoint_explorer`, a slider over the checkpoints' frames and scores (:func:`checkpoint_view`),
  and :func:`plot_checkpoint_strips`;
* lesson 06: :func:`guidance_grid` samples a small grid of LoRA strengths x reference-guidance scales once,
  :func:`guidance_explorer` looks a cell up (:func:`grid_cell`), and :func:`plot_guidance_grid`;
* lesson 07: :func:`drift_explorer`, a window-size slider that re-averages the per-frame face scores
  (:func:`ltxic.identity.metrics.rewindow`, no embedder runs again), and :func:`plot_drift_windows`.

The widgets read what the package functions return: ``{step: [CheckpointSample, ...]}`` and
:func:`~ltxic.identity.metrics.compare_checkpoints` rows (matched on ``row["step"]``), :func:`identity_eval` rows,
a :class:`~ltxic.identity.metrics.DriftCurve` (its ``per_frame``) and the clip's frame rate.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ltxic.identity.metrics import CheckpointSample, DriftCurve, rewindow
from ltxic.io.tables import Table
from ltxic.sampling.strips import frame_strips

__all__ = [
    "CheckpointView", "Explorer", "GRID_SCALES", "GRID_STRENGTHS", "caption_lint_html", "caption_linter",
    "checkpoint_explorer", "checkpoint_view", "drift_explorer", "drift_view", "figure_png", "grid_cell",
    "guidance_explorer", "guidance_grid", "lint_caption", "plot_checkpoint_strips", "plot_drift_windows",
    "plot_guidance_grid", "window_choices",
]

GRID_STRENGTHS = (0.0, 0.5, 1.0)
GRID_SCALES = (0.0, 1.0, 3.0)  # off, the tiny kit's identity guidance (1 on face and voice), and a stronger push
_SCORE_COLUMNS = (("face_similarity", "face"), ("voice_similarity", "voice"), ("face_found", "face found"),
                  ("lip_sync_correlation", "lip sync"), ("background_match", "scene kept"),
                  ("motion_match", "motion kept"))


# ----------------------------------------------------------------------------------------------- shared pieces
def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (as the inline backend draws it)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    return buf.getvalue()


def _score(value: Any) -> str:
    """A score as a figure label shows it: three decimals, ``n/a`` where there is none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """An HTML :class:`~ltxic.io.tables.Table` of ``rows`` (``columns``: key, header); a column that no row fills is
    left out."""
    columns = [(k, h) for k, h in columns if any(r.get(k) is not None for r in rows)]
    return Table([[r.get(k) for k, _ in columns] for r in rows], [h for _, h in columns])._repr_html_()


def _img(png: bytes, alt: str) -> str:
    return (f'<img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{html.escape(alt)}" '
            f'style="max-width:100%">')


@dataclass
class Explorer:
    """A live widget (``widget``), the controls a reader moves and the outputs they change (by name), and the static
    HTML of the default state: what a page without a kernel shows in its place."""

    widget: Any
    controls: dict[str, Any]
    outputs: dict[str, Any]
    static_html: str
    label: str

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = dict(self.widget._repr_mimebundle_())
        data["text/plain"] = f"{self.label} (interactive in JupyterLab)"
        data["text/html"] = self.static_html
        return data


def _image_widget(png: bytes) -> Any:
    import ipywidgets as w

    return w.Image(value=png, format="png", layout=w.Layout(max_width="100%"))


def _wrap(text: str, width: int = 22, lines: int = 4) -> str:
    return "\n".join(textwrap.wrap(text, width, max_lines=lines, placeholder=" ..."))


def _strip_figure(rows: Sequence[tuple[str, np.ndarray, float]], reference: np.ndarray | None, n_frames: int,
                  title: str = "") -> Any:
    """One row per (label, frames, fps) at the first clip's fps: :func:`~ltxic.sampling.strips.frame_strips`."""
    return frame_strips([(label, frames) for label, frames, _ in rows], rows[0][2], n_frames=n_frames,
                        reference=reference, title=title)


def _reference(reference_image: Any) -> np.ndarray | None:
    if reference_image is None:
        return None
    if isinstance(reference_image, (str, os.PathLike)):
        from ltxic.io.media import read_image

        return read_image(reference_image)
    return np.asarray(reference_image)


# ----------------------------------------------------------------------------------------------- lesson 03: captions
def lint_caption(text: str, identities: Mapping[str, Any] | None = None, identity: str | None = None) -> list[Any]:
    """The caption linter's issues for one caption of ``identity``'s clip, which has a reference (as every entry of
    an IC-LoRA dataset has): the dataset's other ``identities`` count as names it must not use."""
    from ltxic.data.captions import check_captions

    entry = {"caption": text, "identity": identity, "reference_image": "the entry's reference"}
    return check_captions([entry], identities).issues


def caption_lint_html(text: str, identities: Mapping[str, Any] | None = None, identity: str | None = None) -> str:
    """What the caption box shows under ``text``: its issues as a table and the linter's suggested rewrite, or that
    it is clean."""
    from ltxic.data.captions import suggest_rewrite

    issues = lint_caption(text, identities, identity)
    flagged = [i for i in issues if i.severity != "info"]
    head = (f"<p><b>{len(flagged)} issue{'s' if len(flagged) != 1 else ''}</b> in: <i>{html.escape(text)}</i></p>"
            if flagged else f"<p><b>clean</b>: <i>{html.escape(text)}</i></p>")
    if not issues:
        return head
    rows = [{"severity": i.severity, "kind": i.kind, "match": i.match, "message": i.message, "suggestion": i.suggestion}
            for i in issues]
    table = _table(rows, [(k, k) for k in ("severity", "kind", "match", "message", "suggestion")])
    rewrite = suggest_rewrite(text, names=list(identities or ()))
    tail = f"<p>suggested rewrite: <i>{html.escape(rewrite)}</i></p>" if rewrite != text else ""
    return head + table + tail


def caption_linter(caption: str, identities: Mapping[str, Any] | None = None, identity: str | None = None) -> Explorer:
    """A caption box for ``identity``'s clip, linted at every keystroke, starting from ``caption``."""
    import ipywidgets as w

    box = w.Textarea(value=caption, description="caption", continuous_update=True,
                     layout=w.Layout(width="100%", height="4em"))
    report = w.HTML(value=caption_lint_html(caption, identities, identity))
    box.observe(lambda change: setattr(report, "value", caption_lint_html(change["new"], identities, identity)),
                names="value")
    return Explorer(w.VBox([box, report]), {"caption": box}, {"report": report}, report.value, "caption linter")


# ----------------------------------------------------------------------------------------------- lesson 05: checkpoints
@dataclass
class CheckpointView:
    """One checkpoint as the slider shows it: each sample's frames (with fps and caption) and the scores row."""

    key: Any
    clips: list[tuple[str, np.ndarray, float]]
    scores: Mapping[str, Any] = field(default_factory=dict)


def _label(key: Any) -> str:
    return f"step {key}" if isinstance(key, (int, np.integer)) else str(key)


def _clip(sample: Any) -> tuple[str, np.ndarray, float]:
    """(caption, frames, fps) of a :class:`CheckpointSample` (or its dict) whose video is a path, a clip or frames."""
    s = sample if isinstance(sample, CheckpointSample) else CheckpointSample(**sample)
    video, fps = s.video, 24.0
    if isinstance(video, (str, os.PathLike)):
        from ltxic.io.media import probe_video, read_video

        fps = float(probe_video(video).fps)
        frames = read_video(video)
    elif hasattr(video, "frames"):
        frames, fps = np.asarray(video.frames), float(getattr(video, "fps", 0) or 24.0)
    else:
        frames = np.asarray(video)
    return s.caption or "", frames, fps


def checkpoint_view(key: Any, samples: Mapping[Any, Sequence[Any]], rows: Sequence[Mapping[str, Any]],
                    cache: dict | None = None) -> CheckpointView:
    """What the checkpoint slider shows at ``key``: every sample clip of that checkpoint (decoded once when a
    ``cache`` dict is passed) and its :func:`~ltxic.identity.metrics.compare_checkpoints` row (``row["step"] == key``;
    empty when there is none)."""
    if key not in samples:
        raise KeyError(f"checkpoint {key!r} has no samples (there are: {list(samples)})")
    if cache is not None and key in cache:
        clips = cache[key]
    else:
        clips = [_clip(s) for s in samples[key]]
        if cache is not None:
            cache[key] = clips
    row = next((r for r in rows if r.get("step") == key), {})
    return CheckpointView(key, clips, row)


def _checkpoint_png(view: CheckpointView, reference: np.ndarray | None, n_frames: int) -> bytes:
    clips = [(_wrap(caption) or f"sample {i}", frames, fps) for i, (caption, frames, fps) in enumerate(view.clips)]
    return figure_png(_strip_figure(clips, reference, n_frames, _label(view.key)))


def _checkpoint_html(view: CheckpointView) -> str:
    return f"<p><b>{html.escape(_label(view.key))}</b></p>" + _table([view.scores], _SCORE_COLUMNS)


def checkpoint_explorer(samples: Mapping[Any, Sequence[Any]], rows: Sequence[Mapping[str, Any]],
                        reference_image: Any = None, n_frames: int = 4, start: Any = None) -> Explorer:
    """A slider over the checkpoints (the keys of ``samples``, in their order): it shows that checkpoint's sample
    frames beside the reference and its scores. Starts at ``start`` (default: the last checkpoint)."""
    import ipywidgets as w

    keys = list(samples)
    reference, cache = _reference(reference_image), {}
    first = checkpoint_view(keys[-1] if start is None else start, samples, rows, cache)
    frames = _image_widget(_checkpoint_png(first, reference, n_frames))
    scores = w.HTML(value=_checkpoint_html(first))
    slider = w.SelectionSlider(options=[(_label(k), k) for k in keys], value=first.key, description="checkpoint",
                               continuous_update=False, layout=w.Layout(width="100%"))

    def show(change: dict) -> None:
        view = checkpoint_view(change["new"], samples, rows, cache)
        frames.value = _checkpoint_png(view, reference, n_frames)
        scores.value = _checkpoint_html(view)

    slider.observe(show, names="value")
    static = _img(frames.value, f"{_label(first.key)}: frames and reference") + scores.value
    return Explorer(w.VBox([slider, frames, scores]), {"checkpoint": slider}, {"frames": frames, "scores": scores},
                    static, "checkpoint slider")


def plot_checkpoint_strips(samples: Mapping[Any, Sequence[Any]], rows: Sequence[Mapping[str, Any]],
                           reference_image: Any = None, n_frames: int = 4) -> Any:
    """Every checkpoint's first sample in one figure (one row each), its face and voice scores in the row's label:
    what the slider moves over, for a page without a kernel."""
    strips, caption = [], ""
    for key in samples:
        caption, frames, fps = _clip(samples[key][0])
        scores = next((r for r in rows if r.get("step") == key), {})
        face, voice = scores.get("face_similarity"), scores.get("voice_similarity")
        strips.append((f"{_label(key)}\nface {_score(face)}\nvoice {_score(voice)}", frames, fps))
    return _strip_figure(strips, _reference(reference_image), n_frames, f"every checkpoint: {caption}"[:100])


# ----------------------------------------------------------------------------------------------- lesson 06: the grid
def _grid_name(strength: float, scale: float) -> str:
    return f"strength {strength:g}, reference guidance {scale:g}"


def guidance_grid(lora: Any, *, dataset: Any, identity: str, reference_image: Any, reference_audio: Any, prompt: str,
                  config: Any, seed: int = 0, strengths: Sequence[float] = GRID_STRENGTHS,
                  scales: Sequence[float] = GRID_SCALES, embedders: Any = None) -> list[dict]:
    """One clip per (LoRA strength, reference-guidance scale) for ``prompt`` and ``seed``, scored like lesson 06's
    comparison (:func:`~ltxic.identity.evaluate.identity_eval`; the scale sets the face's and the voice's identity
    guidance alike). Each row adds ``lora_strength`` and ``reference_guidance``."""
    from ltxic.identity.evaluate import Condition, identity_eval

    cells = {_grid_name(s, g): (float(s), float(g)) for s in strengths for g in scales}
    conditions = [Condition(name, s, True, g) for name, (s, g) in cells.items()]
    rows = identity_eval(None, lora, dataset=dataset, identity=identity, reference_image=reference_image,
                         reference_audio=reference_audio, prompts=[prompt], seeds=[seed], conditions=conditions,
                         config=config, embedders=embedders)
    for r in rows:
        r["lora_strength"], r["reference_guidance"] = cells[r["condition"]]
        r["fps"] = float(getattr(config, "fps", None) or 24.0)
    return rows


def grid_cell(rows: Sequence[Mapping[str, Any]], strength: float, scale: float) -> Mapping[str, Any]:
    """The :func:`guidance_grid` row at (``strength``, ``scale``)."""
    for r in rows:
        if math.isclose(r["lora_strength"], strength) and math.isclose(r["reference_guidance"], scale):
            return r
    raise KeyError(f"no clip at LoRA strength {strength:g}, reference guidance {scale:g} in the grid")


def _grid_axes(rows: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
    return sorted({r["lora_strength"] for r in rows}), sorted({r["reference_guidance"] for r in rows})


def _cell_png(row: Mapping[str, Any], reference: np.ndarray | None, n_frames: int) -> bytes:
    label = f"strength {row['lora_strength']:g}\nguidance {row['reference_guidance']:g}"
    return figure_png(_strip_figure([(label, np.asarray(row["_frames"]), row.get("fps", 24.0))], reference, n_frames,
                                    row.get("prompt", "")[:100]))


def _cell_html(row: Mapping[str, Any]) -> str:
    return (f"<p><b>{html.escape(_grid_name(row['lora_strength'], row['reference_guidance']))}</b></p>"
            + _table([row], _SCORE_COLUMNS))


def guidance_explorer(rows: Sequence[Mapping[str, Any]], reference_image: Any = None, n_frames: int = 4,
                      strength: float = 1.0, scale: float | None = None) -> Explorer:
    """LoRA strength and reference-guidance sliders over :func:`guidance_grid`'s clips: the chosen clip's frames
    beside the reference, and its face and voice scores. Starts at ``strength`` and ``scale`` (default: the
    largest scale)."""
    import ipywidgets as w

    strengths, scales = _grid_axes(rows)
    reference = _reference(reference_image)
    first = grid_cell(rows, strength, scales[-1] if scale is None else scale)
    frames = _image_widget(_cell_png(first, reference, n_frames))
    scores = w.HTML(value=_cell_html(first))
    wide = {"description_width": "initial"}
    s_slider = w.SelectionSlider(options=[(f"{v:g}", v) for v in strengths], value=first["lora_strength"],
                                 description="LoRA strength", continuous_update=False, style=wide)
    g_slider = w.SelectionSlider(options=[(f"{v:g}", v) for v in scales], value=first["reference_guidance"],
                                 description="reference guidance", continuous_update=False, style=wide)

    def show(_: dict) -> None:
        row = grid_cell(rows, s_slider.value, g_slider.value)
        frames.value = _cell_png(row, reference, n_frames)
        scores.value = _cell_html(row)

    s_slider.observe(show, names="value")
    g_slider.observe(show, names="value")
    static = _img(frames.value, "the chosen clip's frames beside the reference") + scores.value
    return Explorer(w.VBox([w.HBox([s_slider, g_slider]), frames, scores]),
                    {"strength": s_slider, "guidance": g_slider}, {"frames": frames, "scores": scores}, static,
                    "LoRA strength and reference guidance sliders")


def plot_guidance_grid(rows: Sequence[Mapping[str, Any]], reference_image: Any = None, frame: float = 0.5) -> Any:
    """The whole grid in one figure: rows LoRA strength, columns reference guidance, each cell one frame (at
    ``frame`` of the clip) titled with its face and voice similarity; the reference on the left."""
    from ltxic.io.figures import new_figure

    strengths, scales = _grid_axes(rows)
    reference = _reference(reference_image)
    fig = new_figure(figsize=(2.1 * (len(scales) + 1), 2.2 * len(strengths) + 0.7), layout="constrained")
    axes = fig.subplots(len(strengths), len(scales) + 1, squeeze=False)
    for i, s in enumerate(strengths):
        if reference is not None and i == 0:
            axes[i, 0].imshow(reference)
            axes[i, 0].set_title("reference", fontsize=10)
        for j, g in enumerate(scales):
            row = grid_cell(rows, s, g)
            frames = np.asarray(row["_frames"])
            axes[i, j + 1].imshow(frames[int(round(frame * (len(frames) - 1)))])
            axes[i, j + 1].set_title(f"guidance {g:g}\nface {_score(row['face_similarity'])} voice "
                                     f"{_score(row['voice_similarity'])}", fontsize=10)
        axes[i, 1].set_ylabel(f"LoRA strength {s:g}", fontsize=10)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
            if ax is axes[i, 0] and (reference is None or i > 0):
                ax.axis("off")
    fig.suptitle("IC-LoRA strength x reference guidance\n" + _wrap(str(rows[0].get("prompt", "")), 80, 2), fontsize=11)
    return fig


# ----------------------------------------------------------------------------------------------- lesson 07: drift
def window_choices(curve: DriftCurve, fps: float,
                   candidates: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)) -> list[float]:
    """Window lengths (s) worth a slider stop for this clip: at least two frames, at most half the clip (so there
    are at least three windows), and the curve's own length."""
    duration = len(curve.per_frame) / fps
    out = {float(c) for c in candidates if c >= 2 / fps and c <= duration / 2}
    return sorted(out | {float(curve.window_s)})


def drift_view(curve: DriftCurve, window_s: float, fps: float) -> tuple[DriftCurve, str]:
    """The drift curve re-averaged in windows of ``window_s`` seconds, and a line on its lowest window."""
    c = rewindow(curve, window_s, fps)
    finite = np.isfinite(c.similarity)
    if not finite.any():
        return c, f"{window_s:.3g} s windows: no window has a face"
    i = int(np.nanargmin(np.where(finite, c.similarity, np.nan)))
    spread = float(np.nanmax(c.similarity) - np.nanmin(c.similarity))
    return c, (f"{window_s:.3g} s windows ({len(c.times)}): lowest {c.similarity[i]:.3f} around {c.times[i]:.2f} s, "
               f"highest minus lowest {spread:.3f}")


def _drift_figure(curve: DriftCurve, fps: float, windows: Sequence[float]) -> Any:
    from ltxic.io.figures import new_figure

    fig = new_figure(figsize=(7, 3.4), layout="constrained")
    ax = fig.subplots()
    t = np.arange(len(curve.per_frame)) / fps
    ax.plot(t, curve.per_frame, ".", color="0.7", ms=4, label="every frame")
    for w_s in windows:
        c = rewindow(curve, w_s, fps)
        ax.plot(c.times, c.similarity, "o-", ms=4, label=f"{w_s:.3g} s windows")
    values = [float(v) for v in curve.per_frame if np.isfinite(v)]
    ax.set(xlabel="time (s)", ylabel="face similarity to the reference", title="Identity drift by window length",
           ylim=(min([-0.1] + [v - 0.05 for v in values]), 1.05))
    ax.legend(fontsize=9)
    return fig


def drift_explorer(curve: DriftCurve, fps: float, windows: Sequence[float] | None = None) -> Explorer:
    """A window-length slider over the drift curve: each position re-averages the clip's per-frame face scores
    (``curve.per_frame``) and redraws the curve, naming its lowest window."""
    import ipywidgets as w

    choices = list(windows) if windows is not None else window_choices(curve, fps)
    start = min(choices, key=lambda c: abs(c - curve.window_s))

    def render(window_s: float) -> tuple[bytes, str]:
        _, line = drift_view(curve, window_s, fps)
        return figure_png(_drift_figure(curve, fps, [window_s])), f"<p>{html.escape(line)}</p>"

    png, line = render(start)
    plot, text = _image_widget(png), w.HTML(value=line)
    slider = w.SelectionSlider(options=[(f"{c:.3g} s", c) for c in choices], value=start, description="window",
                               continuous_update=False)

    def show(change: dict) -> None:
        plot.value, text.value = render(change["new"])

    slider.observe(show, names="value")
    return Explorer(w.VBox([slider, plot, text]), {"window": slider}, {"plot": plot, "text": text},
                    _img(png, "the drift curve") + line, "drift window slider")


def plot_drift_windows(curve: DriftCurve, fps: float, windows: Sequence[float] | None = None) -> Any:
    """The drift curve at every window length of the slider in one figure, over the per-frame scores."""
    return _drift_figure(curve, fps, list(windows) if windows is not None else window_choices(curve, fps))

