"""Owns the schema of predictions.npz: the key of every array a run's (RUN/predictions.npz) or an
ensemble's (EVAL/ensemble/REGIME/predictions.npz) file holds, named once here with its shape and
dtype (:data:`ARRAYS`). The file is read and written by :mod:`lczldl.evaluation.files`; no other
module spells these keys.

Dimensions: N test images, V validation images, K classes (10; 17 for So2Sat LCZ42), E expert votes
per image (11). A store without votes (So2Sat LCZ42) gives no vote arrays (distributions,
dawid_skene, vote_entropy, votes, city and their ``val_`` counterparts, val_votes included).
A run trained on a vote budget (``data.vote_budget.k``) holds its budget's validation split: the
validation images the k-vote labels keep, with their k-vote labels, distributions and votes; test
is always the store's, with every vote.
"""

from __future__ import annotations

# ---------------------------------------------------------------- test split (evaluate_run)
PROBS = "probs"
LOG_PROBS = "log_probs"
LABELS = "labels"
DISTRIBUTIONS = "distributions"
DAWID_SKENE = "dawid_skene"
VOTE_ENTROPY = "vote_entropy"
VOTES = "votes"
CITY = "city"
# ---------------------------------------------------------------- validation split (evaluate_run)
VAL_LOG_PROBS = "val_log_probs"
VAL_LABELS = "val_labels"
VAL_DISTRIBUTIONS = "val_distributions"
VAL_DAWID_SKENE = "val_dawid_skene"
VAL_VOTES = "val_votes"
#: prefix of the validation arrays; ``val_<target>`` holds an aggregator regime's temperature-scaling
#: target (:func:`val_target`)
VAL_PREFIX = "val_"
# ---------------------------------------------------------------- MC dropout (calibrate_run)
MC_PROBS = "mc_probs"
MC_ENTROPY = "mc_entropy"
MC_MUTUAL_INFO = "mc_mutual_info"
VAL_MC_PROBS = "val_mc_probs"
# ---------------------------------------------------------------- ensemble only
MEAN_MEMBER_CONFIDENCE = "mean_member_confidence"
DISAGREEMENT = "disagreement"

#: key -> (shape, dtype, meaning) of every array a predictions.npz may hold (besides ``val_<target>``,
#: (V, K) float32, of an aggregator regime). Probabilities' rows sum to 1, logs are natural.
ARRAYS: dict[str, tuple[tuple[str, ...], str, str]] = {
    PROBS: (("N", "K"), "float32", "test probabilities: exp(log_probs) renormalised; an ensemble's: "
                                   "the mean of its members'"),
    LOG_PROBS: (("N", "K"), "float32", "test log-probabilities of the model (log of its mean softmax)"),
    LABELS: (("N",), "int64", "majority-vote class index 0..K-1"),
    DISTRIBUTIONS: (("N", "K"), "float32", "vote distribution over the K classes"),
    DAWID_SKENE: (("N", "K"), "float32", "Dawid-Skene posterior"),
    VOTE_ENTROPY: (("N",), "float32", "entropy of the votes, nats"),
    VOTES: (("N", "E"), "int8", "the experts' LCZ ids 1..17, 0 = no vote (the store's dtype)"),
    CITY: (("N",), "int16", "city index (the store's dtype)"),
    VAL_LOG_PROBS: (("V", "K"), "float32", "validation log-probabilities of the model"),
    VAL_LABELS: (("V",), "int64", "validation majority-vote class index"),
    VAL_DISTRIBUTIONS: (("V", "K"), "float32", "validation vote distribution"),
    VAL_DAWID_SKENE: (("V", "K"), "float32", "validation Dawid-Skene posterior (NaN under a vote budget: not "
                                             "refitted on k votes)"),
    VAL_VOTES: (("V", "E"), "int8", "validation votes, LCZ ids 1..17, 0 = no vote (under a vote budget the k "
                                    "kept, the others 0): the calibration labels of the sets calibrated on the votes"),
    MC_PROBS: (("N", "K"), "float32", "mean of the MC-dropout passes' test probabilities"),
    MC_ENTROPY: (("N",), "float64", "predictive entropy of mc_probs, nats"),
    MC_MUTUAL_INFO: (("N",), "float64", "mutual information of the MC-dropout passes, nats"),
    VAL_MC_PROBS: (("V", "K"), "float32", "mean of the MC-dropout passes' validation probabilities"),
    MEAN_MEMBER_CONFIDENCE: (("N",), "float32", "ensemble: mean over members of each member's max p"),
    DISAGREEMENT: (("N",), "float32", "ensemble: the members' KL disagreement, nats"),
}


def val_target(kind: str) -> str:
    """Key of the validation array a temperature-scaling target ``kind`` (:mod:`lczldl.regimes`) is
    fitted against: val_labels for "onehot", val_distributions for "distribution", else
    ``val_<kind>`` (val_dawid_skene, val_agg_mace, ...)."""
    if kind == "onehot":
        return VAL_LABELS
    if kind == "distribution":
        return VAL_DISTRIBUTIONS
    return f"{VAL_PREFIX}{kind}"
