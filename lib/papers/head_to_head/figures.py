"""The capstone's figures and tables (kept apart from ``experiment.py``, so that editing a
plot does not change the cache key of the compressed models)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lib.core.plotting import finding_axes, method_color, register_colors

from .experiment import EXTRACTED, FORMS, MISSING, TORCH_FORMS, pareto_front

LABELS = {"dense": "dense (float32)", "global-magnitude": "magnitude pruning, global",
          "channel-magnitude": "magnitude pruning, channels",
          "joint-admm": "joint sparsity-quantization ADMM", "energy-projection":
          "energy-constrained projection", "atmc": "ATMC-8 (adversarial, U V + C)",
          "ecc": "ECC (bilinear size model)", "gs-slimming": "GS slimming + 8-bit"}
SHORT = {"dense": "dense", "global-magnitude": "global pruning",
         "channel-magnitude": "channel pruning", "joint-admm": "joint ADMM",
         "energy-projection": "energy projection", "atmc": "ATMC", "ecc": "ECC",
         "gs-slimming": "GS slimming"}
register_colors({"dense": "#444444", "global-magnitude": "#1f77b4",
                 "channel-magnitude": "#ff7f0e", "joint-admm": "#d62728",
                 "energy-projection": "#2ca02c", "atmc": "#9467bd", "ecc": "#8c564b",
                 "gs-slimming": "#e377c2"})

#: The cost axes of the Pareto plots: (row key, axis label, scale of the value).
AXES = {"paper": ("paper_bytes", "accounted size, papers' accounting (kB)", 1e-3),
        "disk": ("file_bytes", "bytes on disk, packed file (kB)", 1e-3),
        "latency": ("best_ms", "measured latency, fastest form (ms / image)", 1.0),
        "energy": ("energy_vs_dense", "modelled energy (share of dense)", 1.0)}

#: The method chapters whose verdicts the capstone recalls, by method.
CHAPTERS = {"joint-admm": "prune_quant", "energy-projection": "energy_training",
            "atmc": "atmc", "ecc": "ecc", "gs-slimming": "gan_slimming"}


def best_form(row: dict[str, Any]) -> tuple[str, float]:
    """The fastest deployable form of a method (any runtime) and its median ms."""
    forms = {f: row[f"{f}_ms"] for f in FORMS[row["method"]]}
    best = min(forms, key=forms.get)
    return best, forms[best]


def with_best(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        form, ms = best_form(r)
        out.append({**r, "best_form": form, "best_ms": ms})
    return out


def pareto_plot(ax, rows: list[dict[str, Any]], axis: str, title: str) -> None:
    """Accuracy against one cost axis: a point per method and ratio (mean over seeds, the
    accuracy's paired 95 % interval against dense as an error bar), the front dashed."""
    key, label, scale = AXES[axis]
    rows = with_best(rows)
    pts = [(r[key] * scale, 100 * r["accuracy"]) for r in rows]
    for method in dict.fromkeys(r["method"] for r in rows):
        sel = [(p, r) for p, r in zip(pts, rows, strict=True) if r["method"] == method]
        x = [p[0] for p, _ in sel]
        y = [p[1] for p, _ in sel]
        err = np.array([[100 * (r["acc_vs_dense"] - r["acc_vs_dense_low"]) for _, r in sel],
                        [100 * (r["acc_vs_dense_high"] - r["acc_vs_dense"]) for _, r in sel]])
        ax.errorbar(x, y, yerr=err, fmt="o", capsize=3, color=method_color(method),
                    label=LABELS.get(method, method))
        for (px, py), (_, r) in zip(zip(x, y, strict=True), sel, strict=True):
            if r["method"] != "dense":
                ax.annotate(f"{r['ratio']:g}x", (px, py), textcoords="offset points",
                            xytext=(4, 4), fontsize=8)
    front = pareto_front([(c, a) for c, a in pts])
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=0.8,
            label="Pareto front")
    if axis in ("paper", "disk"):
        ax.set_xscale("log")
    finding_axes(ax, title=title, xlabel=label, ylabel="test accuracy (%)")
    ax.title.set_fontsize(10)


