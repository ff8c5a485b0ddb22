"""Learnability check of the synthetic twin: one-hot CE vs distributional (KL) training.

Synthesises the twin (or reads a raw vote folder), builds labels with the project's rules, trains
Sen2LCZ-Net on the authors' train cities with the seed's optimiser (Nadam, lr 0.002 halved every
5 epochs, batch 64) for a fixed small budget, once on the one-hot majority (CE) and once on the vote
distribution (KL), same seed and same data order, and prints held-out (authors' held-out cities)
test-split overall accuracy (best epoch by validation loss, as the seed), ce_distr (Keras categorical CE to the vote distribution, probabilities clipped
to [1e-7, 1 - 1e-7]), ce_one_hot and ECE (20 equal bins on top-label confidence, bins (lo, hi] as
the seed's evaluation), plus accuracy per vote-entropy bin.

    python scripts/check_twin.py [--raw DIR] [--size small] [--epochs 10] [--lr-step 5] [--threads 2]
                                 [--seed 0]
                                 [--model sen2lcz|small]

Numbers depend on the machine's load only through time, not results (deterministic on CPU).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lczldl.constants import AUTHORS_HELDOUT_CITIES, AUTHORS_TRAIN_CITIES
from lczldl.data.labels import build_labels
from lczldl.data.readers.votes import find_city_files, open_city
from lczldl.distributions import ENTROPY_BIN_EDGES


def load(raw: Path, cities: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N,10,32,32) float32, majority index, distribution (N,10), vote entropy of ``cities``."""
    files = find_city_files(raw)
    xs, ys, ds, es = [], [], [], []
    for c in cities:
        cf = open_city(files[c])
        lab = build_labels(cf.votes, cf.original)
        px = cf.read_sen2(0, cf.n)[lab.keep].transpose(0, 3, 1, 2)
        xs.append(np.ascontiguousarray(px))
        ys.append(lab.label[lab.keep])
        ds.append(lab.distribution[lab.keep])
        es.append(lab.entropy[lab.keep])
    return (np.concatenate(xs), np.concatenate(ys), np.concatenate(ds).astype(np.float32),
            np.concatenate(es))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 20) -> float:
    """Top-label expected calibration error, equal-width bins right-closed (lo, hi]."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    idx = np.digitize(conf, np.linspace(0, 1, bins + 1), right=True)
    total = 0.0
    for b in range(1, bins + 1):
        m = idx == b
        if m.any():
            total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return total / len(labels)


def metrics(probs: np.ndarray, labels: np.ndarray, dist: np.ndarray, ent: np.ndarray) -> dict:
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    pred = probs.argmax(1)
    edges = np.asarray(ENTROPY_BIN_EDGES)
    b = np.clip(np.searchsorted(edges, ent, side="right") - 1, 0, len(edges) - 2)
    return {
        "oa": float((pred == labels).mean()),
        "ce_distr": float(-(dist * np.log(p)).sum(1).mean()),
        "ce_one_hot": float(-np.log(p[np.arange(len(labels)), labels]).mean()),
        "ece": ece(probs, labels),
        "mean_conf": float(probs.max(1).mean()),
        "acc_by_entropy_bin": [float((pred[b == k] == labels[b == k]).mean()) if (b == k).any()
                               else float("nan") for k in range(len(edges) - 1)],
    }


class SmallCNN(torch.nn.Module):
    """A ~10x cheaper stand-in for quick iterations: 3 conv blocks (16/32/64), GAP, linear.

    Returns log-probabilities like Sen2LCZ. Inputs are reflectance (no normalisation).
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        layers, cin = [], 10
        for cout in (16, 32, 64):
            layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.BatchNorm2d(cout),
                       torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
            cin = cout
        self.body = torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                        torch.nn.Dropout(0.2))
        self.head = torch.nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.head(self.body(x)), dim=1)


def make_model(seed: int, kind: str = "sen2lcz") -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "small":
        return SmallCNN(num_classes=10)
    from lczldl.models.sen2lcz import Sen2LCZ

    return Sen2LCZ(num_classes=10)


