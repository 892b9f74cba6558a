"""`llsbench run method NAME`: train one model with one learning rule, tracked in MLflow."""
from __future__ import annotations

import click

from llsbench.accelerate import PRECISIONS
from llsbench.artifacts import ModelArtifactCallback
from llsbench.cli.common import parse_key_values
from llsbench.config import RunConfig
from llsbench.data import DATASETS
from llsbench.method_registry import METHODS
from llsbench.models import MODELS
from llsbench.optim import OPTIMIZERS
from llsbench.probes import UpdateAngleProbe
from llsbench.profiling.callback import ProfileCallback
from llsbench.tracking import DEFAULT_EXPERIMENT, MlflowLogger
from llsbench.trainer import Trainer


@click.group()
def run() -> None:
    """Run training: one method (`run method`) or a whole suite (`run suite`)."""


def tracking_options(f):
    f = click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment.")(f)
    f = click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                     help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")(f)
    return click.option("--no-track", is_flag=True, help="Do not record the run in MLflow.")(f)


def data_options(f):
    f = click.option("--data-dir", envvar="LLSBENCH_DATA_DIR", type=click.Path(file_okay=False),
                     help="Dataset root (env LLSBENCH_DATA_DIR; default: per-user cache).")(f)
    return click.option("--download", is_flag=True, help="Download the dataset if it is missing.")(f)


@run.command("method")
@click.argument("name")
@click.option("--model", default="smallconv", show_default=True, help="Model name (see `llsbench list models`).")
@click.option("--dataset", default="digits", show_default=True, help="Dataset (see `llsbench list datasets`).")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--test-batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-3, show_default=True)
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adamw-sf", show_default=True)
@click.option("--lr-milestones", callback=lambda _c, _p, v: _epochs(v), default=None, metavar="E1,E2,...",
              help="Epochs after which the learning rate is multiplied by --lr-gamma (e.g. PEPITA's 60,90).")
@click.option("--lr-gamma", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=RunConfig.momentum, show_default=True,
              help="Momentum of sgd / nesterov / sgd-sf (DRTP's Nesterov and PEPITA's SGD recipes set it).")
@click.option("--weight-decay", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--basis", default=None, help="LLS basis: sin-ref, square, random (reference-exact), cos, sin-f64, square-pm1, random-cxt.")
@click.option("--temperature", type=float, default=None, help="Temperature of LLS-type local losses.")
@click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE", help="Any method option.")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=None, help="Model dropout.")
@click.option("--activation", default=None, help="Model activation: leaky_relu, tanh, relu.")
@click.option("--model-option", "model_opts", multiple=True, metavar="KEY=VALUE", help="Any model option.")
@click.option("--limit-train-batches", type=click.IntRange(min=1), default=None,
              help="Cap on training batches per epoch (a shortened budget, recorded with the run).")
@click.option("--limit-test-batches", type=click.IntRange(min=1), default=None)
@click.option("--train-subset", type=click.IntRange(min=1), default=None, help="Use only N training samples.")
@click.option("--bn-batches", type=click.IntRange(min=0), default=50, show_default=True,
              help="Training batches to re-estimate BatchNorm statistics before each evaluation.")
@click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--compile", is_flag=True, help="torch.compile the model's blocks and head (opt-in; recorded).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
              help="bf16: autocast each training step (opt-in; recorded).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout for model and inputs (opt-in; recorded).")
@click.option("--sync-every", type=click.IntRange(min=1), default=None,
              help="Read the running loss and check it is finite every N steps (default: once per epoch; "
                   "each read is a host synchronisation on a GPU).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--no-profile", is_flag=True, help="Do not log the rule's MACs/memory profile to MLflow before training.")
@click.option("--no-save-model", is_flag=True, help="Do not keep the trained weights as an MLflow artifact.")
@click.option("--angle-every", type=click.IntRange(min=0), default=0, show_default=True,
              help="Every N steps, log per block the angle between the rule's update and the BP gradient (0 = off).")
@data_options
@tracking_options
def run_method(name, model, dataset, basis, temperature, options, dropout, activation, model_opts, no_progress,
               angle_every, no_profile, no_save_model, experiment, tracking_uri, no_track, **settings) -> None:
    """Train MODEL on DATASET with the learning rule NAME (see `llsbench list methods`)."""
    METHODS.get(name), MODELS.get(model), DATASETS.get(dataset)  # fail fast, listing valid names
    method_options = parse_key_values(options, "--option")
    method_options.update({k: v for k, v in (("basis", basis), ("temperature", temperature)) if v is not None})
    model_options = parse_key_values(model_opts, "--model-option")
    model_options.update({k: v for k, v in (("dropout", dropout), ("activation", activation)) if v is not None})
    model_options = {k: _number(v) for k, v in model_options.items()}
    config = RunConfig(method=name, method_options=method_options, model=model, model_options=model_options,
                       dataset=dataset, **settings)
    logger = None if no_track else MlflowLogger(experiment, tracking_uri)
    callbacks = [] if no_track or no_save_model else [ModelArtifactCallback()]  # before the logger closes the run
    callbacks += [] if no_track else [logger]
    callbacks += [] if no_track or no_profile else [ProfileCallback()]
    probe = UpdateAngleProbe(angle_every) if angle_every else None
    callbacks += [probe] if probe else []
    trainer = Trainer(config, callbacks=callbacks, progress=not no_progress)
    click.echo(f"{name} on {model}/{dataset}: {trainer.device}, {trainer.acceleration.label}, "
               f"{trainer.method.extra_parameters()} extra "
               f"parameters, {len(trainer.data.train)} batches/epoch")
    result = trainer.fit()
    for h in result.history:
        click.echo(f"epoch {int(h['epoch']):>3}  train loss {h['train_loss']:.4f}  train acc {h['train_acc']:6.2f}%  "
                   f"test acc {h['test_acc']:6.2f}%  {h['images_per_s']:.0f} img/s")
    if result.status != "finished":
        raise click.ClickException(f"run failed: {result.reason}")
    if probe and probe.history:
        click.echo(f"update/BP-gradient angles at step {probe.history[-1][0]}: "
                   + "  ".join(f"{k[6:]} {v:.1f}°" for k, v in probe.last.items()))
    s = result.summary
    click.echo(f"final test acc {s['final_test_acc']:.2f}% (best {s['best_test_acc']:.2f}%) in {s['total_time']:.1f}s"
               + ("" if no_track else f"; MLflow run {logger.run_id}"))


def _epochs(value: str | None) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()] if value else []
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of epochs, e.g. 60,90") from None


def _number(value: str):
    """Model options from the command line arrive as text: numbers and booleans are converted."""
    if not isinstance(value, str):
        return value
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value