def front_methods(rows: list[dict[str, Any]], axis: str) -> list[str]:
    """The methods (with ratio) on the Pareto front of one axis, cheapest first."""
    key, _, _ = AXES[axis]
    rows = with_best(rows)
    front = pareto_front([(r[key], r["accuracy"]) for r in rows])
    return [f"{SHORT.get(rows[i]['method'], rows[i]['method'])} {rows[i]['ratio']:g}x"
            for i in front]


def front_title(rows: list[dict[str, Any]], axis: str) -> str:
    """A title stating the finding: which models make the front, cheapest first."""
    import textwrap

    names = {"paper": "accounted size", "disk": "bytes on disk", "latency": "latency",
             "energy": "modelled energy"}
    text = f"On {names[axis]}, the front is " + ", ".join(front_methods(rows, axis))
    return "\n".join(textwrap.wrap(text, 60))


#: The measured table's two halves (one table of every column is wider than a book page).
TABLE_PARTS = ("accuracy", "cost")


def measured_table(rows: list[dict[str, Any]], part: str = "accuracy") -> pd.DataFrame:
    """One half of the measured table, one row per method and ratio: ``accuracy`` (clean
    accuracy and its paired interval vs dense, PGD and int8 accuracy, whether the budget
    was met) or ``cost`` (accounted and on-disk kB, latencies, modelled energy)."""
    if part not in TABLE_PARTS:
        raise ValueError(f"part must be one of {TABLE_PARTS}, got {part!r}")
    out = []
    for r in with_best(rows):
        row = {"method": LABELS.get(r["method"], r["method"]), "ratio": f"{r['ratio']:g}x"}
        if part == "accuracy":
            row.update({
                "accuracy %": f"{100 * r['accuracy']:.1f}",
                "vs dense (95% CI), pts": f"{100 * r['acc_vs_dense']:+.1f} "
                                          f"[{100 * r['acc_vs_dense_low']:+.1f}, "
                                          f"{100 * r['acc_vs_dense_high']:+.1f}]",
                "PGD accuracy %": f"{100 * r['pgd_accuracy']:.1f}",
                "PGD vs dense (95% CI), pts": f"{100 * r['pgd_vs_dense']:+.1f} "
                                              f"[{100 * r['pgd_vs_dense_low']:+.1f}, "
                                              f"{100 * r['pgd_vs_dense_high']:+.1f}]",
                "int8 accuracy %": f"{100 * r['int8_accuracy']:.1f}",
                "budget met": "yes" if r["met_budget"] else "NO"})
        else:
            row.update({
                "accounted kB": f"{r['paper_bytes'] / 1e3:.1f}",
                "on disk kB": f"{r['file_bytes'] / 1e3:.1f}",
                "fastest form": r["best_form"],
                "ms (IQR)": f"{r['best_ms']:.3f} ({r[r['best_form'] + '_iqr_ms']:.3f})",
                "PyTorch ms": " / ".join(f"{f} {r[f + '_ms']:.3f}" for f in FORMS[r["method"]]
                                         if f in TORCH_FORMS),
                "ORT fp32 / int8 ms": f"{r['onnx_ms']:.3f} / {r['int8_ms']:.3f}",
                "energy vs dense": f"{r['energy_vs_dense']:.2f}"})
        out.append(row)
    return pd.DataFrame(out)


def pooled_reference(out: dict[str, Any], form: str) -> dict[str, float]:
    """Median and relative IQR of ``form`` pooled over every full-size model timed in that
    form: the ``dense`` (or ``onnx``) forms of the dense, unstructured-sparse and ATMC
    (recombined) models run
    the very same kernels on the same shapes, so their pooled timings are the reference
    that one model's timing is too noisy to be."""
    blocks = np.concatenate([
        v["blocks_ms"] for k, v in out["latency"].items()
        if k.endswith(f"|{form}") and k.split("|")[0] not in EXTRACTED])
    med = float(np.median(blocks))
    iqr = float(np.subtract(*np.percentile(blocks, [75, 25])))
    return {"median_ms": med, "relative_iqr": iqr / med}