def train(x, y, d, regime: str, epochs: int, seed: int, batch: int = 64, lr: float = 0.002,
          kind: str = "sen2lcz", val: tuple | None = None, lr_step: int = 5):
    """Train on the regime's target; with ``val`` = (x, y, d) keep the weights of the epoch with the
    lowest validation loss against the same target (the seed's early-stopping rule)."""
    import copy

    model = make_model(seed, kind)
    best, best_loss = None, float("inf")
    opt = torch.optim.NAdam(model.parameters(), lr=lr)
    xt = torch.from_numpy(x)
    target = torch.from_numpy(d if regime == "dist" else np.eye(10, dtype=np.float32)[y])
    g = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 ** (epoch // lr_step)
        model.train()
        order = torch.randperm(len(x), generator=g)
        tot = 0.0
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            logp = model(xt[idx])
            loss = -(target[idx] * logp).sum(1).mean()     # CE to the target (= KL + const)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += float(loss.detach()) * len(idx)
        msg = f"  {regime} epoch {epoch + 1}/{epochs} train loss {tot / len(x):.4f}"
        if val is not None:
            pv = np.clip(predict(model, val[0]), 1e-7, 1.0)
            tv = val[2] if regime == "dist" else np.eye(10, dtype=np.float32)[val[1]]
            vloss = float(-(tv * np.log(pv)).sum(1).mean())
            msg += f" val loss {vloss:.4f}"
            if vloss < best_loss:
                best, best_loss = copy.deepcopy(model.state_dict()), vloss
                msg += " *"
        print(msg, flush=True)
    if best is not None:
        model.load_state_dict(best)
    return model


@torch.no_grad()
def predict(model, x: np.ndarray) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(x[i:i + 512])).exp() for i in range(0, len(x), 512)]
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=None, help="raw vote folder (default: synthesise)")
    ap.add_argument("--size", default="small")
    ap.add_argument("--twin-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr-step", type=int, default=5, help="halve the learning rate every N epochs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--regimes", default="onehot,dist")
    ap.add_argument("--model", default="sen2lcz", choices=["sen2lcz", "small"],
                    help="sen2lcz (the study's model) or small (a cheap CNN for quick iterations)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        raw = args.raw
        if raw is None:
            from lczldl.data.synth import synthesize

            raw = Path(tmp) / "twin"
            synthesize(raw, seed=args.twin_seed, size=args.size, progress=False)
        xtr, ytr, dtr, _ = load(raw, AUTHORS_TRAIN_CITIES)
        xte, yte, dte, ete = load(raw, AUTHORS_HELDOUT_CITIES)
    # the authors' rule: held-out pool split 50/50 at random into validation and test
    perm = np.random.default_rng(42).permutation(len(xte))
    v, t = perm[: len(perm) // 2], perm[len(perm) // 2:]
    val = (xte[v], yte[v], dte[v])
    xte, yte, dte, ete = xte[t], yte[t], dte[t], ete[t]
    print(f"train {len(xtr)} patches, validation {len(v)}, test {len(t)} (held-out cities)")
    rows = {}
    for regime in args.regimes.split(","):
        t0 = time.time()
        model = train(xtr, ytr, dtr, regime, args.epochs, args.seed, kind=args.model, val=val,
                      lr_step=args.lr_step)
        rows[regime] = metrics(predict(model, xte), yte, dte, ete)
        rows[regime]["train_oa"] = float((predict(model, xtr).argmax(1) == ytr).mean())
        rows[regime]["time_s"] = time.time() - t0
    print(f"\n{'regime':8s} {'oa':>6s} {'ce_distr':>9s} {'ce_1hot':>8s} {'ece':>6s} {'conf':>6s} "
          f"{'trainoa':>7s} {'time_s':>6s}  acc by vote-entropy bin")
    for regime, m in rows.items():
        accs = " ".join(f"{a:.2f}" for a in m["acc_by_entropy_bin"])
        print(f"{regime:8s} {m['oa']:6.3f} {m['ce_distr']:9.3f} {m['ce_one_hot']:8.3f} {m['ece']:6.3f} "
              f"{m['mean_conf']:6.3f} {m['train_oa']:7.3f} {m['time_s']:6.0f}  {accs}")


if __name__ == "__main__":
    main()
