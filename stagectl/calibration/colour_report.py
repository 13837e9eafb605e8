"""The PNG evidence of ``stagectl calibrate colour`` (drawn with OpenCV through
:class:`stagectl.calibration.report.Report`): key numbers and checks, ΔE ITP bars before/after per chart patch,
the EOTF ramp per channel (measured drive vs target, in signal), and the chart as target / before swatches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

_RED, _GREEN, _BLUE, _GREY = (40, 40, 220), (40, 160, 40), (200, 90, 30), (120, 120, 120)


def colour_report(sol, path: str | Path, *, title: str = "stagectl calibrate colour") -> Path:
    from stagectl.calibration.report import Report

    rep = Report(title)
    seq = sol.sequence
    b, a = sol.delta_e_before, sol.delta_e_after
    rep.lines((20, 64), [
        (f"status {sol.status}   18 % grey reads {sol.measured_18_percent:.3f}   sync offset {sol.measurements.sync.offset} "
        f"frames, end drift {sol.measurements.sync.end_drift}   transfer {seq.transfer.kind} "
        f"{seq.transfer.peak_nits:g} nits into {seq.target_space}"),
        "  ".join(f"{g}: ΔE ITP {np.mean(b[g]):.2f} -> {np.mean(a[g]):.2f} (predicted)".replace("Δ", "d")
                  for g in ("chart", "ramp", "primaries", "grey")),
        "target-to-screen matrix: " + "  ".join("[" + " ".join(f"{v:.4f}" for v in r) + "]"
                                                 for r in sol.correction.matrix),
    ])
    for i, c in enumerate(sol.checks):
        col = _GREEN if c.status == "PASS" else (_RED if c.status == "FAIL" else (0, 140, 220))
        rep.text((20, 140 + 18 * i), f"{c.status:<7} {c.name}: {c.message}"[:170], scale=0.42, color=col)
    y0 = 140 + 18 * len(sol.checks) + 20
    names = list(seq.chart_names)
    rep.bars((20, y0, 760, 980 - y0 - 20), names, list(b["chart"]), unit="dE ITP", title="chart: dE ITP before (bars)",
             lines=[(1.0, "1", _GREEN), (float(np.mean(a["chart"])), "after mean", _BLUE)],
             highlight=[v > 3.0 for v in b["chart"]])
    ramp = seq.role("ramp")
    E = np.array([p.signal[0] for p in ramp])
    series = [(E, E, _GREY, "target")]
    for c, col in zip(range(3), (_RED, _GREEN, _BLUE)):
        series.append((sol.model.ramp_signal, sol.model.ramp_drive_signal[:, c], col,
                       f"{'RGB'[c]} measured drive"))
    rep.plot((820, y0, 760, 480), series, title="EOTF: measured drive vs signal (encoded)", xlabel="signal")
    rep.plot((820, y0 + 520, 760, 980 - y0 - 540),
             [(E[1:], b["ramp"], _RED, "ramp dE before"), (E[1:], a["ramp"], _BLUE, "after (predicted)")],
             title="EOTF ramp dE ITP", xlabel="signal")
    return rep.save(path)
