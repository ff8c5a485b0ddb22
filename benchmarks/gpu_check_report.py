"""The markdown table of benchmarks/gpu_check.py's results (its JSON, rendered)."""

from __future__ import annotations

from typing import Any


def markdown(r: dict[str, Any]) -> str:
    e = r.get("env", {})
    lines = [f"# gpu_check {'(DRY RUN, toy sizes on CPU)' if r['dry_run'] else ''}", "",
             f"{e.get('device')} ({e.get('memory_gib')} GiB), driver {e.get('driver')}, torch {e.get('torch')}, "
             f"CUDA {e.get('cuda')}, cuDNN {e.get('cudnn')}, graphs: {e.get('graphs')}; {r['started']}, "
             f"wall {r.get('wall_s')} s", ""]
    if r.get("speed"):
        lines += ["## Training speed (samples/s aggregate over the members, batch 64 each)", "",
                  "| case | precision | graphs | samples/s | min..max | loss first -> last | finite, falling |",
                  "|---|---|---|---:|---:|---|---|"]
        for x in r["speed"]:
            if "skipped" in x:
                lines.append(f"| {x['case']} | {x['precision']} | {x['graphs']} | skipped ({x['skipped']}) | | | |")
                continue
            lines.append(f"| {x['case']} | {x['precision']} | {'on' if x['graphed'] else 'off'}{' (fell back)' if x['graphs'] and not x['graphed'] else ''} "
                         f"| {x['samples_per_s']:,.0f} | {x['min']:,.0f}..{x['max']:,.0f} | {x['loss_first']:.4f} -> "
                         f"{x['loss_last']:.4f} | {x['loss_finite']}, {x['loss_falling']} |")
        lines.append("")
    for key, title in (("graph", "Graphed vs eager"), ("isolation", "Failing-member isolation"),
                       ("evaluation", "Evaluation on the device vs CPU"), ("checkpoint", "Checkpoint writing")):
        if key in r:
            lines += [f"## {title}", "", "| | |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in r[key].items()]
            lines.append("")
    if "demo" in r:
        d = r["demo"]
        lines += ["## Demo (`lczldl demo --profile paper` pipeline)", ""]
        if "skipped" in d:
            lines += [f"skipped: {d['skipped']}", ""]
        else:
            lines += [f"{d['profile']}: {d['runs']} runs, {d['epochs']} epochs, wall {d['wall_s']} s, pack epoch "
                      f"{d['pack_epoch_wall_s']} s", "",
                      "| phase | units | unit s (summed) | span s | projection s (paper profile) |",
                      "|---|---:|---:|---:|---:|"]
            p = d.get("projection", {})
            proj = {"synth": p.get("synth_s"), "prepare": p.get("prepare_s"),
                    "train": f"{p.get('train_s_per_epoch')} per epoch, {p.get('train_s_at_300_epochs')} at 300 epochs"
                    if p else None, "evaluate": p.get("evaluate_s"), "figures": p.get("figures_s")}
            for ph in proj:
                m = d["phases_s"].get(ph, {})
                lines.append(f"| {ph} | {m.get('units', '-')} | {m.get('unit_s', '-')} | {m.get('span_s', '-')} | "
                             f"{proj[ph] if p else '-'} |")
            if p:
                lines += ["", f"{p['label']}. {p['note']}."]
            lines += ["", "| regime | ce_distr | ece | overconfidence | oa |", "|---|---:|---:|---:|---:|"]
            lines += [f"| {g} | " + " | ".join(f"{m[k]:.4f}" if m.get(k) is not None else "-"
                                            for k in ("ce_distr", "ece", "overconfidence", "oa")) + " |"
                      for g, m in d["metrics"].items()]
            lines.append("")
    if r["errors"]:
        lines += ["## Errors", ""] + [f"- {k}: {v}" for k, v in r["errors"].items()] + [""]
    return "\n".join(lines)
