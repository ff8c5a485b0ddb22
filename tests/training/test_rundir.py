"""The one decision about an existing run folder (training.rundir), without training."""

from __future__ import annotations

import json

import pytest

from lczldl.config import load_config
from lczldl.errors import RunError
from lczldl.training.rundir import FRESH, RESUME, SKIP, clear_attempt, plan_run_dir


def _run(tmp_path, status=None, last=False, config=None):
    run = tmp_path / "onehot" / "seed0"
    (run / "checkpoints").mkdir(parents=True)
    if status:
        (run / "run.json").write_text(json.dumps({"status": status}))
    if last:
        (run / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    if config is not None:
        (run / "config.yaml").write_text(config)
    return run


def test_plan(tmp_path):
    cfg = load_config()
    assert plan_run_dir(tmp_path / "none", False, cfg) == FRESH
    assert plan_run_dir(_run(tmp_path / "a", "finished", last=True), False, cfg) == SKIP
    assert plan_run_dir(_run(tmp_path / "b", "running"), False, cfg) == FRESH        # killed before a checkpoint
    killed = _run(tmp_path / "c", "running", last=True)
    with pytest.raises(RunError, match="resume=True"):
        plan_run_dir(killed, False, cfg)
    assert plan_run_dir(killed, True, cfg) == RESUME
    assert plan_run_dir(_run(tmp_path / "d", None, last=True), True, cfg) == RESUME   # run.json unreadable/absent


def test_resume_refuses_another_config_but_not_runtime_keys(tmp_path):
    import yaml

    from lczldl.config import run_sections

    cfg = load_config(None, ["model.width=8"])
    run = _run(tmp_path, "running", last=True, config=yaml.safe_dump(run_sections(cfg)))
    assert plan_run_dir(run, True, load_config(None, ["model.width=8", "train.max_epochs=5",
                                                      "train.num_threads=2"])) == RESUME
    assert plan_run_dir(run, True, load_config(None, ["model.width=8", "train.last_checkpoint_epochs=3",
                                                      "train.last_checkpoint_minutes=2.5"])) == RESUME
    with pytest.raises(RunError, match=r"model\.width: 8 in config\.yaml, now 16"):
        plan_run_dir(run, True, load_config())


def test_a_key_the_old_config_lacks_counts_as_its_default(tmp_path):
    """A run killed before a config key existed (its config.yaml lacks data.vote_budget) resumes
    under the key's default, and is refused under another value of it."""
    import yaml

    from lczldl.config import run_sections

    old = run_sections(load_config())
    del old["data"]["vote_budget"]
    run = _run(tmp_path, "running", last=True, config=yaml.safe_dump(old))
    assert plan_run_dir(run, True, load_config()) == RESUME
    with pytest.raises(RunError, match=r"data\.vote_budget"):
        plan_run_dir(run, True, load_config(None, ["data.vote_budget.k=3"]))


def test_clear_attempt_removes_the_attempts_files_only(tmp_path):
    run = _run(tmp_path, "running", config="{}\n")
    (run / "checkpoints" / "best.ckpt").write_bytes(b"x")
    (run / "metrics.csv").write_text("epoch\n0\n")
    (run / "notes.txt").write_text("mine")
    clear_attempt(run)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]
