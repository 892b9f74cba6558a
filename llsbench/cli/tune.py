"""`llsbench tune`: the same trial and epoch budget for every rule, chosen on a validation
split, with Optuna; the best configuration written as a YAML fragment a suite can use."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click
import optuna

from llsbench import tracking
from llsbench.cli.common import UserError, comma_list
from llsbench.cli.run import data_options
from llsbench.cli.suite import _command_line
from llsbench.config import RunConfig, resolve_device
from llsbench.data import DATASETS
from llsbench.method_registry import METHODS
from llsbench.models import MODELS
from llsbench.optim import OPTIMIZERS
from llsbench.suites import shipped_suites
from llsbench.tracking import DEFAULT_EXPERIMENT
from llsbench.tuning.objective import TuningJob
from llsbench.tuning.output import fragment, tuned_markdown, write_fragment
from llsbench.tuning.run import close_parent, open_parent, tune
from llsbench.tuning.spaces import read_space_file, rule_space
from llsbench.tuning.study import absolute_sqlite, default_storage, prepare_study, startup_trials

DEFAULT_OUTPUT = "tuned"


@click.command("tune")
@click.option("--methods", required=True, help="Rules to tune, comma separated (see `llsbench list methods`).")
@click.option("--model", default="smallconv", show_default=True)
@click.option("--dataset", default="digits", show_default=True)
@click.option("--trials", type=click.IntRange(min=1), default=20, show_default=True, help="Trials per rule.")
@click.option("--epochs", type=click.IntRange(min=1), default=5, show_default=True, help="Epochs per trial.")
@click.option("--space", "space_file", help="YAML file overriding search spaces, or a suite (file or shipped name) "
              "with a search_space section.")
@click.option("--study-name", help="Name of the study (default: MODEL-DATASET); the same name resumes it.")
@click.option("--storage", help="Optuna RDB storage URL (default: sqlite:///OUTPUT_DIR/STUDY.db).")
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="Share of the training set held out for validation.")
@click.option("--val-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the validation split (fixed for every trial and rule).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Training seed of every trial, and the TPE sampler's seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adamw-sf", show_default=True)
@click.option("--limit-train-batches", type=click.IntRange(min=1), help="Cap on training batches per epoch.")
@click.option("--limit-val-batches", type=click.IntRange(min=1), help="Cap on validation batches per evaluation.")
@click.option("--train-subset", type=click.IntRange(min=1), help="Use only N training samples.")
@click.option("--bn-batches", type=click.IntRange(min=0), default=50, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=1), help="Run trials on N Ray workers (local cluster).")
@click.option("--ray-address", help="Run trials on the Ray cluster at this address.")
@click.option("--no-test", is_flag=True, help="Skip testing the chosen and fixed configurations after tuning.")
@click.option("--output-dir", default=DEFAULT_OUTPUT, show_default=True, type=click.Path(file_okay=False),
              help="Where STUDY.yaml (and the default storage STUDY.db) go.")
@data_options
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment.")
@click.option("--no-track", is_flag=True, help="Do not record trials in MLflow.")
def tune_cmd(methods, model, dataset, trials, epochs, space_file, study_name, storage, val_fraction, val_seed, seed,
             limit_val_batches, workers, ray_address, no_test, output_dir, tracking_uri, experiment, no_track,
             **settings) -> None:
    """Tune every rule in --methods with the same budget (--trials × --epochs) on a validation
    split of the training set; write the chosen settings to OUTPUT_DIR/STUDY.yaml."""
    rules = _rules(methods)
    MODELS.get(model), DATASETS.get(dataset)
    if workers and ray_address:
        raise UserError("give --workers (a local Ray cluster) or --ray-address (an existing one), not both")
    study = study_name or f"{model}-{dataset}"
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage = absolute_sqlite(storage or default_storage(out, study))
    overrides = read_space_file(_space_path(space_file), rules) if space_file else {}
    spaces = {r: rule_space(r, METHODS.get(r).search_space, METHODS.get(r).options, overrides.get(r),
                            where=f"space file {space_file}" if space_file else "") for r in rules}
    bases = {r: RunConfig(method=r, model=model, dataset=dataset, epochs=epochs, seed=seed,
                          limit_test_batches=limit_val_batches, **settings).validate() for r in rules}
    command = _command_line(click.get_current_context())
    env = {**tracking.environment_tags(resolve_device(settings["device"])), "version.optuna": optuna.__version__}
    jobs = [TuningJob(study=study, base=bases[r], space=spaces[r], trials=trials, storage=storage,
                      val_fraction=val_fraction, val_seed=val_seed, sampler_seed=seed, experiment=experiment)
            for r in rules]
    for job in jobs:
        prepare_study(job)  # a changed protocol is refused before anything is recorded
    uri = parent = None
    if not no_track:
        tracking.client(tracking_uri)
        uri = absolute_sqlite(tracking.mlflow.get_tracking_uri())  # Ray workers may start elsewhere
        parent = open_parent(study, experiment, uri, {**env, "command": command, "storage": storage,
                                                       "budget": f"{trials} trials x {epochs} epochs"})
    jobs = [replace(job, tracking_uri=uri, parent_run_id=parent) for job in jobs]
    click.echo(f"study {study}: {', '.join(rules)} on {model}/{dataset}, {trials} trial(s) × {epochs} epoch(s) each; "
               f"storage {storage}")
    try:
        results = tune(jobs, workers=workers, ray_address=ray_address, test=not no_test, echo=click.echo)
    except BaseException:
        if parent:
            tracking.client(uri).set_terminated(parent, "KILLED")
        raise
    header = {"model": model, "dataset": dataset, "command": command, "storage": storage, "mlflow_parent_run": parent,
              "budget": {"trials": trials, "epochs": epochs, "limit_train_batches": settings["limit_train_batches"],
                         "limit_val_batches": limit_val_batches, "train_subset": settings["train_subset"],
                         "batch_size": settings["batch_size"], "optimizer": settings["optimizer"], "seed": seed,
                         "sampler_seed": seed, "startup_trials": startup_trials(trials), "val_fraction": val_fraction,
                         "val_seed": val_seed,
                         "n_val": [entry.pop("n_val") for entry in results.values()][0]},
              "fixed_recipe": f"{settings['optimizer']} lr {bases[rules[0]].lr:g}, weight decay "
                              f"{bases[rules[0]].weight_decay:g}, each rule's default options",
              "environment": {k: env[k] for k in sorted(env)}}
    path = out / f"{study}.yaml"
    data = write_fragment(path, fragment(study, header, results))
    if parent:
        close_parent(parent, uri, results, tuned_markdown(data))
    click.echo("\n" + tuned_markdown(data).split("\n\n", 2)[-1])
    click.echo(f"wrote {path}; use it in a suite with `settings_from: {path}`; report: llsbench report --tuned {path}")


def _rules(methods: str) -> list[str]:
    rules = comma_list(methods) or []
    if not rules:
        raise UserError("--methods names no rule; e.g. --methods bp,lls")
    for rule in rules:
        METHODS.get(rule)
    if len(set(rules)) != len(rules):
        raise UserError(f"--methods repeats a rule: {methods}")
    return rules


def _space_path(value: str) -> Path:
    shipped = shipped_suites()
    return shipped[value] if not Path(value).exists() and value in shipped else Path(value)
