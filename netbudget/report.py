"""The run report: ``report/report.md`` and a self-contained ``report/report.html`` with PNG plots.

Everything is rebuilt from the run's Optuna storage (``run.yaml`` names it), so
``netbudget report RUN_DIR`` works on any run, finished or not.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from netbudget.constraints import format_value
from netbudget.exceptions import InvalidArgumentError
from netbudget.metrics.latency import machine_text

__all__ = ["build_report"]


def _load(run_dir: Path) -> dict[str, Any]:
    import optuna

    from netbudget.pipeline.config import RunConfig
    from netbudget.pipeline.run import RUN_STUDY, open_storage

    config = RunConfig.read(run_dir / "run.yaml", run=True)
    if not config.storage:
        raise InvalidArgumentError(f"{run_dir / 'run.yaml'} names no storage; the run never started.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(config.storage)
    names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if RUN_STUDY not in names:
        raise InvalidArgumentError(f"The storage of {run_dir} holds no netbudget run.")
    meta = optuna.load_study(storage=storage, study_name=RUN_STUDY).user_attrs
    steps = []
    t = 0
    while f"step-{t}" in names:
        study = optuna.load_study(storage=storage, study_name=f"step-{t}")
        steps.append({"attrs": study.user_attrs, "trials": study.get_trials(deepcopy=False)})
        t += 1
    return {"config": config, "meta": meta, "steps": steps}


def build_report(run_dir: str | Path) -> Path:
    """Write ``report/report.md``, ``report/report.html`` and their PNG plots; return the HTML path.

    Raises:
        InvalidArgumentError: ``run_dir`` holds no run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from netbudget.search.bounds import measured

    run_dir = Path(run_dir)
    state = _load(run_dir)
    meta, steps, config = state["meta"], state["steps"], state["config"]
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    original = meta.get("original", {})
    keys = meta.get("keys", {})
    texts = list(keys)
    summary = meta.get("summary")
    images: list[tuple[str, str]] = []

    # per step: proxy score against the first constraint, threshold and winner marked
    if texts and original:
        key = keys[texts[0]]
        for t, step in enumerate(steps):
            trials = step["trials"]
            threshold = (step["attrs"].get("thresholds") or {}).get(key)
            fig, ax = plt.subplots(figsize=(6, 4))
            scored = [x for x in trials if x.value is not None and key in measured(x)]
            others = [x for x in trials if x.value is None and key in measured(x)]
            if scored:
                ax.scatter([measured(x)[key] / original[key] for x in scored], [100 * x.value for x in scored],
                           s=18, label="evaluated")
            floor = min([100 * x.value for x in scored], default=0.0)
            if others:
                ax.scatter([measured(x)[key] / original[key] for x in others], [floor] * len(others), marker="|",
                           color="grey", label="measured only (probe / skipped)")
            seed = [x for x in scored if x.user_attrs.get("seed")]
            if seed:
                ax.scatter([measured(seed[0])[key] / original[key]], [100 * seed[0].value], marker="s",
                           facecolors="none", edgecolors="green", s=80, label="uniform seed")
            split = [x for x in scored if x.user_attrs.get("split_seed")]
            if split:
                ax.scatter([measured(x)[key] / original[key] for x in split], [100 * x.value for x in split],
                           marker="D", facecolors="none", edgecolors="purple", s=60, label="split seed")
            winner = step["attrs"].get("winner")
            chosen = [x for x in scored if x.number == winner]
            if chosen:
                ax.scatter([measured(chosen[0])[key] / original[key]], [100 * chosen[0].value], marker="*",
                           color="red", s=160, label="winner")
            if threshold is not None:
                ax.axvline(threshold / original[key], color="red", linestyle="--", label="step threshold")
            ax.set_xlabel(f"{texts[0].split('<=')[0].strip()} (x original)")
            ax.set_ylabel("proxy score (%)")
            ax.set_title(f"step {t + 1}")
            ax.legend(fontsize=7)
            fig.tight_layout()
            name = f"step-{t}.png"
            fig.savefig(out / name, dpi=90)
            plt.close(fig)
            images.append((name, f"Step {t + 1}: every candidate's proxy score against {texts[0]}"))

    # the cooling schedule
    schedule = meta.get("schedule") or {}
    if schedule:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for text in texts:
            key = keys[text]
            values = [v / original[key] for v in schedule.get(key, [])]
            ax.plot(range(1, len(values) + 1), values, marker="o", label=text)
        ax.set_xlabel("step")
        ax.set_ylabel("threshold (x original)")
        ax.set_title(f"{config.cooling} cooling")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "cooling.png", dpi=90)
        plt.close(fig)
        images.append(("cooling.png", "The cooling schedule: each step's threshold relative to the original network"))

    # the final per-layer settings
    layers = (summary or {}).get("layers") or []
    if layers:
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(layers)), 3.8))
        xs = range(len(layers))
        kept = [r["out_after"] / r["out_before"] for r in layers]
        density = [1 - r["sparsity"] for r in layers]
        ax.bar([x - 0.2 for x in xs], kept, width=0.4, label="channels kept")
        ax.bar([x + 0.2 for x in xs], density, width=0.4, label="non-zero weights")
        for x, r in zip(xs, layers, strict=True):
            if r["bits"] < 32:
                ax.text(x, 1.02, f"{r['bits']}b", ha="center", fontsize=7)
        ax.set_xticks(list(xs), [r["layer"] for r in layers], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1.35)
        ax.set_ylabel("fraction")
        ax.set_title("final per-layer settings (labels: weight bits)")
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        fig.tight_layout()
        fig.savefig(out / "layers.png", dpi=90)
        plt.close(fig)
        images.append(("layers.png", "Final per-layer settings"))

    md = _markdown(config, meta, steps, summary, images)
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(_html(md, images, summary))
    return out / "report.html"


