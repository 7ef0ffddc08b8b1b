"""The evaluation report as Markdown, written from the results that metrics.json holds."""

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from model.evaluation.assessment import ALL_NEGATIVE, CNN_LSTM
from model.evaluation.baselines import LIGHTGBM, LOGISTIC
from model.training.data import CEILING, ORACLE

LABELS: Final = {
    CNN_LSTM: "CNN+LSTM",
    LOGISTIC: "logistic regression",
    LIGHTGBM: "LightGBM",
    ALL_NEGATIVE: "all-negative",
    ORACLE: "oracle (true P, hidden state)",
    CEILING: "ceiling (Bayes P from the events)",
}
COLUMNS: Final = (
    ("roc_auc", "ROC-AUC"),
    ("pr_auc", "PR-AUC"),
    ("log_loss", "log loss"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("lift_top_1pct", "lift@1%"),
    ("lift_top_5pct", "lift@5%"),
    ("lift_top_10pct", "lift@10%"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("positive_rate", "actual positive rate"),
)
CI_COLUMNS: Final = {"roc_auc", "pr_auc"}


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _with_ci(result: dict[str, Any], key: str) -> str:
    low, high = result["ci"][key]
    return f"{_num(result['test'][key])} [{_num(low)}, {_num(high)}]"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(models: dict[str, Any], with_threshold: bool = True) -> list[str]:
    head = ["model", *(title for _, title in COLUMNS)] + (["threshold"] if with_threshold else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, result in models.items():
        cells = [LABELS.get(name, name)]
        for key, _ in COLUMNS:
            cells.append(_with_ci(result, key) if key in CI_COLUMNS else _num(result["test"][key]))
        if with_threshold:
            cells.append(
                "never flags"
                if not math.isfinite(result["threshold"])
                else _num(result["threshold"], 4)
            )
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _difference(head: dict[str, Any], other: str, one: str = CNN_LSTM) -> str:
    gap = head["differences"][f"{one} - {other}"]
    low, high = gap["ci"]
    return f"{gap['roc_auc']:+.3f} (95% CI {low:+.3f} to {high:+.3f})"


def verdict(head: dict[str, Any]) -> list[str]:
    """Plain sentences: who wins on test ROC-AUC, by how much, and whether the CI excludes 0."""
    models = head["models"]
    auc = {n: models[n]["test"]["roc_auc"] for n in (CNN_LSTM, LOGISTIC, LIGHTGBM)}
    if not all(math.isfinite(a) for a in auc.values()):
        return ["The test window lacks one of the classes: ROC-AUC is undefined, no verdict."]
    best_baseline = max((LOGISTIC, LIGHTGBM), key=lambda n: auc[n])
    diff = head["differences"][f"{CNN_LSTM} - {best_baseline}"]
    low, high = diff["ci"]
    if low > 0:
        outcome = "**CNN+LSTM wins**"
    elif high < 0:
        outcome = f"**{LABELS[best_baseline]} wins**"
    else:
        leader = "CNN+LSTM" if diff["roc_auc"] >= 0 else LABELS[best_baseline]
        outcome = f"**no clear winner** ({leader} ahead, but the 95% CI of the difference spans 0)"
    lines = [
        f"- {outcome}: test ROC-AUC CNN+LSTM {_with_ci(models[CNN_LSTM], 'roc_auc')} vs the better "
        f"baseline, {LABELS[best_baseline]}, {_with_ci(models[best_baseline], 'roc_auc')}.",
        f"- Difference CNN+LSTM − {LABELS[best_baseline]}: {diff['roc_auc']:+.3f} "
        f"(95% CI {low:+.3f} to {high:+.3f}, paired by-user bootstrap).",
    ]
    above_chance = [
        n for n in (CNN_LSTM, LOGISTIC, LIGHTGBM) if models[n]["ci"]["roc_auc"][0] > 0.5
    ]
    if not above_chance:
        lines.append(
            "- **No model is distinguishable from chance**: every 95% CI of ROC-AUC includes 0.5 "
            "(the all-negative baseline's AUC)."
        )
    if ORACLE in models:
        lines.append(
            "- Oracle (the simulator's true probability, which knows the hidden shopper state) "
            f"ROC-AUC {_with_ci(models[ORACLE], 'roc_auc')}; CNN+LSTM − oracle "
            f"{_difference(head, ORACLE)}."
        )
    if CEILING in models:
        lines.append(
            "- Ceiling (the exact Bayes probability from the shopper's visible events alone: no "
            f"model of the events can rank better in expectation) ROC-AUC "
            f"{_with_ci(models[CEILING], 'roc_auc')}; CNN+LSTM − ceiling "
            f"{_difference(head, CEILING)}."
        )
    if CEILING in models and ORACLE in models:
        lines.append(
            "- Ceiling − oracle (what the events cannot show: no model of them closes this) "
            f"{_difference(head, ORACLE, CEILING)}."
        )
    return lines


def _buckets(head: dict[str, Any]) -> list[str]:
    lines = []
    for family, buckets in head["buckets"].items():
        lines += [
            "",
            f"### By {family.replace('_', ' ')}",
            "",
            "Every figure of the main table, per bucket, is in metrics.json; the main ones here.",
            "",
        ]
        lines += [
            "| bucket | events | positives | model | ROC-AUC [95% CI] | PR-AUC [95% CI] "
            "| log loss | Brier | ECE | lift@10% | F1 |",
            "|" + "---|" * 11,
        ]
        for bucket, entry in buckets.items():
            for name, result in entry["models"].items():
                t = result["test"]
                cells = [
                    bucket,
                    str(entry["events"]),
                    str(entry["positives"]),
                    LABELS.get(name, name),
                    _with_ci(result, "roc_auc"),
                    _with_ci(result, "pr_auc"),
                    *(_num(t[k]) for k in ("log_loss", "brier", "ece", "lift_top_10pct", "f1")),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(results: dict[str, Any], path: Path) -> None:
    """report.md beside metrics.json and the PNGs."""
    split = results["split"]
    minutes = results["horizon_minutes"]
    trained_minutes = results["trained_horizon_ms"] / 60_000
    where = results.get("data", {}).get("path", "in-memory data")
    lines = [
        "# Purchase-propensity evaluation",
        "",
        f"- Model `{results['model_version']}` (trained for a {trained_minutes:g}-minute horizon), "
        f"evaluated on `{where}` ({results['events']} events, {results['users']} users).",
        f"- **Horizon: {minutes:g} minutes.** `purchase` = the same user buys within "
        f"{minutes:g} min after the event (a later purchase event); `cart_abandon` (only where "
        f"the cart is non-empty after the event) = no purchase within {minutes:g} min. Events "
        f"whose horizon passes the end of the data ({_when(results['data_end_ms'])}) are "
        "excluded, not counted as negatives.",
        f"- **Split by event time** ({results.get('split_source', split.get('how', ''))}): "
        f"train < {_when(split['val_start_ms'])} ≤ validation < {_when(split['test_start_ms'])} "
        "≤ test. "
        "Users' earlier events are context; each event is scored in the window of its own time. "
        "Purged: train and validation events whose horizon reaches into the next window are "
        "left out, so no label is decided by events of a later window.",
        f"- Confidence intervals: {results['bootstrap']['replicates']} bootstrap replicates "
        "resampling users (all of a user's test events together), 95% percentile intervals.",
    ]
    for head_name, head in results["heads"].items():
        title = "Purchase within the horizon" if head_name == "purchase" else "Cart abandonment"
        lines += [
            "",
            f"## {title} — test window",
            "",
            f"{head['test_events']} labelled test events from {head['test_users']} users, "
            f"{head['test_positives']} positive; {head['validation_events']} validation events.",
            "",
            *verdict(head),
            "",
            *_table(head["models"]),
            "",
        ]
        for chart, file in results["plots"].get(head_name, {}).items():
            lines.append(f"![{chart} {head_name}]({file})")
        lines += _buckets(head)
    lines += ["", "## How the figures were made", "", *_method_notes()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _method_notes() -> list[str]:
    return [
        "- CNN+LSTM: the exported TorchScript artifact, calibrated probabilities (Platt scaling "
        "fitted on the validation window at training time), run over each user's whole sequence "
        "from its first event — what the stream computes one event at a time.",
        "- Baselines are trained inside this evaluation on the train window of the same split with "
        "the same labels, on handcrafted features computed from each event and earlier ones only "
        "(counts by type over 1 h / 24 h / all history, recency, cart contents and value from the "
        "shared encoder state, repeated item views, price statistics, hour of day, and the "
        "event's category: same as the previous event, its events over 1 h / 24 h / all history "
        "and share of history, distinct categories, its events in the session, the session's "
        "dominant-category share). Logistic "
        "regression: standardised features, L2 (C=1). LightGBM: 15 leaves, learning rate 0.05, "
        "early stopping on validation ROC-AUC. Their probabilities are not recalibrated.",
        "- All-negative: predicts the train window's positive rate for every event, never flags.",
        "- Threshold for precision / recall / F1: the one maximising F1 on the validation window, "
        "per model (shown in the table); never tuned on test.",
        "- ECE: 10 equal-width probability bins. Lift@k%: positive rate among the top k% of events "
        "by score over the overall positive rate. All other metrics are scikit-learn's.",
    ]
