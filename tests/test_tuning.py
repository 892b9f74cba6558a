"""`llsbench tune`: equal budgets, a validation split, a sealed test set, resumable studies,
nested MLflow runs, the tuned fragment, `settings_from` in suites and the tuned report."""
from __future__ import annotations

import optuna
import pytest
import yaml
from click.testing import CliRunner

import llsbench.data.load as load_module
from llsbench import tracking
from llsbench.cli import cli
from llsbench.method_registry import METHODS
from llsbench.suites import SuiteError, expand, load_suite
from llsbench.tuning.spaces import check_space

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ("--device", "cpu", "--bn-batches", "2", "--limit-train-batches", "4")


class Tripwires:
    """Every test stream load_data builds is wrapped: its reads are counted and, while
    `armed`, a read fails the test."""

    def __init__(self):
        self.armed, self.reads, self.loads = True, 0, 0

    def wrap(self, inner):
        wires = self

        class Tripwire:
            batch_size, num_samples = inner.batch_size, inner.num_samples

            def __len__(self):
                return len(inner)

            def set_epoch(self, epoch):
                inner.set_epoch(epoch)

            def __iter__(self):
                wires.reads += 1
                if wires.armed:
                    raise AssertionError("a test batch was read while tuning")
                return iter(inner)

        self.loads += 1
        return Tripwire()


@pytest.fixture
def tripwires(monkeypatch):
    wires, real = Tripwires(), load_module._tensor_batches

    def wrapped(*args, **kwargs):
        train, test = real(*args, **kwargs)
        return train, wires.wrap(test)

    monkeypatch.setattr(load_module, "_tensor_batches", wrapped)
    return wires


def tune(*args):
    return CliRunner().invoke(cli, ["tune", *args], catch_exceptions=False)


