"""Owns the training regimes: for each, its training and validation targets, loss, temperature-
scaling target, display label and colour, and which of them form the paper's grid. Pure data; every
layer (config, data, training, evaluation, viz, study) reads it, and it imports only
:mod:`lczldl.constants` (the aggregators' target names).

Adding a regime is one entry in :data:`REGIMES` (the target names must be targets that
``lczldl.data.store.make_targets`` serves; ``loss`` a key of ``lczldl.training.losses.LOSSES``).
Smoothing is a training-only change: a smoothed regime validates, and is temperature-scaled,
against the unsmoothed target.
"""

from __future__ import annotations

from dataclasses import dataclass

from lczldl.constants import AGG_ONEHOT_TARGETS, AGG_TARGETS

#: Targets built from each image's label alone (no expert votes): what a store without votes serves.
LABEL_TARGETS: tuple[str, ...] = ("onehot", "onehot_ls", "onehot_ls17")


@dataclass(frozen=True)
class Regime:
    """One training regime. Target names are those of ``lczldl.data.store.TARGETS``."""

    name: str
    #: training target (``compat17_target`` replaces it under ``train.label_smoothing_compat17``)
    train_target: str
    #: target of the validation loss (early stopping, best checkpoint)
    val_target: str
    #: "ce" (soft cross-entropy) or "kl" (KL divergence), keys of ``lczldl.training.losses.LOSSES``
    loss: str
    #: display name in figures and reports
    label: str
    #: colour in figures (colour-blind safe: Okabe-Ito, Paul Tol's muted scheme for the aggregators)
    color: str
    #: part of the paper's grid (the study's default regimes)
    paper: bool = False
    #: the seed's 17-column smoothing quirk as training target (rows sum to 0.959 for e = 0.1)
    compat17_target: str | None = None

    @property
    def needs_votes(self) -> bool:
        """True when a target of the regime comes from expert votes (a vote distribution, Dawid-Skene
        or an aggregator's posterior): a store without votes (So2Sat LCZ42) cannot train it."""
        return any(t not in LABEL_TARGETS for t in (self.train_target, self.val_target, self.compat17_target)
                   if t is not None)

    @property
    def ts_target(self) -> str:
        """Target temperature / vector scaling are fitted against on the validation split: the
        validation target (a smoothed regime is scaled against the unsmoothed one)."""
        return self.val_target


#: The crowd-kit aggregators' regimes (opt-in; the store must be prepared with ``--aggregators``):
#: ``agg_<m>`` trains on the posterior (KL), ``agg_<m>_onehot`` on its argmax (CE); both validate
#: and are temperature-scaled against their own training target. (method, label, (colour, colour)).
_AGGREGATOR_STYLE: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("one_coin", "one-coin DS", ("#332288", "#88ccee")),
    ("glad", "GLAD", ("#117733", "#44aa99")),
    ("mace", "MACE", ("#882255", "#cc6677")),
    ("wawa", "Wawa", ("#999933", "#ddcc77")),
)
#: Every regime, in table / figure order.
REGIMES: dict[str, Regime] = {r.name: r for r in (
    Regime("onehot", "onehot", "onehot", "ce", "one-hot", "#7f7f7f", paper=True),
    Regime("onehot_ls", "onehot_ls", "onehot", "ce", "one-hot + LS", "#e69f00", paper=True,
           compat17_target="onehot_ls17"),
    Regime("dist", "distribution", "distribution", "kl", "distribution", "#0072b2",
           paper=True),
    Regime("dist_ls", "distribution_ls", "distribution", "kl", "distribution + LS", "#009e73",
           paper=True),
    Regime("dawid_skene", "dawid_skene", "dawid_skene", "kl", "Dawid-Skene", "#cc79a7"),
    *(r for m, label, colors in _AGGREGATOR_STYLE for r in (
        Regime(AGG_TARGETS[m], AGG_TARGETS[m], AGG_TARGETS[m], "kl", label, colors[0]),
        Regime(AGG_ONEHOT_TARGETS[m], AGG_ONEHOT_TARGETS[m], AGG_ONEHOT_TARGETS[m], "ce",
               f"{label} label", colors[1]))),
)}
#: The paper's four regimes (the study's default grid), in order.
PAPER_REGIMES: tuple[str, ...] = tuple(n for n, r in REGIMES.items() if r.paper)
#: Colours of regimes outside the registry (e.g. a study folder of a newer version), by position.
EXTRA_COLORS: tuple[str, ...] = ("#d55e00", "#56b4e9", "#f0e442", "#000000")


def get_regime(name: str) -> Regime:
    """The registered regime ``name``; ValueError (one line, listing the choices) otherwise."""
    try:
        return REGIMES[name]
    except KeyError:
        raise ValueError(f"unknown regime {name!r}; use one of {', '.join(REGIMES)}") from None


def regime_targets(name: str, compat17: bool = False) -> tuple[str, str, str]:
    """(train target, validation target, loss name) of a regime; ``compat17`` swaps in the seed's
    17-column smoothing where the regime has it (onehot_ls)."""
    r = get_regime(name)
    train = r.compat17_target if compat17 and r.compat17_target else r.train_target
    return train, r.val_target, r.loss


def label_only_regimes(names: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The registered regimes among ``names`` (all when None) that need no expert votes
    (:attr:`Regime.needs_votes` False), in :data:`REGIMES` order: onehot, onehot_ls."""
    pool = REGIMES if names is None else set(names)
    return [n for n, r in REGIMES.items() if n in pool and not r.needs_votes]


def vote_regimes(names: list[str] | tuple[str, ...]) -> list[str]:
    """The regimes among ``names`` that need expert votes, in the order given (unknown names count as
    needing them: nothing says otherwise)."""
    return [n for n in names if n not in REGIMES or REGIMES[n].needs_votes]


def order_regimes(names: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """Registered regimes in :data:`REGIMES` order, then unknown names sorted."""
    names = set(names)
    return [r for r in REGIMES if r in names] + sorted(names - set(REGIMES))


def regime_label(name: str) -> str:
    """Display name of a regime (unknown names pass through)."""
    r = REGIMES.get(name)
    return r.label if r else name


def regime_color(name: str, i: int = 0) -> str:
    """Colour of a regime; an unknown regime gets :data:`EXTRA_COLORS` by its position ``i``."""
    r = REGIMES.get(name)
    return r.color if r else EXTRA_COLORS[i % len(EXTRA_COLORS)]
