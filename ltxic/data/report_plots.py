"""A validation report as one picture: clip durations, luminance per clip, voice levels, face visibility."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ltxic.data.validate import ValidationReport
from ltxic.io.files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def plot_report(report: ValidationReport) -> Figure:
    """Four panels: clip durations against the allowed range, luminance per clip, voice levels, face visibility."""
    from ltxic.io.figures import new_figure

    fig = new_figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 2)
    outliers = {p.detail.split(":")[0] for p in report.problems if p.problem == "lighting_outlier"}
    ax = axes[0, 0]
    lo, hi = report.rules.clip_seconds
    d = [c.duration for c in report.clips]
    if d:
        ax.hist(d, bins=min(20, max(5, len(d) // 2)), color="tab:blue")
    ax.axvspan(lo, hi, color="tab:green", alpha=0.15, label=f"allowed {lo:g}-{hi:g} s")
    ax.set(title="clip durations", xlabel="seconds", ylabel="clips")
    ax.legend(loc="upper right")

    ax = axes[0, 1]
    lum = [c.luminance for c in report.clips]
    colours = ["tab:red" if c.path in outliers else "tab:blue" for c in report.clips]
    ax.bar(range(len(lum)), lum, color=colours)
    if lum:
        med = float(np.median(lum))
        ax.axhline(med, color="black", lw=1, label=f"median {med:.0f}")
        ax.legend(loc="upper right")
    n_out = sum(c == "tab:red" for c in colours)
    # the title says what the colours mean only for what is drawn
    ax.set(title=f"mean luminance per clip (red: {n_out} lighting outlier{'s' if n_out != 1 else ''})" if n_out
           else "mean luminance per clip (no lighting outlier)", xlabel="clip", ylabel="luma 0-255")

    _plot_voice_levels(axes[1, 0], report)

    ax = axes[1, 1]
    ff = [c.face_fraction for c in report.clips]
    ax.bar(range(len(ff)), ff, color=["tab:red" if f < report.rules.min_face_fraction else "tab:green" for f in ff])
    ax.axhline(report.rules.min_face_fraction, color="black", ls="--", lw=1)
    ax.set(title=f"face visible ({report.face_detector} detector)", xlabel="clip", ylabel="share of sampled frames",
           ylim=(0, 1.05))
    fig.suptitle(report.summary().splitlines()[0])
    return fig


def _plot_voice_levels(ax: Any, report: ValidationReport) -> None:
    """One bar per reference voice from a floor below the quietest, so a silent clip still has a bar: purple when
    fine, red when quiet or silent, and the silent ones labelled."""
    silent = {p.detail.split(":")[0] for p in report.problems if p.problem == "silent_reference_audio"}
    quiet = report.rules.quiet_dbfs
    levels = [v.rms_dbfs if np.isfinite(v.rms_dbfs) else -120.0 for v in report.voices]
    floor = min([-80.0, *levels]) - 10.0
    colours = ["tab:red" if v.path in silent or level < quiet else "tab:purple" for v, level in zip(report.voices, levels)]
    ax.barh(range(len(levels)), [level - floor for level in levels], left=floor, color=colours)
    for i, (v, level) in enumerate(zip(report.voices, levels)):
        if v.path in silent:
            ax.text(level + 1.0, i, f"silent ({level:.0f} dBFS)", va="center", fontsize=7, color="tab:red")
    ax.set_yticks(range(len(levels)), [Path(v.path).name for v in report.voices], fontsize=7)
    ax.axvline(quiet, color="tab:red", ls="--", lw=1, label=f"quiet < {quiet:g} dBFS")
    ax.set(title="voice reference level (RMS; red: quiet or silent)", xlabel="dBFS", xlim=(floor, 0.0))
    ax.legend(loc="lower right")


def save_report_plots(report: ValidationReport, out_png: str | os.PathLike[str]) -> Path:
    fig = plot_report(report)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out_png)
