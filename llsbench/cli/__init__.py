"""The `llsbench` command line: one module per command group, assembled here."""
from __future__ import annotations

import click

from llsbench import __version__
from llsbench.cli.common import UserErrorGroup
from llsbench.cli.figure import figure_cmd
from llsbench.cli.floor import floor_cmd
from llsbench.cli.listing import list_cmd
from llsbench.cli.overhead import overhead_cmd
from llsbench.cli.profile import bench, profile
from llsbench.cli.report import report_cmd
from llsbench.cli.run import run
from llsbench.cli.suite import suite_cmd
from llsbench.cli.tune import tune_cmd
from llsbench.cli.ui import server_cmd, ui_cmd
from llsbench.host_memory import apply_host_memory_policy


@click.group(cls=UserErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llsbench")
def cli() -> None:
    """Train, measure and compare learning rules for deep networks (BP, LLS, DFA, DRTP,
    PEPITA, Local Losses) on equal terms.

    Freed host memory is kept for reuse by the next training step (no page faults);
    LLSBENCH_HOST_MEMORY=system leaves glibc's policy as it is."""
    apply_host_memory_policy()


cli.add_command(run)
cli.add_command(list_cmd)
cli.add_command(profile)
cli.add_command(bench)
cli.add_command(overhead_cmd)
cli.add_command(floor_cmd)
run.add_command(suite_cmd)
cli.add_command(report_cmd)
cli.add_command(tune_cmd)
cli.add_command(ui_cmd)
cli.add_command(server_cmd)
cli.add_command(figure_cmd)


def main() -> None:
    cli()