def speed_rows(out: dict[str, Any], rows: list[dict[str, Any]], threshold: float = 1.25
               ) -> list[dict[str, Any]]:
    """Which compression buys CPU speed, each runtime against its pooled full-size
    reference (``pooled_reference``): "speed" when the fastest PyTorch float32 form or the
    ONNX Runtime float32 form beats it by more than ``threshold`` (above the spread of
    identical work, see the chapter), int8 against ONNX Runtime float32 of the same model."""
    torch_ref = pooled_reference(out, "dense")["median_ms"]
    ort_ref = pooled_reference(out, "onnx")["median_ms"]
    dense = next(r for r in rows if r["method"] == "dense")
    table = []
    for r in rows:
        if r["method"] == "dense":
            continue
        torch_forms = {f: r[f"{f}_ms"] for f in FORMS[r["method"]] if f in TORCH_FORMS}
        best = min(torch_forms, key=torch_forms.get)
        row = {"method": r["method"], "ratio": r["ratio"],
               "storage_saving": dense["file_bytes"] / r["file_bytes"],
               "fastest_torch_form": best, "torch_speedup": torch_ref / torch_forms[best],
               "onnx_speedup": ort_ref / r["onnx_ms"],
               "int8_speedup": r["onnx_ms"] / r["int8_ms"]}
        if "csr" in torch_forms:
            row["csr_vs_dense_form"] = r["dense_ms"] / r["csr_ms"]
        row["buys_speed"] = max(row["torch_speedup"], row["onnx_speedup"],
                                row["int8_speedup"]) > threshold
        table.append(row)
    return table


def speed_frame(speed: list[dict[str, Any]]) -> pd.DataFrame:
    """Which compression buys real CPU speed, and which only storage."""
    out = []
    for s in speed:
        buys = "speed and storage" if s["buys_speed"] else "storage only"
        out.append({"method": LABELS.get(s["method"], s["method"]),
                    "ratio": f"{s['ratio']:g}x",
                    "storage saving (disk)": f"{s['storage_saving']:.1f}x",
                    "PyTorch fp32 speed-up": f"{s['torch_speedup']:.2f}x "
                                             f"({s['fastest_torch_form']})",
                    "CSR vs dense kernels": (f"{s['csr_vs_dense_form']:.2f}x"
                                             if "csr_vs_dense_form" in s else "n/a"),
                    "ORT fp32 speed-up": f"{s['onnx_speedup']:.2f}x",
                    "int8 vs its ORT fp32": f"{s['int8_speedup']:.2f}x",
                    "buys": buys})
    return pd.DataFrame(out)


def missing_frame() -> pd.DataFrame:
    return pd.DataFrame([{"method": v, "status": "not in this comparison yet"}
                         for v in MISSING.values()], columns=["method", "status"])


def tuning_frame() -> pd.DataFrame:
    """Where each method's knobs come from (``experiment.TUNING``)."""
    from .experiment import TUNING

    return pd.DataFrame([{"method": LABELS.get(m, m), "knobs": v} for m, v in TUNING.items()])


def recalled_verdicts(scale: str, results=None) -> pd.DataFrame:
    """The method chapters' own verdicts at ``scale``, read from their records through the
    scoreboard (``not measured`` where a chapter has not run at this scale)."""
    from lib.scoreboard import chapter_claims, scoreboard_rows

    claims = [c for ch in dict.fromkeys(CHAPTERS.values()) for c in chapter_claims(ch)]
    rows = scoreboard_rows(scale, results, claims=claims)
    return pd.DataFrame([{"chapter": r["chapter"], "claim": r["claim"], "ours": r["ours"],
                          "verdict": r["verdict"]} for r in rows])
