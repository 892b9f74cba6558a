"""The tuned YAML fragment (`tuned/<study>.yaml`) a suite reads with `settings_from:`, and the
tuned-vs-fixed table built from it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from llsbench.errors import ConfigError
from llsbench.tuning.spaces import TUNABLE_SETTINGS
from llsbench.yamlfile import read_yaml

SELECTION = ("validation accuracy after the last epoch, on a split of the training set carved once "
             "(fixed seed); the test set is sealed while tuning")
EVALUATION = ("the chosen configuration and the fixed recipe, each retrained from scratch on the full training "
              "set (validation split folded back in) with the same epochs, batch cap and seed, then evaluated "
              "on the test set once: test accuracy at the final epoch")


def rule_entry(params: dict[str, Any], base_options: dict[str, Any], *, budget: dict[str, int], best_val: float,
               best_number: int, counts: dict[str, int], tuned: dict, fixed: dict | None,
               space: dict) -> dict[str, Any]:
    settings = {k: _plain(v) for k, v in params.items() if k in TUNABLE_SETTINGS}
    options = {k: _plain(v) for k, v in params.items() if k not in TUNABLE_SETTINGS}
    return {"settings": settings, "method_options": options, "budget": budget, "val_acc": round(best_val, 4),
            "best_trial": best_number, "trials": counts, "space": space,
            "test_acc": _round(tuned.get("test_acc")), "test_run_id": tuned.get("run_id"),
            "fixed_test_acc": _round(fixed.get("test_acc")) if fixed else None,
            "fixed_run_id": fixed.get("run_id") if fixed else None,
            "fixed_recipe": {"method_options": {k: _plain(v) for k, v in base_options.items()}}}


def fragment(study: str, header: dict[str, Any], rules: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"study": study, **header, "selection": SELECTION, "evaluation": EVALUATION, "methods": rules}


def write_fragment(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Write `data`; rules tuned under the same study by an earlier command are kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        earlier = read_fragment(path)
        if earlier.get("study") == data["study"]:
            data = {**data, "methods": {**earlier["methods"], **data["methods"]}}
    comment = (f"# Tuned settings of study {data['study']!r}, written by `llsbench tune`.\n"
               f"# Use in a suite with `settings_from: {path}` (per method: settings + method_options).\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(comment + yaml.safe_dump(data, sort_keys=False, width=110))
    tmp.replace(path)
    return data


def read_fragment(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    data = read_yaml(path, "tuned settings", ConfigError)
    if not isinstance(data, dict) or not isinstance(data.get("methods"), dict):
        raise ConfigError(f"tuned settings {path}: needs a `methods:` mapping (written by `llsbench tune`)")
    return data


def tuned_table(data: dict[str, Any]) -> pd.DataFrame:
    budget = data["budget"]
    rows = []
    for rule, entry in data["methods"].items():
        chosen = {**entry["settings"], **entry["method_options"]}
        tuned, fixed = entry.get("test_acc"), entry.get("fixed_test_acc")
        rows.append({"method": rule, "budget": _budget_text(entry.get("budget", budget)),
                     "chosen": ", ".join(f"{k}={_short(v)}" for k, v in chosen.items()),
                     "val_acc": entry["val_acc"], "tuned_test_acc": tuned, "fixed_test_acc": fixed,
                     "delta": None if tuned is None or fixed is None else round(tuned - fixed, 2),
                     "trials_done": ", ".join(f"{v} {k}" for k, v in entry["trials"].items())})
    return pd.DataFrame(rows)


def tuned_markdown(data: dict[str, Any], command: str = "") -> str:
    table = tuned_table(data)
    text = table.copy()
    for column in ("val_acc", "tuned_test_acc", "fixed_test_acc", "delta"):
        text[column] = text[column].map(lambda v: "—" if v is None or pd.isna(v) else f"{v:+.2f}" if column == "delta"
                                        else f"{v:.2f}")
    text = text.rename(columns={"chosen": "chosen hyperparameters", "val_acc": "val acc (%)",
                                "tuned_test_acc": "tuned: test acc (%)", "fixed_test_acc": "fixed recipe: test acc (%)",
                                "delta": "Δ tuned − fixed", "trials_done": "trials"})
    b, env = data["budget"], data.get("environment", {})
    lines = [f"# Tuned on equal terms: study `{data['study']}`", "",
             f"- **Model / dataset**: {data['model']} / {data['dataset']}",
             f"- **Budget per rule**: {_budget_text(b)}"
             + (f", at most {b['limit_train_batches']} training batches per epoch" if b.get("limit_train_batches")
                else "") + f"; TPE sampler (seed {b['sampler_seed']}, first {b['startup_trials']} trials random), "
             f"median pruner on per-epoch validation accuracy",
             f"- **Validation split**: {b['val_fraction']:g} of the training set, split seed {b['val_seed']} "
             f"({b['n_val']} samples)",
             f"- **Chosen by**: {data['selection']}",
             f"- **Test accuracy**: {data['evaluation']}",
             f"- **Fixed recipe**: {data.get('fixed_recipe', '')}",
             f"- **Produced by**: `{data.get('command', '')}`" + (f"; report: `{command}`" if command else ""),
             f"- **Code**: git commit {env.get('git_commit', 'unknown')} (dirty: {env.get('git_dirty', 'unknown')})",
             f"- **Environment**: {env.get('device_name', '')} ({env.get('device', '')}); Python "
             f"{env.get('python', '')}; torch {env.get('version.torch', '')}; optuna {env.get('version.optuna', '')}; "
             f"{env.get('platform', '')}", "",
             text.to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(lines) + "\n"


def _budget_text(budget: dict[str, int]) -> str:
    trials, epochs = budget["trials"], budget["epochs"]
    return f"{trials} trial{'s' * (trials != 1)} × {epochs} epoch{'s' * (epochs != 1)}"


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, float) else value


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