def _before_after(meta: dict[str, Any], summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = [("accuracy (test top-1)", f"{100 * summary['accuracy']['original']:.2f} %",
             f"{100 * summary['accuracy']['final']:.2f} %",
             f"{100 * (summary['accuracy']['final'] - summary['accuracy']['original']):+.2f} pt")]
    for c in summary["constraints"]:
        verdict = "met" if c["satisfied"] else "MISSED"
        change = f"{c['ratio']:.3f}x, bound {format_value(c['bound'], c['unit'])}: {verdict}"
        if c["remeasurements"] > 1:
            moments = len(c.get("moment_means") or [0])
            over = f" over {moments} moments" if moments > 1 else ""
            change += (f" (upper {100 * summary.get('confidence', 0.95):.0f} % bound of the mean "
                       f"{c['upper_confidence'] / c['original']:.3f}x{over}; "
                       f"{c['violations']}/{c['remeasurements']} single re-measurements above)")
        rows.append((c["text"], format_value(c["original"], c["unit"]), format_value(c["final"], c["unit"]), change))
    before, after = summary["metrics"]["original"], summary["metrics"]["final"]
    for label, key, unit in (("MACs", "macs", "MACs"), ("params", "params", "params"),
                             ("params (non-zero)", "params_sparse", "params"), ("size (packed)", "size_bytes", "B")):
        rows.append((label, format_value(before[key], unit), format_value(after[key], unit),
                     f"{after[key] / before[key]:.3f}x" if before[key] else ""))
    return rows


def _kept_every_width(walk: dict[str, Any]) -> bool:
    """Whether the try that held at a re-check's or repair's chosen ``position`` kept every
    channel width (``params_kept`` 1.0: the same network timed again). False for walks recorded
    before tries carried ``params_kept``."""
    held = [t for t in walk["tries"] if t["passed"] and t["position"] == walk["position"]]
    return bool(held) and held[-1].get("params_kept", 0.0) >= 1.0


def _markdown(config, meta, steps, summary, images) -> str:
    lines = [f"# netbudget report: {config.model} on {config.dataset}", ""]
    lines.append("Budgets: " + ", ".join(f"`{t}`" for t in config.constraints) + ".")
    floor = meta.get("floor")
    operators = ", ".join(config.operators)
    if floor and floor["path"] == "uniform":
        lines.append(f"Search: none; the uniform configuration of each of {len(steps)} step(s) "
                     f"(`--floor-path uniform`, below), operators {operators}.")
    elif floor:
        lines.append(f"Search: none; the most compressed network at once (`--floor-path once`, below), "
                     f"operators {operators}.")
    else:
        last = f" ({config.last_trials} in the last)" if config.last_trials is not None and len(steps) > 1 else ""
        lines.append(f"Search: {config.sampler} sampler, {config.cooling} cooling over {len(steps)} step(s), "
                     f"{config.trials} candidates per step{last}, proxy `{config.proxy}`, operators {operators}.")
    if meta.get("margin"):
        lines.append(f"Latency noise {100 * meta.get('noise', 0):.1f} %: measured bounds were searched "
                     f"{100 * meta['margin']:.1f} % below their value.")
    for text in meta.get("warnings") or []:
        lines += ["", f"**Warning**: {text}", ""]
    if floor:
        units = meta.get("units", {})
        missed = ", ".join(f"`{k}` {format_value(floor['reachable'][k], units.get(k, ''))} against "
                           f"{format_value(v, units.get(k, ''))}" for k, v in floor["thresholds"].items())
        then = ("each step took the uniform configuration that met its threshold" if floor["path"] == "uniform"
                else f"it was taken at once and fine-tuned for the whole budget ({floor['final_epochs']} epoch(s))")
        lines.append(f"No search: the most compressed network missed the searched bound at the start ({missed}), "
                     f"so {then}.")
        lines.append("")
    recheck = meta.get("recheck")
    if recheck:
        thinnings = len({t["position"] for t in recheck["tries"]} - {0.0})
        retimed = sum(1 for t in recheck["tries"] if t.get("retime"))
        if not recheck["passed"]:
            outcome = f"nothing held after {thinnings} thinning(s); verification decides"
        elif recheck["position"] == 0:
            outcome = "the last step's winner held"
        else:
            outcome = (f"its channels were thinned by {recheck['position']:.3f} of their remaining range "
                       f"({thinnings} thinning(s))")
            if _kept_every_width(recheck):
                outcome += ", a share that kept every width: the same network held when timed again"
        if retimed:
            outcome += f"; {retimed} miss(es) resting on one slow moment re-timed"
        lines.append(f"Re-check before the final fine-tune (measured budgets against the searched bound): {outcome}.")
    guard = meta.get("guard")
    if guard:
        ours, theirs = guard["winner"], guard["uniform"]
        outcome = ("no more of either, so the uniform path's network was trained and shipped in its place"
                   if guard["applied"] else "the search's network was kept")
        lines.append(f"Uniform guard (`--uniform-guard`): the search's network has {ours['macs'] / 1e6:.2f} M MACs and "
                     f"{ours['params'] / 1e3:.1f} k parameters, the uniform path's network (every layer pruned alike "
                     f"at each step) {theirs['macs'] / 1e6:.2f} M and {theirs['params'] / 1e3:.1f} k: {outcome}.")
    lines.append("")
    if summary is None:
        lines += ["**The run has not finished**; this report shows the steps completed so far.", ""]
    else:
        verdict = "FEASIBLE: every budget held on re-measurement" if summary["feasible"] else \
            "INFEASIBLE: a budget was missed on re-measurement; no model was exported"
        lines += [f"**{verdict}.** {summary['evaluations']} candidates evaluated in {summary['seconds']:.0f} s.", ""]
        machine = summary.get("machine")  # absent from runs finished before it was recorded
        if machine:
            lines += [(f"Measured on {machine_text(machine)}; latency on {machine['backend']}, "
                       f"{machine['threads']} thread(s), batch {machine['batch_size']}."), ""]
        tries = summary.get("final_tries") or []  # absent from runs finished before it was recorded
        if tries:
            singles = [t for t in tries if "soup_of" not in t]
            kept = next(k for k, t in enumerate(tries) if t["kept"])
            vals = ", ".join(f"{100 * t['val_top1']:.2f} %" for t in singles)
            outcome = (f"their weights averaged (validation top-1 {100 * tries[kept]['val_top1']:.2f} %)"
                       if "soup_of" in tries[kept] else f"kept try {kept + 1}")
            lines += [(f"Final fine-tune: {len(singles)} tries from the same network (validation top-1 {vals}); "
                       f"{outcome}, test top-1 {100 * tries[kept]['test_top1']:.2f} %."), ""]
        for n, repair in enumerate(summary.get("repairs") or [], start=1):
            missed = ", ".join(f"`{k}` upper bound {v:.4g}" for k, v in repair["missed"].items())
            if repair["passed"]:
                thinned = (f"a thinning share of {repair['position']:.3f} kept every width and the same network held "
                           f"the searched bound when timed again;" if _kept_every_width(repair) else
                           f"channels thinned by {repair['position']:.3f} of their remaining range,")
                outcome = (f"{thinned} fine-tuned {config.step_epochs} epoch(s), verified again: "
                           f"{'met' if repair['feasible'] else 'missed'}")
            elif not repair["tries"]:
                outcome = "every layer was at its smallest width already: nothing left to thin"
            else:
                outcome = "no thinner network met the searched bound; the run stopped there"
            lines += [f"Repair {n}: verification missed ({missed}); {outcome}.", ""]
        if summary.get("advice"):
            lines += [summary["advice"], ""]
        lines += ["| | original | compressed | change |", "|---|---:|---:|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _before_after(meta, summary)]
        lines.append("")
    lines += ["## Steps", "", "| step | thresholds | evaluated | winner | winner meets step | val top-1 after fine-tune |",
              "|---:|---|---:|---:|---|---:|"]
    units = meta.get("units", {})
    for t, step in enumerate(steps):
        attrs = step["attrs"]
        thresholds = ", ".join(f"{k} <= {format_value(v, units.get(k, ''))}" for k, v in (attrs.get("thresholds") or {}).items())
        evaluated = sum(1 for x in step["trials"] if x.value is not None and "warm_from" not in x.user_attrs)
        val = attrs.get("val_after_finetune")
        winner = attrs.get("winner", "-")
        origin = {d["trial"]: d for d in attrs.get("thinned", [])}.get(winner)
        won = next((x.user_attrs for x in step["trials"] if x.number == winner), {})
        fallback = won.get("fallback")
        if attrs.get("at_floor"):  # an earlier step left every layer at --min-keep
            winner = "none: every layer at --min-keep"
        elif origin is not None:  # a candidate that missed on re-timing, thinned along its own line
            winner = f"{winner} (#{origin['from']} thinned by {origin['position']:.3f})"
        elif fallback is not None:  # no candidate held on re-timing: the uniform line past the seed
            winner = f"{winner} (uniform at {fallback:.3f}: no candidate held)"
        if won.get("path_seed"):
            winner = f"{winner} (the path's network as a seed)"
        if won.get("projected_from") is not None:  # `project_misses` / `project_slack`: a proposal moved along its line
            winner = f"{winner} (#{won['projected_from']} moved onto the bound)"
        if won.get("warm_from") is not None:  # `warm_start`: a first-step candidate that meets the target
            winner = f"{winner} (step 1's #{won['warm_from']})"
        # a last step searched from the original network (`last_step` original)
        label = f"{t + 1} (from the original network)" if attrs.get("base") == "original" else t + 1
        lines.append(f"| {label} | {thresholds} | {evaluated} | {winner} | "
                     f"{attrs.get('winner_feasible', '-')} | {'' if val is None else f'{100 * val:.2f} %'} |")
    lines.append("")
    layers = (summary or {}).get("layers") or []
    if layers:
        lines += ["## Final per-layer settings", "", "| layer | channels | sparsity | weight bits |", "|---|---:|---:|---:|"]
        for r in layers:
            bits = "float32" if r["bits"] >= 32 else str(r["bits"])
            lines.append(f"| {r['layer']} | {r['out_before']} -> {r['out_after']} | {100 * r['sparsity']:.1f} % | {bits} |")
        lines.append("")
    lines += ["## Plots", ""]
    lines += [f"![{caption}]({name})" for name, caption in images]
    return "\n".join(lines) + "\n"


def _html(md: str, images: list[tuple[str, str]], summary: dict[str, Any] | None) -> str:
    """A small, dependency-free rendering of the report's Markdown (tables, headings, images)."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *rows = table
            body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>")
            body.extend("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
            body.append("</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if not all(set(c) <= set("-:") for c in cells):
                table.append(cells)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            caption, name = line[2:].split("](")
            body.append(f'<figure><img src="{html.escape(name[:-1])}" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        elif line.strip():
            text = html.escape(line).replace("**", "")
            body.append(f"<p>{text}</p>")
    flush()
    color = "#1a7f37" if summary and summary.get("feasible") else "#b42318"
    style = (
        "body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:14px}"
        f"h1{{border-bottom:3px solid {color}}}figure{{margin:1em 0}}img{{max-width:100%}}"
        "figcaption{font-size:13px;color:#555}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>netbudget report</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"

