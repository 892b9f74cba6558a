"""Third-party methods arrive through the `llsbench.methods` entry-point group, exactly like the
built-ins; a plugin that fails to import is reported by name and does not hide the others."""
import os
import subprocess
import sys
import textwrap

import pytest

from llsbench.errors import LLSBenchError, UnknownNameError
from llsbench.registry import Registry

PLUGIN = '''
from llsbench.method import SignalCost
from llsbench_methods.bp import BP


class HeadOnly(BP):
    """A third-party rule: BP's step, but only the classifier has an optimiser."""
    name = "head-only"
    summary = "a third-party rule: classifier only"

    def parameter_groups(self):
        return [list(self.model.head.parameters())]

    def learning_signal_cost(self):
        return [SignalCost(n, 0, "0") for n in self.block_names()]
'''


@pytest.fixture
def plugin_dir(tmp_path):
    """An installed distribution on sys.path: one good and one broken entry point."""
    (tmp_path / "thirdparty_rule.py").write_text(PLUGIN)
    info = tmp_path / "thirdparty_rule-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-rule\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [llsbench.methods]
        head-only = thirdparty_rule:HeadOnly
        broken-rule = no_such_module_anywhere:Rule
        """))
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("thirdparty_rule", None)


def test_builtin_methods_come_from_entry_points():
    registry = Registry("method", entry_point_group="llsbench.methods")
    assert {"bp", "lls", "lls-m", "lls-mxm"} <= set(registry.names())


def test_installed_plugin_is_found_and_broken_one_is_reported(plugin_dir):
    registry = Registry("method", entry_point_group="llsbench.methods")
    assert "head-only" in registry.names() and "bp" in registry.names()
    assert "broken-rule" in registry.broken and "no_such_module_anywhere" in registry.broken["broken-rule"]
    with pytest.raises(LLSBenchError, match="broken-rule.*failed to load"):
        registry.get("broken-rule")
    with pytest.raises(UnknownNameError, match="head-only"):
        registry.get("nope")


def test_plugin_trains_from_the_command_line_and_broken_one_is_listed(plugin_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), os.environ.get("PYTHONPATH", "")])}
    listing = subprocess.run([sys.executable, "-m", "llsbench", "list", "methods"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "head-only" in listing.stdout and "BROKEN PLUGIN" in listing.stdout and "lls-mxm" in listing.stdout
    run = subprocess.run([sys.executable, "-m", "llsbench", "run", "method", "head-only", "--epochs", "1",
                          "--no-track", "--no-progress"], env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "final test acc" in run.stdout
