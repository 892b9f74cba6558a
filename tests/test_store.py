"""A new SQLite tracking store is created once, aside and moved into place under a lock:
concurrent first users get no traceback, a kill during creation leaves nothing broken, and a
store broken before (a killed MLflow migration) is named in one line with what to do."""
import sqlite3
import subprocess
import sys

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from processes import cli_env

from llsbench.cli import cli
from llsbench.store import prepare_store

FIRST_USE = """
import sys
from mlflow import MlflowClient
from llsbench.store import prepare_store
uri = sys.argv[1]
prepare_store(uri)
MlflowClient(uri).create_experiment(sys.argv[2])
"""

KILLED_BEFORE_THE_MOVE = """
import os, sys
import llsbench.store as store
store.os.replace = lambda *args: os.kill(os.getpid(), 9)  # SIGKILL once the store is migrated aside
store.prepare_store(sys.argv[1])
"""


@pytest.mark.slow  # two fresh interpreters importing MLflow: ~25 s here
def test_two_processes_using_a_new_store_at_once_both_work(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new.db'}"
    users = [subprocess.Popen([sys.executable, "-c", FIRST_USE, uri, name], env=cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for name in ("first", "second")]
    outputs = [u.communicate(timeout=240)[0] for u in users]
    assert [u.returncode for u in users] == [0, 0], outputs
    assert not any("Traceback" in out for out in outputs), outputs
    names = {e.name for e in MlflowClient(uri).search_experiments()}
    assert {"first", "second"} <= names
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".new.db.lock")] == ["new.db"]


@pytest.mark.slow
def test_a_kill_during_the_stores_creation_leaves_it_creatable(tmp_path):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_MOVE, uri], env=cli_env(), capture_output=True)
    assert killed.returncode == -9
    assert not db.exists() and list(tmp_path.glob(".mlflow.db.creating-*"))  # the half-made store lies aside
    assert prepare_store(uri) == uri
    assert not list(tmp_path.glob(".mlflow.db.creating-*"))
    assert MlflowClient(uri).get_experiment("0").name == "Default"


def broken_store(path, revision="0584bdc529eb", leftover=True):
    """What a SIGKILL in the middle of MLflow's own in-place creation leaves."""
    db = sqlite3.connect(path)
    db.execute("create table experiments (experiment_id integer primary key, name text)")
    db.execute("create table alembic_version (version_num text)")
    db.execute("insert into alembic_version values (?)", (revision,))
    if leftover:
        db.execute("create table _alembic_tmp_experiments (experiment_id integer)")
    db.commit()
    db.close()


def test_a_half_migrated_store_is_one_line_saying_what_to_do(tmp_path):
    db = tmp_path / "broken.db"
    broken_store(db)
    result = CliRunner().invoke(cli, ["run", "suite", "smoke", "--seeds", "1", "--epochs", "1", "--methods", "bp",
                                      "--tracking-uri", f"sqlite:///{db}", "--run-dir", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: the tracking store") and "_alembic_tmp_experiments" in lines[-1]
    assert f"mv {db} {db}.broken" in lines[-1] and "Traceback" not in result.output


def test_a_store_of_an_older_schema_says_to_upgrade_it(tmp_path):
    db = tmp_path / "old.db"
    broken_store(db, leftover=False)
    result = CliRunner().invoke(cli, ["ui", "--tracking-uri", f"sqlite:///{db}"])
    assert result.exit_code == 2 and "mlflow db upgrade" in result.output, result.output
