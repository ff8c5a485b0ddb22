"""benchmarks/gpu_check.py --dry-run: the device script at toy sizes on CPU (CUDA graphs through the
stand-in), run as a GPU machine would run it (a subprocess from the source checkout with
PYTHONPATH=src), writes the JSON and markdown with every field the issue lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRECISIONS = ("32-true", "32-tf32", "bf16-mixed")


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_field(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(tmp_path),
                           "--dry-run"], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads((tmp_path / "gpu_check.json").read_text())
    md = (tmp_path / "gpu_check.md").read_text()
    assert r["dry_run"] is True and r["errors"] == {}
    assert {"device", "driver", "torch", "cuda", "cudnn"} <= set(r["env"]) and r["env"]["graphs"] == "CPU stand-in"
    # one run and a pack (of 2 here, 20 on a GPU) x fp32 / TF32 / bf16 x graphs off and on
    rows = {(x["members"], x["precision"], x["graphs"]): x for x in r["speed"]}
    assert set(rows) == {(k, p, g) for k in (1, 2) for p in PRECISIONS for g in (False, True)}
    for (_, _, graphs), x in rows.items():
        assert x["samples_per_s"] > 0 and x["loss_finite"] and x["graphed"] == graphs
        assert x["loss_last"] < x["loss_first"] and x["loss_falling"]       # trained on the twin's patches
    g = r["graph"]
    assert g["graphed"] and g["within_tolerance_after_one_step"] and g["below_seed_spread"]
    iso = r["isolation"]
    assert iso["isolated"] and iso["member_1_non_finite"] and iso["members_0_2_max_abs_diff"] == [0.0, 0.0]
    ev = r["evaluation"]
    assert ev["deterministic_equal"] and ev["mc_within_mc_error"] and ev["device_mc_s_per_1000"] > 0
    ck = r["checkpoint"]
    assert ck["per_member_s"] > 0 and 0 < ck["share_upper_bound"] < 1
    d = r["demo"]
    assert set(d["phases_s"]) == {"synth", "prepare", "train", "evaluate", "figures"}
    assert d["projection"]["label"].startswith("PROJECTION") and d["projection"]["train_s_at_300_epochs"] > 0
    assert set(d["metrics"]) == {"dist"}
    assert {"ce_distr", "ece", "overconfidence"} <= set(d["metrics"]["dist"])
    for heading in ("DRY RUN", "## Training speed", "## Graphed vs eager", "## Failing-member isolation",
                    "## Evaluation on the device vs CPU", "## Checkpoint writing", "## Demo", "PROJECTION"):
        assert heading in md