def study_trials(storage: str, name: str) -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tracking_uri):
    """bp and lls on digits, 3 trials x 1 epoch each, without the final test."""
    out = tmp_path_factory.mktemp("tuned")
    args = ("--methods", "bp,lls", "--trials", "3", "--epochs", "1", "--study-name", "t", "--output-dir", str(out),
            "--tracking-uri", tracking_uri, "--limit-val-batches", "1", *FAST)
    return {"out": out, "args": args, "storage": f"sqlite:///{out / 't.db'}"}


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_tuning_reads_no_test_batch_and_writes_a_best_configuration_per_rule(tuned, tripwires):
    result = tune(*tuned["args"], "--no-test")
    assert result.exit_code == 0, result.output
    assert tripwires.loads >= 6 and tripwires.reads == 0  # data loaded for every trial, its test set never read
    fragment = yaml.safe_load((tuned["out"] / "t.yaml").read_text())
    assert set(fragment["methods"]) == {"bp", "lls"}
    assert fragment["budget"]["trials"] == 3 and fragment["budget"]["epochs"] == 1
    assert fragment["budget"]["val_fraction"] == 0.1 and fragment["budget"]["n_val"] == 144
    assert fragment["budget"]["limit_val_batches"] == 1
    for rule, entry in fragment["methods"].items():
        assert 1e-4 <= entry["settings"]["lr"] <= 3e-2 and entry["trials"] == {"complete": 3}
        trials = study_trials(tuned["storage"], f"t:{rule}")
        assert entry["val_acc"] == pytest.approx(max(t.value for t in trials), abs=1e-4)
    assert set(fragment["methods"]["lls"]["method_options"]) == {"temperature"}


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_trials_are_nested_mlflow_runs_with_validation_curves(tuned, tracking_uri):
    c = tracking.client(tracking_uri)
    experiment = c.get_experiment_by_name(tracking.DEFAULT_EXPERIMENT).experiment_id
    parents = tracking.find_runs(c, experiment, {"role": "study", "study": "t"})
    assert len(parents) == 1
    children = tracking.find_runs(c, experiment, {"role": "trial", "study": "t"})
    assert sorted(r.data.tags["method"] for r in children) == ["bp"] * 3 + ["lls"] * 3
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert [m.step for m in c.get_metric_history(run.info.run_id, "val_acc")] == [1]
        assert "lr" in run.data.params and "test_acc" not in run.data.metrics
    assert parents[0].data.metrics["val_acc.bp"] > 10


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_rerun_resumes_the_study_and_tests_the_chosen_config_once(tuned, tripwires, tracking_uri):
    tripwires.armed = False  # the final tests read the test set: count the reads instead
    result = tune(*tuned["args"])  # the same budget: no new trial, only the final tests
    assert result.exit_code == 0, result.output
    assert "bp: 3/3 trials already" in result.output
    assert all(len(study_trials(tuned["storage"], f"t:{rule}")) == 3 for rule in ("bp", "lls"))
    assert tripwires.reads == 4  # tuned + fixed config per rule, one epoch each: one test pass per config
    fragment = yaml.safe_load((tuned["out"] / "t.yaml").read_text())
    for entry in fragment["methods"].values():
        assert entry["test_acc"] > 10 and entry["fixed_test_acc"] > 10
        final = tracking.client(tracking_uri).get_run(entry["test_run_id"]).data
        assert final.tags["role"] == "final-tuned" and final.params["limit_test_batches"] == "None"  # whole test set
    result = tune(*tuned["args"][:3], "4", *tuned["args"][4:])  # --trials 4: one more trial each
    assert result.exit_code == 0, result.output
    assert "bp: 3/4 trials already in study 't:bp', running 1 more" in result.output
    assert all(len(study_trials(tuned["storage"], f"t:{rule}")) == 4 for rule in ("bp", "lls"))
    assert tripwires.reads <= 4 + 2  # the fixed recipe is not retrained; a new best config is, once


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_changed_protocol_under_the_same_name_is_refused(tuned):
    result = tune(*tuned["args"][:5], "2", *tuned["args"][6:], "--no-test", "--no-track")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: study 't:bp'") and "epochs='1'" in result.output


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_a_smaller_budget_than_the_study_holds_is_refused(tuned):
    result = tune(*tuned["args"][:3], "1", *tuned["args"][4:], "--no-test", "--no-track")
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: study 't:bp'") and "more than --trials 1" in last


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_report_tuned_states_budget_and_chosen_hyperparameters(tuned, tmp_path):
    result = CliRunner().invoke(cli, ["report", "--tuned", str(tuned["out"] / "t.yaml"), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "t-tuned.md").read_text()
    assert "4 trials × 1 epoch" in text and "temperature=" in text and "fixed recipe: test acc" in text
    assert "retrained from scratch on the full training set" in text


@pytest.mark.slow  # shares the module's tuned study (tens of seconds to make)
def test_suite_settings_from_applies_the_tuned_settings(tuned, tmp_path):
    fragment = yaml.safe_load((tuned["out"] / "t.yaml").read_text())
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "s", "description": "tuned", "seeds": 1, "settings": {"epochs": 1},
        "settings_from": str(tuned["out"] / "t.yaml"),
        "matrix": {"datasets": ["digits"], "models": ["smallconv"], "methods": ["bp", "lls", "dfa"]}}))
    cells = {c.method: c for c in expand(load_suite(suite))}
    for rule in ("bp", "lls"):
        assert cells[rule].config["lr"] == fragment["methods"][rule]["settings"]["lr"]
    assert cells["lls"].config["method_options"]["temperature"] == fragment["methods"]["lls"]["method_options"][
        "temperature"]
    assert cells["dfa"].config["lr"] == 0.005  # not tuned: the suite's own recipe
    assert "settings_from" in load_suite(suite).notes


@pytest.mark.parametrize("target, message", [("missing.yaml", "cannot be read"),
                                             ("only-dfa.yaml", "none of them is in this suite")])
def test_bad_settings_from_names_the_key(tmp_path, target, message):
    (tmp_path / "only-dfa.yaml").write_text(yaml.safe_dump({"methods": {"dfa": {"settings": {}, "method_options": {}}}}))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "description": "d", "seeds": 1, "settings_from": target,
                                     "matrix": {"datasets": ["digits"], "models": ["smallconv"], "methods": ["bp"]}}))
    with pytest.raises(SuiteError, match=f"settings_from: .*{message}"):
        load_suite(suite)


def test_every_rule_declares_a_valid_search_space():
    for name in METHODS.names():
        cls = METHODS.get(name)
        check_space(name, cls.search_space, cls.options, "declared")
        assert {"lr", "weight_decay"} <= set(cls.search_space)
    assert "temperature" in METHODS.get("lls").search_space and "init" in METHODS.get("dfa").search_space


