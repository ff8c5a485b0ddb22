"""Splits: the authors' split against a literal re-statement of their script, the stratified random
split, user city lists, and the errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lczldl.constants import ALL_CITIES, AUTHORS_HELDOUT_CITIES, AUTHORS_TRAIN_CITIES
from lczldl.data.splits import make_split
from lczldl.errors import DataError


def labels_for(sizes: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {c: rng.integers(0, 10, n) for c, n in sizes.items()}


def as_sets(split) -> dict[str, set[tuple[str, int]]]:
    return {s: {(c, int(i)) for c, rows in parts for i in rows} for s, parts in split.items()}


def check_partition(split, city_labels):
    sets = as_sets(split)
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
    everything = {(c, i) for c, v in city_labels.items() for i in range(len(v))}
    assert sets["train"] | sets["val"] | sets["test"] == everything
    for parts in split.values():
        for _, rows in parts:
            assert (np.diff(rows) > 0).all()


def test_authors_split_cities_and_halves():
    sizes = {c: 5 + i for i, c in enumerate(ALL_CITIES)}
    cl = labels_for(sizes)
    sp = make_split("authors", cl)
    check_partition(sp, cl)
    assert [c for c, _ in sp["train"]] == list(AUTHORS_TRAIN_CITIES)
    assert all(len(r) == sizes[c] for c, r in sp["train"])
    held = {c for c, _ in sp["val"]} | {c for c, _ in sp["test"]}
    assert held == set(AUTHORS_HELDOUT_CITIES)
    n_pool = sum(sizes[c] for c in AUTHORS_HELDOUT_CITIES)
    assert sum(len(r) for _, r in sp["val"]) == math.ceil(0.5 * n_pool)


def authors_script(pool_sizes: list[int], keep: list[np.ndarray]) -> tuple[set, set]:
    """The authors' lines, re-stated: seed 42, choice without replacement over ALL pool rows,
    test = set difference; then the urban filter. Returns (val, test) as {(city_pos, kept_row)}."""
    total = sum(pool_sizes)
    np.random.seed(42)
    indices_val = np.random.choice(np.arange(total), math.ceil(0.5 * total), False)
    indices_test = list(set(np.arange(total)) - set(indices_val))
    owner = np.repeat(np.arange(len(pool_sizes)), pool_sizes)
    file_row = np.concatenate([np.arange(n) for n in pool_sizes])
    kept_index = [np.cumsum(k) - 1 for k in keep]
    out = []
    for idx in (indices_val, indices_test):
        out.append({(int(owner[i]), int(kept_index[owner[i]][file_row[i]]))
                    for i in idx if keep[owner[i]][file_row[i]]})
    return out[0], out[1]


def test_authors_split_reproduces_their_draw_with_keep_masks():
    rng = np.random.default_rng(7)
    sizes = {c: int(rng.integers(20, 60)) for c in ALL_CITIES}
    keep = {c: rng.random(n) < 0.7 for c, n in sizes.items()}
    cl = {c: rng.integers(0, 10, int(k.sum())) for c, k in keep.items()}
    sp = make_split("authors", cl, city_keep=keep)
    check_partition(sp, cl)
    val, test = authors_script([sizes[c] for c in AUTHORS_HELDOUT_CITIES],
                               [keep[c] for c in AUTHORS_HELDOUT_CITIES])
    pos = {c: i for i, c in enumerate(AUTHORS_HELDOUT_CITIES)}
    got = as_sets(sp)
    assert {(pos[c], i) for c, i in got["val"]} == val
    assert {(pos[c], i) for c, i in got["test"]} == test
    # without the masks the draw is over the kept rows only: a different split
    other = as_sets(make_split("authors", cl))
    assert other["val"] != got["val"]


def test_authors_split_skips_missing_cities_but_needs_every_split():
    cl = labels_for({"berlin": 10, "madrid": 10, "mumbai": 3})
    sp = make_split("authors", cl)
    assert [c for c, _ in sp["train"]] == ["berlin"]
    with pytest.raises(DataError, match="the val split of kind 'authors' is empty"):
        make_split("authors", labels_for({"berlin": 10}))


def test_authors_keep_mask_must_match():
    cl = labels_for({"berlin": 4, "madrid": 4})
    with pytest.raises(DataError, match="city 'madrid': keep mask has 3 kept rows"):
        make_split("authors", cl, city_keep={"madrid": np.array([1, 1, 1, 0, 0], bool)})


def test_random_split_is_stratified_and_seeded():
    rng = np.random.default_rng(0)
    cl = {c: rng.choice(10, 300, p=[.3, .2, .1, .1, .1, .05, .05, .05, .04, .01]) for c in ALL_CITIES[:4]}
    sp = make_split("random", cl, seed=3)
    check_partition(sp, cl)
    allv = np.concatenate(list(cl.values()))
    for s, frac in zip(("train", "val", "test"), (0.7, 0.15, 0.15), strict=True):
        lab = np.concatenate([cl[c][r] for c, r in sp[s]])
        for k in range(10):
            assert abs((lab == k).sum() - frac * (allv == k).sum()) <= 1.0 + 1e-9
    assert as_sets(make_split("random", cl, seed=3)) == as_sets(sp)
    assert as_sets(make_split("random", cl, seed=4))["val"] != as_sets(sp)["val"]


def test_random_split_bad_fractions():
    with pytest.raises(DataError, match="fractions"):
        make_split("random", labels_for({"berlin": 50}), fractions=(0.5, 0.2, 0.2))


def test_city_lists():
    cl = labels_for({"berlin": 5, "paris": 6, "rome": 7, "mumbai": 2})
    sp = make_split("cities", cl, train_cities=["berlin", "mumbai"], val_cities=["paris"], test_cities=["rome"])
    assert [c for c, _ in sp["train"]] == ["berlin", "mumbai"]
    assert [(c, len(r)) for c, r in sp["test"]] == [("rome", 7)]


@pytest.mark.parametrize("lists, match", [
    ((["berlin"], ["paris"], ["atlantis"]), "unknown city 'atlantis' in the test split"),
    ((["berlin"], ["paris", "berlin"], ["rome"]), "city 'berlin' is in both the train and the val split"),
    ((["berlin"], ["paris"], ["zurich"]), "city 'zurich' of the test split has no vote file"),
    ((["berlin"], None, ["rome"]), "^split=cities needs val_cities "),
])
def test_city_list_errors(lists, match):
    cl = labels_for({"berlin": 5, "paris": 6, "rome": 7})
    with pytest.raises(DataError, match=match):
        make_split("cities", cl, train_cities=lists[0], val_cities=lists[1], test_cities=lists[2])


def test_unknown_kind_and_unknown_input_city():
    with pytest.raises(DataError, match="unknown split kind 'bogus'"):
        make_split("bogus", labels_for({"berlin": 5}))
    with pytest.raises(DataError, match="unknown city 'gotham'"):
        make_split("random", labels_for({"gotham": 5}))
