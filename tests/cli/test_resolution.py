"""What the user typed wins over a config file, and a bad value ends in one line, exit 2, with
nothing written: ``study``, ``evaluate`` and ``data prepare`` through the CLI."""

from __future__ import annotations

import json

import pytest

from lczldl.cli.main import main


def _fails(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    return err.strip()


@pytest.mark.parametrize("typed, message", [
    (["--workers", "0"], "error: --workers 0: must be greater than or equal to 1"),
    (["--seeds", "4-1"], "error: --seeds 4-1: range 4-1 runs backwards"),
    (["--regimes", "dist,soft"], "error: --regimes dist,soft: unknown soft"),
    (["--executor", "condor"], "error: --executor condor: expected"),
    (["--pack", "0"], "error: --pack 0: must be greater than or equal to 1"),
])
def test_study_bad_option_named_by_its_flag_leaves_nothing(store, tmp_path, capsys, typed, message):
    out = tmp_path / "study"
    err = _fails(["study", "--data", str(store), "--out", str(out), *typed], capsys)
    assert err.startswith(message)
    assert not out.exists()


def _finished_run(runs):
    run = runs / "dist" / "seed0"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    return run


def test_evaluate_bins_0_writes_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    run = _finished_run(runs)
    err = _fails(["evaluate", "--runs", str(runs), "--bins", "0"], capsys)
    assert err == "error: --bins 0: must be greater than or equal to 2"
    assert sorted(p.name for p in run.iterdir()) == ["run.json"] and sorted(p.name for p in runs.iterdir()) == ["dist"]


@pytest.mark.parametrize("typed, expected", [
    ([], {"mc_passes": 3, "n_bins": 15, "conformal": False, "levels": [0.8]}),   # the file's section
    (["--bins", "20", "--mc-passes", "7", "--conformal", "--levels", "0.95, 0.9"],
     {"mc_passes": 7, "n_bins": 20, "conformal": True, "levels": [0.9, 0.95]}),  # typed wins
])
def test_evaluate_reads_the_config_and_typed_options_win(tmp_path, monkeypatch, typed, expected):
    import lczldl.evaluation.runs as ev

    seen = {}
    monkeypatch.setattr(ev, "evaluate_runs", lambda runs, out=None, **kw: seen.update(kw))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("evaluation:\n  n_bins: 15\n  mc_passes: 3\n  conformal: false\n  conformal_levels: [0.8]\n"
                   "study:\n  seeds: '0-1'\n")  # a study YAML
    main(["evaluate", "--runs", str(tmp_path), "--config", str(cfg), *typed])
    e = seen.pop("evaluation")
    assert (e.mc_passes, e.n_bins, e.conformal, e.conformal_levels) == tuple(expected.values())
    assert e.selective is True and seen == {}                        # the settings travel once


def test_evaluate_without_config_uses_the_defaults(tmp_path, monkeypatch):
    import lczldl.evaluation.runs as ev

    seen = {}
    monkeypatch.setattr(ev, "evaluate_runs", lambda runs, out=None, **kw: seen.update(kw))
    main(["evaluate", "--runs", str(tmp_path)])
    e = seen.pop("evaluation")
    assert seen == {} and (e.mc_passes, e.n_bins) == (20, 20)          # the paper's protocol
    assert (e.conformal, e.selective, e.conformal_levels) == (True, True, [0.9, 0.95])


@pytest.mark.parametrize("argv, message", [
    (["--levels", "0.9,1.2"], "error: --levels 0.9,1.2: '0.9,1.2': coverage levels must lie in (0, 1), e.g. 0.9,0.95"),
    (["--levels", "high"], "error: --levels high: 'high': coverage levels must be numbers, e.g. 0.9,0.95"),
])
def test_evaluate_bad_levels(tmp_path, capsys, argv, message):
    assert _fails(["evaluate", "--runs", str(tmp_path), *argv], capsys) == message


def test_prepare_reads_the_study_prepare_section_and_typed_options_win(tmp_path, monkeypatch):
    import lczldl.data.prepare as prep

    seen = {}

    def fake(raw, out, settings=None, **kw):
        seen["settings"] = settings
        return {"splits": {}, "dropped": {}}

    monkeypatch.setattr(prep, "prepare_store", fake)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("study:\n  prepare:\n    split: random\n    seed: 7\n    smoothing: 0.08\n")
    main(["data", "prepare", "--raw", str(tmp_path), "--out", str(tmp_path / "s"), "--config", str(cfg),
          "--seed", "42", "--train-cities", "berlin, rome"])
    s = seen["settings"]
    assert (s.split, s.seed, s.smoothing, s.train_cities) == ("random", 42, 0.08, ["berlin", "rome"])
    main(["data", "prepare", "--raw", str(tmp_path), "--out", str(tmp_path / "s")])
    s = seen["settings"]
    assert (s.split, s.seed, s.smoothing, s.drop_nonfinite, s.aggregators) == ("authors", 42, 0.0, False, [])
    main(["data", "prepare", "--raw", str(tmp_path), "--out", str(tmp_path / "s"), "--aggregators", "wawa,mace"])
    assert seen["settings"].aggregators == ["mace", "wawa"]          # canonical order: the same store


@pytest.mark.parametrize("argv, message", [
    (["--split", "blocks"], "error: --split blocks: expected 'authors', 'random' or 'cities'"),
    (["--smoothing", "-1"], "error: --smoothing -1.0: must be greater than or equal to 0"),
    (["--seed", "-3"], "error: --seed -3: must be greater than or equal to 0"),
    (["--aggregators", "mace,ds"], "error: --aggregators mace,ds: unknown aggregator ds; choose from "
                                   "one_coin, glad, mace, wawa"),
])
def test_prepare_bad_values_write_nothing(tmp_path, capsys, argv, message):
    raw = tmp_path / "raw"
    raw.mkdir()
    err = _fails(["data", "prepare", "--raw", str(raw), "--out", str(tmp_path / "s"), *argv], capsys)
    assert err == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]