@pytest.mark.parametrize("space, needle", [
    ({"lls": {"tempreature": {"uniform": [0.1, 1]}}}, "lls.tempreature: not a tunable key of lls; valid keys: lr,"),
    ({"lls": {"lr": {"log_uniform": [0, 1]}}}, "lls.lr: log_uniform needs low > 0"),
    ({"lls": {"lr": {"gaussian": [0, 1]}}}, "unknown distribution 'gaussian'; valid distributions: log_uniform"),
    ({"all": {"temperature": {"uniform": [2, 1]}}}, "needs numbers low < high"),
    ({"dfa": {"init": {"choice": ["kaiming", "nope"]}}}, "is not a rule being tuned; valid keys: all, lls"),
    ({"lls": {"basis": {"choice": ["cos", "wavelet"]}}}, "option basis='wavelet' is not allowed; valid values:"),
    ({"lls": {"weight_decay": {"fixed": -1}}}, "-1 is not a valid weight_decay"),
    ({"lls": {"lr": 0.01}}, "0.01 is not a distribution"),
])
def test_bad_space_entries_are_one_line_errors(tmp_path, space, needle):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    result = tune("--methods", "lls", "--space", str(path), "--no-track", "--output-dir", str(tmp_path), *FAST)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], result.output


def test_space_file_overrides_and_pins(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"all": {"weight_decay": {"fixed": 0.0}}, "lls": {"temperature": {"fixed": 0.5}}}))
    result = tune("--methods", "lls", "--space", str(path), "--trials", "1", "--epochs", "1", "--no-track", "--no-test",
                  "--output-dir", str(tmp_path), *FAST)
    assert result.exit_code == 0, result.output
    entry = yaml.safe_load((tmp_path / "smallconv-digits.yaml").read_text())["methods"]["lls"]
    assert entry["settings"]["weight_decay"] == 0.0 and entry["method_options"] == {"temperature": 0.5}


def test_a_suite_search_space_is_checked_on_load_and_used_by_tune(tmp_path):
    suite = {"name": "s", "description": "d", "seeds": 1,
             "matrix": {"datasets": ["digits"], "models": ["smallconv"], "methods": ["bp", "lls", "dfa"]},
             "search_space": {"all": {"weight_decay": {"fixed": 0.0}}, "lls": {"temperature": {"fixed": 2.0}},
                              "dfa": {"init": {"fixed": "lls-ref"}}}}  # dfa: in the suite, not tuned below
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    load_suite(path)
    result = tune("--methods", "lls", "--space", str(path), "--trials", "1", "--epochs", "1", "--no-track", "--no-test",
                  "--output-dir", str(tmp_path), *FAST)
    assert result.exit_code == 0, result.output
    entry = yaml.safe_load((tmp_path / "smallconv-digits.yaml").read_text())["methods"]["lls"]
    assert entry["settings"]["weight_decay"] == 0.0 and entry["method_options"] == {"temperature": 2.0}
    suite["search_space"] = {"lls": {"temprature": {"uniform": [0.1, 1.0]}}}
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(SuiteError, match=r"s\.yaml: search_space: lls\.temprature: not a tunable key of lls; valid keys"):
        load_suite(path)


@pytest.mark.slow
def test_workers_run_trials_as_ray_tasks_on_the_shared_storage(tmp_path):
    result = tune("--methods", "bp", "--trials", "2", "--epochs", "1", "--workers", "2", "--no-track", "--no-test",
                  "--output-dir", str(tmp_path), *FAST)
    assert result.exit_code == 0, result.output
    assert "2 Ray tasks over 2 workers" in result.output
    trials = study_trials(f"sqlite:///{tmp_path / 'smallconv-digits.db'}", "smallconv-digits:bp")
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[0].params != trials[1].params  # each worker samples with its own seed
    import ray

    assert not ray.is_initialized()  # the local cluster started for the run is shut down


def test_a_sqlite_storage_in_a_missing_folder_is_created(tmp_path):
    from llsbench.tuning.study import storage

    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'studies.db'}"
    optuna.create_study(storage=storage(url), study_name="s")
    assert (tmp_path / "not" / "yet" / "studies.db").is_file()
