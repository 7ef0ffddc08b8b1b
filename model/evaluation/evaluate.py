"""Evaluate an artifact on a data file: metrics.json, PNG plots and report.md in one folder.

Split: when the data's fingerprint equals the one recorded in the artifact, the cut points
saved at training time are reused, so the test window is exactly the one training never
saw. On other data the same fractions recorded in the artifact are applied to it afresh.
"""

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.evaluation.assessment import assess_head, score_heads
from model.evaluation.plots import write_plots
from model.evaluation.report import write_report
from model.serving.export import LoadedModel, load_model
from model.training.data import Dataset, build_dataset, choose_split, file_fingerprint, load_events
from model.training.splits import TimeSplit


def resolve_split(loaded: LoadedModel, dataset: Dataset, fingerprint: str) -> tuple[TimeSplit, str]:
    """The artifact's own split on its own data; its fractions re-applied on other data."""
    metrics = loaded.meta.metrics
    if "split" in metrics and fingerprint == loaded.meta.data_fingerprint:
        return TimeSplit.from_dict(metrics["split"]), "cut points recorded in the model artifact"
    fractions = metrics.get("split_fractions", {"validation": 0.2, "test": 0.2})
    split = choose_split(
        dataset, val_fraction=fractions["validation"], test_fraction=fractions["test"]
    )
    return split, "re-derived on this data from the fractions recorded in the model artifact"


def evaluate_dataset(
    loaded: LoadedModel,
    dataset: Dataset,
    split: TimeSplit,
    report_dir: Path,
    *,
    bootstrap: int = 200,
    seed: int = 0,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Score, assess, plot and write the report; returns what metrics.json holds."""
    started = time.perf_counter()
    report_dir.mkdir(parents=True, exist_ok=True)
    heads = score_heads(loaded, dataset, split, seed)
    results: dict[str, Any] = {
        **(context or {}),
        "model_version": loaded.meta.model_version,
        "trained_horizon_ms": loaded.meta.horizon_ms,
        "horizon_ms": dataset.horizon_ms,
        "horizon_minutes": dataset.horizon_ms / 60_000,
        "split": split.to_dict(),
        "data_end_ms": dataset.data_end_ms,
        "events": dataset.n_events,
        "users": len(dataset.users),
        "references": list(dataset.reference_names),
        "bootstrap": {"replicates": bootstrap, "unit": "user", "level": 0.95, "seed": seed},
        "heads": {},
        "plots": {},
    }
    for scores in heads:
        results["heads"][scores.head] = assess_head(scores, bootstrap=bootstrap, seed=seed)
        results["plots"][scores.head] = write_plots(scores, report_dir)
    results["seconds"] = round(time.perf_counter() - started, 2)
    text = json.dumps(_plain(results), indent=2, allow_nan=False)
    (report_dir / "metrics.json").write_text(text, encoding="utf-8")
    write_report(results, report_dir / "report.md")
    return results


def _plain(value: Any) -> Any:
    """JSON-ready copy: tuples as lists, numpy scalars as Python, NaN and inf as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | bool | int) or value is None:
        return value
    if isinstance(value, np.integer):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def evaluate(
    model_path: Path,
    data_path: Path,
    report_dir: Path,
    *,
    horizon_minutes: float | None = None,
    bootstrap: int = 200,
    seed: int = 0,
    threads: int = 2,
) -> dict[str, Any]:
    """Load the artifact and a contract-event JSONL file, and write the report folder."""
    torch.set_num_threads(threads)
    loaded = load_model(model_path)
    horizon_ms = (
        loaded.meta.horizon_ms if horizon_minutes is None else int(horizon_minutes * 60_000)
    )
    events, references = load_events(data_path)
    dataset = build_dataset(events, horizon_ms=horizon_ms, references=references)
    fingerprint = file_fingerprint(data_path)
    split, how = resolve_split(loaded, dataset, fingerprint)
    context = {
        "data": {"path": str(data_path), "fingerprint": fingerprint},
        "model_path": str(model_path),
        "split_source": how,
    }
    return evaluate_dataset(
        loaded, dataset, split, report_dir, bootstrap=bootstrap, seed=seed, context=context
    )


def evaluate_simulated(
    model_path: Path, report_dir: Path, *, bootstrap: int = 200, seed: int = 0, threads: int = 2
) -> dict[str, Any]:
    """Evaluate a model trained by ``train_simulated`` on the same simulated shoppers it
    recorded, using the split saved in it; the report shows the oracle beside the model."""
    from model.training.simulated_data import dataset_from_settings

    torch.set_num_threads(threads)
    loaded = load_model(model_path)
    source = loaded.meta.metrics.get("source", {})
    if source.get("kind") != "simulated":
        raise ValueError(f"{model_path} was not trained on simulated data: pass --data")
    dataset = dataset_from_settings(source["simulation"])
    split = TimeSplit.from_dict(loaded.meta.metrics["split"])
    context = {
        "data": {
            "path": "simulated",
            "simulation": source["simulation"],
            "fingerprint": loaded.meta.data_fingerprint,
        },
        "model_path": str(model_path),
        "split_source": "cut points recorded in the model artifact",
    }
    return evaluate_dataset(
        loaded, dataset, split, report_dir, bootstrap=bootstrap, seed=seed, context=context
    )
