#!/usr/bin/env python3
"""scikit-learn's MLP on the small sets nabla's example configs train, for comparable figures.

Same splits as nabla's configs would make are not reproducible across libraries, so each set is
split 75/25 (stratified for classes) with 5 seeds and the mean test score reported; features
standardised on the training part. Run with the peers' venv:

    ~/.cache/nabla-peers/venv/bin/python scripts/sklearn_reference.py ../shared/data
"""
import statistics
import sys
import time

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler


def load(path, target):
    with open(path) as fh:
        header = fh.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    t = header.index(target)
    y = data[:, t]
    x = np.delete(data, t, axis=1)
    return x, y


def run(name, path, target, hidden, classify, max_iter=500, lr=1e-3):
    x, y = load(path, target)
    scores = []
    t0 = time.time()
    for seed in range(5):
        strat = y if classify else None
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=strat)
        sc = StandardScaler().fit(xtr)
        xtr, xte = sc.transform(xtr), sc.transform(xte)
        if classify:
            m = MLPClassifier(hidden_layer_sizes=hidden, max_iter=max_iter, learning_rate_init=lr, random_state=seed)
        else:
            m = MLPRegressor(hidden_layer_sizes=hidden, max_iter=max_iter, learning_rate_init=lr, random_state=seed)
        import warnings
        warnings.filterwarnings("ignore")
        m.fit(xtr, ytr.astype(int) if classify else ytr)
        scores.append(m.score(xte, yte.astype(int) if classify else yte))
    metric = "accuracy" if classify else "R²"
    print(f"{name:9s} hidden {hidden}: test {metric} mean {statistics.mean(scores):.4f} "
          f"(min {min(scores):.4f}, max {max(scores):.4f}) over 5 splits, {time.time() - t0:.1f} s")


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
    run("iris", f"{d}/sklearn/iris.csv", "label", (16,), True, lr=1e-2)
    run("digits", f"{d}/sklearn/digits.csv", "label", (128,), True)
    run("diabetes", f"{d}/sklearn/diabetes.csv", "target", (32,), False, max_iter=2000, lr=1e-2)


if __name__ == "__main__":
    main()
