"""Noise of the live-quality figures on a window of n outcomes of a calibrated, undrifted model.

Scores logit(p) ~ Normal(mu, 1.2), mu set so the mean score is the base rate; labels
y ~ Bernoulli(p): no drift, no miscalibration. Prints, over 500 windows per case, the true AUC
(from 10^6 draws), the 1st percentile of the window AUC, the share of windows with AUC below
true - 0.05, and the 99th percentiles of |mean p - mean y| and of ECE
(model/evaluation/measures.py). Run: ``python -m model.monitoring.alert_noise`` (about 15 s);
the guards and margins of the alert rules (deploy/prometheus/alerts.yml) come from its figures.
"""

import numpy as np
from sklearn.metrics import roc_auc_score

from model.evaluation.measures import expected_calibration_error

WINDOWS = 500
SIZES = {0.05: (1000, 2000, 4000, 10000), 0.3: (667, 1000, 2000, 5000, 10000)}
LOGIT_MEAN = {0.05: -3.55, 0.3: -1.0}
rng = np.random.default_rng(7)


def draw(mu: float, n: int) -> np.ndarray:
    return 1 / (1 + np.exp(-(mu + 1.2 * rng.standard_normal(n))))


def main() -> None:
    print("rate  n      pos   true_auc  auc_p1   P(auc<true-0.05)  gap_p99  ece_p99")
    for rate, mu in LOGIT_MEAN.items():
        p = draw(mu, 1_000_000)
        y = rng.random(p.size) < p
        print(f"mean score {p.mean():.3f}")
        true_auc = roc_auc_score(y, p)
        for n in SIZES[rate]:
            aucs, gaps, eces = [], [], []
            for _ in range(WINDOWS):
                p = draw(mu, n)
                y = (rng.random(n) < p).astype(float)
                aucs.append(roc_auc_score(y, p))
                gaps.append(abs(p.mean() - y.mean()))
                eces.append(expected_calibration_error(y, p))
            auc = np.array(aucs)
            print(
                f"{rate:<5} {n:<6} {round(rate * n):<5} {true_auc:.3f}     "
                f"{np.percentile(auc, 1):.3f}    {np.mean(auc < true_auc - 0.05):<17.3f} "
                f"{np.percentile(gaps, 99):.4f}   {np.percentile(eces, 99):.4f}"
            )


if __name__ == "__main__":
    main()
