"""`report.html` of a fitted cascade: its GAP-vs-frames curve beside each stage's fixed point.

Drawn like the evaluation report (`pipelines.scoring.report`: one offline file, Matplotlib
PNGs inlined, no script, every string from data escaped, numbers in `data-value`).
"""

from __future__ import annotations

from pipelines.scoring import cascade as C
from pipelines.scoring import outputs as out
from pipelines.scoring import report as R


def write_cascade_report(directory: str, spec: C.CascadeSpec) -> str:
    page = render_cascade_report(spec, directory)
    path = out.join(directory.rstrip("/"), out.REPORT_FILE)
    out.write_bytes(path, page.encode("utf-8"), "text/html")
    return path


def render_cascade_report(spec: C.CascadeSpec, source: str = "") -> str:
    calibration = spec.calibration
    stages = calibration["stages"]
    best = calibration["cascade"]
    rows = []
    for i, (stage, numbers) in enumerate(zip(spec.stages, stages, strict=True)):
        rows.append(
            [
                R._text_cell(f"stage {i}"),
                R._text_cell(f"{stage.model.get('role')} {stage.model.get('preset')}"),
                R._text_cell(stage.view),
                R._value_cell(f"stages.{i}.gap", numbers["gap"], R._fmt(numbers["gap"])),
                R._value_cell(
                    f"stages.{i}.fraction_read",
                    numbers["fraction_read"],
                    R._percent(numbers["fraction_read"]),
                ),
                R._text_cell("" if i == len(spec.stages) - 1 else _threshold(spec.thresholds[i])),
                R._value_cell(f"cascade.exits.{i}", best["exits"][i], str(best["exits"][i])),
            ]
        )
    rows.append(
        [
            R._text_cell("cascade"),
            R._text_cell(f"rule {spec.rule.name}, cost {spec.cost}"),
            R._text_cell(" -> ".join(stage.view for stage in spec.stages)),
            R._value_cell("cascade.gap", best["gap"], R._fmt(best["gap"])),
            R._value_cell("cascade.fraction_read", best["fraction_read"], R._percent(best["fraction_read"])),
            R._text_cell(""),
            R._text_cell(""),
        ]
    )
    table = R._table(
        ["", "Model", "View", "GAP", "Frames read", "Exit threshold", "Videos exiting"],
        rows,
        [False, False, False, True, True, False, True],
    )
    caption = (
        f"Calibration partition: {calibration['num_videos']} videos. Thresholds chosen for the least mean "
        f"{spec.cost} with GAP >= {spec.target} x the last stage's GAP ({calibration['target_gap']:.4f}); "
        f"{calibration['search']['points_evaluated']} threshold vectors evaluated "
        f"({calibration['search']['method']})."
    )
    sections = [
        "<h2>Stages and the fitted cascade</h2>\n" + table,
        "<h2>GAP against frames read</h2>\n"
        + _curve_plot(spec)
        + f'\n<p class="caption">{R.escape(caption)}</p>',
    ]
    return R._page("Cascade: " + " -> ".join(stage.view for stage in spec.stages), source, sections)


def _threshold(value) -> str:
    return "never exits" if value is None else f">= {value:.4g}"


def _curve_plot(spec: C.CascadeSpec) -> str:
    calibration = spec.calibration
    figure, axes = R._figure()
    curve = calibration["curve"]
    axes.plot(
        [100 * p["fraction_read"] for p in curve],
        [p["gap"] for p in curve],
        marker=".",
        label="cascade, over thresholds",
    )
    for i, (stage, numbers) in enumerate(zip(spec.stages, calibration["stages"], strict=True)):
        axes.plot(
            [100 * numbers["fraction_read"]],
            [numbers["gap"]],
            marker="s",
            linestyle="none",
            label=f"stage {i} ({stage.view})",
        )
    best = calibration["cascade"]
    axes.plot(
        [100 * best["fraction_read"]],
        [best["gap"]],
        marker="*",
        markersize=14,
        linestyle="none",
        label="fitted thresholds",
    )
    axes.set_xlabel("frames read (% of the video)")
    axes.set_ylabel("GAP (calibration)")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    return R._image(figure, "cascade GAP against frames read, and each stage alone")
