import sys

import pytest
import yaml

from lczldl.config import LczldlConfig, default_config_text, dump_config, load_config, parse_override
from lczldl.errors import ConfigError

from .conftest import run_config


def test_shipped_default_yaml_equals_model_defaults():
    assert LczldlConfig.model_validate(yaml.safe_load(default_config_text())) == LczldlConfig()
    c = LczldlConfig()
    assert (c.train.lr, c.train.batch_size, c.train.max_epochs, c.train.patience) == (0.002, 64, 300, 20)
    assert (c.model.depth, c.model.width, c.model.dropout) == (17, 16, 0.2)
    # the paper's Nadam and lr steps (Keras: epsilon 1e-7, schedule decay 0.004), declared only here
    assert (c.train.lr_decay, c.train.lr_step_epochs, c.train.nadam_eps, c.train.nadam_momentum_decay,
            c.train.label_smoothing) == (0.5, 5, 1e-7, 0.004, 0.1)


def test_precedence_file_then_set_then_keywords(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.01\n  patience: 3\nmodel:\n  width: 8\n")
    c = load_config(f, ["train.lr=0.001", "model.bands=[S2_B02, S2_B03]"], **{"train.patience": 5,
                                                                              "train.max_epochs": None})
    assert (c.train.lr, c.train.patience, c.model.width, c.train.max_epochs) == (0.001, 5, 8, 300)
    assert c.model.bands == ["S2_B02", "S2_B03"]
    assert load_config(None, None, **{"train.regime": "dist"}).train.regime == "dist"


def test_dump_round_trip(tmp_path):
    c = load_config(None, ["train.regime=dist_ls", "train.precision=bf16-mixed"])
    f = tmp_path / "r.yaml"
    f.write_text(dump_config(c))
    assert load_config(f) == c


@pytest.mark.parametrize("override, key", [
    ("train.foo=1", "train.foo"),                 # unknown key
    ("nosection.lr=1", "nosection"),              # unknown section
    ("train.lr=abc", "train.lr"),                 # wrong type
    ("train.batch_size=1.5", "train.batch_size"),  # wrong type
    ("train.lr=-0.1", "train.lr"),                # impossible value
    ("train.patience=-1", "train.patience"),
    ("train.max_epochs=0", "train.max_epochs"),
    ("train.regime=soft", "train.regime"),        # unknown regime
    ("model.depth=16", "model.depth"),
    ("model.bands=[S2_B99]", "model.bands"),
    ("train.devices=0", "train.devices"),
    ("train.logger=wandb", "train.logger"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    msg = str(e.value)
    assert f"'{key}" in msg and "\n" not in msg


@pytest.mark.parametrize("item", ["train.lr", "=1", "train..lr=1", "lr=1", "train.lr=[1,"])
def test_bad_set_syntax(item):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(item)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(lst)
    unk = tmp_path / "unk.yaml"
    unk.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unk.yaml.*'train.learning_rate'"):
        load_config(unk)
    scal = tmp_path / "scal.yaml"
    scal.write_text("train: 3\n")
    with pytest.raises(ConfigError, match="'train.lr'.*not a section"):
        load_config(scal, ["train.lr=1"])


def test_study_section_is_accepted_and_kept(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("train:\n  max_epochs: 2\nstudy:\n  seeds: '0-1'\n")
    c = load_config(f)
    assert c.study.seeds == [0, 1] and c.study.workers == 1 and "study" in dump_config(c)
    assert "study" not in dump_config(LczldlConfig())
    bad = tmp_path / "bad.yaml"
    bad.write_text("study:\n  wokers: 2\n")
    with pytest.raises(ConfigError, match="unknown config key 'study.wokers'"):
        load_config(bad)


def test_typed_options_win_over_the_file_even_when_equal_to_the_defaults(tmp_path):
    """A value typed on the command line wins over the config file, including a value that equals
    the built-in default (``--seeds 0-4``, ``--workers 1``); the file wins over the defaults."""
    f = tmp_path / "s.yaml"
    f.write_text("study:\n  seeds: '0,3'\n  workers: 2\n  executor: submitit-local\n"
                 "evaluation:\n  n_bins: 15\n")
    typed = {"study.seeds": "0-4", "study.workers": 1, "study.executor": "local"}
    c = load_config(f, None, **typed)
    assert (c.study.seeds, c.study.workers, c.study.executor) == ([0, 1, 2, 3, 4], 1, "local")
    c = load_config(f, None, **dict.fromkeys(typed))               # nothing typed: the file's values
    assert (c.study.seeds, c.study.workers, c.study.executor) == ([0, 3], 2, "submitit-local")
    assert c.evaluation.n_bins == 15 and c.evaluation.mc_passes == 20  # file, then default


@pytest.mark.parametrize("key, flag, value, expected", [
    ("study.workers", "--workers", 0, "--workers 0: must be greater than or equal to 1"),
    ("study.executor", "--executor", "condor", "--executor condor: expected 'local', 'slurm' or 'submitit-local'"),
    ("study.regimes", "--regimes", "dist,soft", "--regimes dist,soft: unknown soft; choose from"),
    ("evaluation.n_bins", "--bins", 0, "--bins 0: must be greater than or equal to 2"),
    ("study.prepare.smoothing", "--smoothing", float("nan"), "--smoothing nan: must be a finite number"),
])
def test_a_bad_typed_value_names_the_option(key, flag, value, expected):
    with pytest.raises(ConfigError) as e:
        load_config(None, None, flags={key: flag}, **{key: value})
    assert str(e.value).startswith(expected) and "\n" not in str(e.value)


def test_run_sections_leave_the_study_section_out(tmp_path):
    from lczldl.config import run_sections

    f = tmp_path / "s.yaml"
    f.write_text("train:\n  max_epochs: 2\nstudy:\n  seeds: '0-1'\n")
    assert set(run_sections(load_config(f))) == {"data", "model", "train", "evaluation"}


@pytest.mark.parametrize("args", [
    ["--set", "train.lr=-1"], ["--set", "train.nope=1"], ["--set", "train.lr"], ["--regime", "soft"],
])
def test_cli_config_errors_exit_2_with_one_line(tiny_store, tmp_path, capsys, args):
    from lczldl.cli.main import main

    argv = ["train", "--data", str(tiny_store), "--out", str(tmp_path / "runs")]
    if "--regime" not in args:
        argv += ["--regime", "onehot"]
    with pytest.raises(SystemExit) as e:
        main(argv + args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_cli_missing_store_exits_2(tmp_path, capsys):
    from lczldl.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--data", str(tmp_path / "nostore"), "--regime", "dist", "--out", str(tmp_path / "r")])
    assert e.value.code == 2
    assert "manifest.json" in capsys.readouterr().err


@pytest.mark.parametrize("kind, modules", [("mlflow", ["mlflow"]),
                                           ("tensorboard", ["tensorboard", "tensorboardX"])])
def test_missing_logger_package_is_a_config_error(tiny_store, tmp_path, monkeypatch, kind, modules):
    from lczldl.training.run import train_run

    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)  # import fails as if not installed
    with pytest.raises(ConfigError, match=f"train.logger={kind}.*pip install"):
        train_run(tiny_store, 0, tmp_path / "runs", run_config([f"train.logger={kind}"], "onehot"),
                  progress=False)
    assert not (tmp_path / "runs").exists()


def test_evaluation_and_prepare_switches():
    """The beyond-the-paper switches: levels sorted without repeats, in (0, 1); aggregators known
    and in canonical order (the same store whatever order they were given in); study.intervals."""
    c = load_config(None, ["evaluation.conformal_levels=[0.95, 0.9, 0.95]", "evaluation.selective=false"])
    assert (c.evaluation.conformal_levels, c.evaluation.selective, c.evaluation.conformal) == ([0.9, 0.95], False, True)
    assert load_config(None, None, **{"evaluation.conformal_levels": "0.8"}).evaluation.conformal_levels == [0.8]
    for bad in ("[0.9, 1.0]", "[]", "[0]"):
        with pytest.raises(ConfigError, match="evaluation.conformal_levels"):
            load_config(None, [f"evaluation.conformal_levels={bad}"])
    c = load_config(None, ["study.prepare.aggregators=[wawa, mace]", "study.intervals=true"])
    assert c.study.prepare.aggregators == ["mace", "wawa"] and c.study.intervals is True
    assert load_config(None, ["study.prepare.aggregators=glad,one_coin"]).study.prepare.aggregators == ["one_coin", "glad"]
    with pytest.raises(ConfigError, match="unknown aggregator crowdkit_ds"):
        load_config(None, ["study.prepare.aggregators=[crowdkit_ds]"])


def test_vote_budget_and_vote_calibrated_sets_settings():
    """data.vote_budget.k: 1..11, "all" / null = every vote; the study's grid: a comma list or list,
    "all" dropped (the study's own runs), sorted without repeats; the vote-calibrated sets' m and
    variant; every bad value names its key."""
    c = load_config(None, None)
    assert (c.data.vote_budget.k, c.data.vote_budget.mode, c.data.vote_budget.seed) == (None, "random", 0)
    assert c.evaluation.vote_conformal is True and (c.evaluation.vote_samples, c.evaluation.vote_variant) == (10, "ecdf")
    assert load_config(None, ["data.vote_budget.k=all"]).data.vote_budget.k is None
    assert load_config(None, ["data.vote_budget.k=3", "data.vote_budget.mode=panel"]).data.vote_budget.k == 3
    for bad in ("0", "12", "x"):
        with pytest.raises(ConfigError, match="data.vote_budget.k"):
            load_config(None, [f"data.vote_budget.k={bad}"])
    with pytest.raises(ConfigError, match="data.vote_budget.mode"):
        load_config(None, ["data.vote_budget.mode=experts"])
    assert load_config(None, None, **{"study.vote_budget.k": "5,1,all,3,1"}).study.vote_budget.k == [1, 3, 5]
    assert load_config(None, ["study.vote_budget.k=[all, 2]"]).study.vote_budget.k == [2]
    assert load_config(None, ["study.vote_budget.k=all"]).study.vote_budget.k == []
    for bad in ("0,1", "1,twelve", "[1.5]", "13"):
        with pytest.raises(ConfigError, match="study.vote_budget.k"):
            load_config(None, [f"study.vote_budget.k={bad}"])
    with pytest.raises(ConfigError, match="evaluation.vote_variant"):
        load_config(None, ["evaluation.vote_variant=median"])
    with pytest.raises(ConfigError, match="evaluation.vote_samples"):
        load_config(None, ["evaluation.vote_samples=0"])
