"""`llsbench run suite NAME`: every cell of a suite, tracked in MLflow, resumable."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click
from tabulate import tabulate

from llsbench.cli.common import UserError, comma_list
from llsbench.cli.engine import engine_options, make_engine
from llsbench.cli.run import data_options
from llsbench.errors import LLSBenchError
from llsbench.reports import cell_frame, finished_cells, formatted, summarise
from llsbench.suites import (CellOutcome, Overrides, RunContext, SuiteInterrupted, expand, load_suite, run_suite,
                             shipped_suites)
from llsbench.suites.resume import DEFAULT_RUN_DIR
from llsbench.tracking import DEFAULT_EXPERIMENT

INTERRUPTED_EXIT = 130


@click.command("suite", epilog=f"Shipped suites: {', '.join(shipped_suites())}.")
@click.argument("name")
@click.option("--seeds", help="N (the suite's first N seeds) or a comma list of seeds, e.g. 0,3.")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs for every cell (a budget change, recorded).")
@click.option("--limit-train-batches", type=click.IntRange(min=1),
              help="Cap on training batches per epoch (a budget change, recorded).")
@click.option("--methods", help="Only these methods (labels or names), comma separated.")
@click.option("--datasets", help="Only these datasets, comma separated.")
@click.option("--models", help="Only these models (labels or names), comma separated.")
@click.option("--with", "include", help="Also run these optional blocks of the suite, comma separated.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@data_options
@click.option("--num-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="DataLoader workers for image-folder datasets.")
@click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
              help="MLflow tracking URI (default: MLflow's own, ./mlflow.db).")
@click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True, help="MLflow experiment.")
@click.option("--run-dir", envvar="LLSBENCH_RUN_DIR", default=DEFAULT_RUN_DIR, show_default=True,
              type=click.Path(file_okay=False), help="Where interrupted cells keep their checkpoints.")
@click.option("--progress/--no-progress", default=False, help="Per-epoch progress bars inside each cell.")
@click.option("--no-profile", is_flag=True, help="Do not log each rule's MACs/memory profile before training.")
@click.option("--no-save-model", is_flag=True, help="Do not keep each cell's trained weights as an MLflow artifact.")
@click.option("--dry-run", is_flag=True, help="Print the cells and exit; runs nothing, records nothing.")
@engine_options
def suite_cmd(name, seeds, epochs, limit_train_batches, methods, datasets, models, include, device, data_dir, download,
              num_workers, tracking_uri, experiment, run_dir, progress, no_profile, no_save_model, dry_run, workers,
              ray_address, gpus_per_cell, cpus_per_cell) -> None:
    """Run every cell of suite NAME (a shipped suite or a YAML file): datasets × models ×
    methods × seeds. Finished cells are skipped, interrupted ones resume from their checkpoint."""
    suite = load_suite(name)
    overrides = Overrides(seeds=_seeds(seeds), epochs=epochs, limit_train_batches=limit_train_batches,
                          methods=_names(methods), datasets=_names(datasets), models=_names(models),
                          include=_names(include) or ())
    cells = expand(suite, overrides)
    if not cells:
        raise UserError(f"the filters leave no cell of suite {suite.name!r} to run")
    if dry_run:
        click.echo(_cell_table(cells))
        click.echo(f"{len(cells)} cells; budget: {'; '.join(sorted({c.budget_text for c in cells}))}")
        return
    ctx = RunContext(tracking_uri=tracking_uri, experiment=experiment, run_dir=Path(run_dir), device=device,
                     data_dir=data_dir, download=download, num_workers=num_workers, progress=progress,
                     profile=not no_profile, save_model=not no_save_model)
    command = _command_line(click.get_current_context())
    engine = make_engine(workers, ray_address, gpus_per_cell, cpus_per_cell, device)
    click.echo(f"suite {suite.name}: {len(cells)} cells ({suite.path}); checkpoints under {run_dir}")
    live = sys.stdout if engine.concurrent and sys.stdout.isatty() else None
    try:
        with engine:
            _, outcomes = run_suite(suite, cells, ctx, command=command, echo=click.echo, engine=engine, live=live)
    except SuiteInterrupted as stop:
        click.echo(_summary(stop.outcomes))
        click.echo(f"\nInterrupted. Finished cells are kept in MLflow; interrupted cells keep their last checkpoint "
                   f"under {run_dir}.\nResume with:\n  {command}")
        raise SystemExit(INTERRUPTED_EXIT) from None
    click.echo("\n" + _summary(outcomes))
    _print_comparison(suite.name, {o.cell.key for o in outcomes if o.status in ("finished", "skipped")},
                      tracking_uri, experiment)
    click.echo(f"\nCompare in the MLflow UI: llsbench ui{_uri_flag(tracking_uri)}\n"
               f"Write the report:         llsbench report {suite.name}{_uri_flag(tracking_uri)}")
    if any(o.status == "failed" for o in outcomes):
        raise SystemExit(1)


def _seeds(value: str | None) -> int | tuple[int, ...] | None:
    if value is None:
        return None
    try:
        if "," not in value:
            return int(value)
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise UserError(f"--seeds {value!r} is neither a count nor a comma list of integers") from None


def _names(value: str | None) -> tuple[str, ...] | None:
    names = comma_list(value)
    return tuple(names) if names else None


def _cell_table(cells) -> str:
    rows = [(i, c.key, c.block, c.method_label, c.model_label, c.dataset, c.seed, c.config["epochs"],
             c.config["limit_train_batches"] or "-", c.budget_text) for i, c in enumerate(cells, 1)]
    return tabulate(rows, headers=["#", "key", "block", "method", "model", "dataset", "seed", "epochs",
                                   "batches/epoch cap", "budget"])


def _summary(outcomes: list[CellOutcome]) -> str:
    rows = [(i, o.cell.label, o.status, "" if o.final_test_acc is None else f"{o.final_test_acc:.2f}",
             f"{o.seconds:.1f}" if o.seconds else "", _note(o)) for i, o in enumerate(outcomes, 1)]
    counts = [f"{sum(o.status == s for o in outcomes)} {s}" for s in ("finished", "skipped", "failed")]
    counts += [f"{n} {s}" for s in ("interrupted", "elsewhere") if (n := sum(o.status == s for o in outcomes))]
    text = tabulate(rows, headers=["#", "cell", "status", "test acc. (%)", "seconds", "note"])
    text += f"\n\ncells: {', '.join(counts)}"
    if any(o.status == "elsewhere" for o in outcomes):
        text += "\n(elsewhere: trained by another invocation of this suite; run the command again later to see them)"
    return text


def _note(outcome: CellOutcome) -> str:
    if outcome.reason:
        log = f" (log: {outcome.log})" if outcome.log and outcome.status == "failed" else ""
        return outcome.reason[:120] + log
    return f"resumed from epoch {outcome.resumed_from}" if outcome.resumed_from else ""


def _print_comparison(suite: str, keys: set[str], tracking_uri: str | None, experiment: str) -> None:
    """The comparison table of this invocation's cells (finished now or before)."""
    try:
        cells = cell_frame(finished_cells(suite, tracking_uri=tracking_uri, experiment=experiment))
    except LLSBenchError:
        return  # nothing finished: the summary above says why
    cells = cells[cells["cell_key"].isin(keys)]
    if not cells.empty:
        click.echo("\n" + formatted(summarise(cells)).to_markdown(index=False, disable_numparse=True))


def _command_line(ctx: click.Context) -> str:
    """The command as typed, rebuilt from the options given on the command line (values from
    the environment are read again on resume)."""
    words = ctx.command_path.split()
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not click.core.ParameterSource.COMMANDLINE:
            continue
        value = ctx.params[param.name]
        if isinstance(param, click.Argument):
            words.append(str(value))
        elif param.is_flag:
            words.append(param.opts[0] if value else (param.secondary_opts or [param.opts[0]])[0])
        else:
            words += [param.opts[0], str(value)]
    return shlex.join(words)


def _uri_flag(tracking_uri: str | None) -> str:
    return f" --tracking-uri {shlex.quote(tracking_uri)}" if tracking_uri else ""
