"""Suite files: the shipped ones expand to exactly the cells the spec lists; bad files fail
with the file and the key named; command-line overrides change cells and record the budget."""
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from llsbench.cli import cli
from llsbench.errors import ConfigError
from llsbench.method_registry import METHODS
from llsbench.suites import Cell, Overrides, SuiteError, SuiteNotFoundError, expand, load_suite, shipped_suites

SEEDS = range(5)
PAPER = {"optimizer": "adamw-sf", "lr": 0.005, "batch_size": 128, "test_batch_size": 128}


def signature(cells: list[Cell]) -> set[tuple]:
    return {(c.block, c.method_label, c.model, c.dataset, c.config["epochs"], c.seed) for c in cells}


def test_suites_ship_with_the_package_and_are_found_by_name_from_any_directory(tmp_path, monkeypatch):
    assert {"smoke", "table1", "table2", "table3"} <= set(shipped_suites())
    monkeypatch.chdir(tmp_path)
    assert load_suite("table2").name == "table2"
    own = tmp_path / "mine.yaml"
    own.write_text(Path(shipped_suites()["smoke"]).read_text().replace("name: smoke", "name: mine"))
    assert load_suite(str(own)).name == "mine"
    with pytest.raises(SuiteNotFoundError, match="smoke, table1, table2, table3"):
        load_suite("table9")


def test_smoke_runs_every_registered_method_on_digits():
    cells = expand(load_suite("smoke"))
    methods = METHODS.names()
    assert {c.method for c in cells} == set(methods)
    assert len(cells) == (len(methods) + 1) * 2  # every method + lls-square, 2 seeds
    assert {c.dataset for c in cells} == {"digits"} and {c.model for c in cells} == {"smallconv"}
    assert {c.seed for c in cells} == {0, 1}
    square = [c for c in cells if c.method_label == "lls-square"]
    assert len(square) == 2 and all(c.config["method_options"]["basis"] == "square" for c in square)
    assert all(c.budget == "smoke" and c.config["epochs"] <= 5 for c in cells)


def test_table1_is_three_bases_on_smallconv_and_vgg8_over_four_datasets():
    cells = expand(load_suite("table1"))
    runs = [("smallconv", "mnist", 100), ("smallconv", "fashionmnist", 100), ("smallconv", "cifar10", 100),
            ("smallconv", "imagenette", 100), ("vgg8", "mnist", 100), ("vgg8", "fashionmnist", 100),
            ("vgg8", "cifar10-aug", 300), ("vgg8", "imagenette-aug", 300)]
    bases = {"lls-cosine": "sin-ref", "lls-square": "square", "lls-random": "random"}
    expected = {("main", label, model, data, epochs, s) for model, data, epochs in runs for label in bases for s in SEEDS}
    assert len(cells) == 120 and signature(cells) == expected
    for c in cells:
        assert c.method == "lls" and c.config["method_options"]["basis"] == bases[c.method_label]
        assert c.config["method_options"]["temperature"] == 0.5
        assert {k: c.config[k] for k in PAPER} == PAPER and c.budget == "paper"


def test_table2_is_the_local_rules_on_smallconvl_plus_their_reference_nets():
    cells = expand(load_suite("table2"))
    datasets = ("mnist-plain", "cifar10-plain", "cifar100-plain")
    methods = ("bp", "lls-square", "dfa", "dfa-kaiming", "drtp", "pepita")
    expected = {("main", m, "smallconvl", d, 100, s) for d in datasets for m in methods for s in SEEDS}
    expected |= {("drtp-net-mnist", "drtp", "drtp-conv-mnist", "mnist-raw", 100, s) for s in SEEDS}
    expected |= {("drtp-net-cifar", "drtp", "drtp-conv-cifar", d, 100, s) for d in datasets[1:] for s in SEEDS}
    expected |= {("pepita-net", "pepita", "pepita-fc", d, 100, s)
                 for d in ("mnist-raw", "cifar10-raw", "cifar100-raw") for s in SEEDS}
    assert len(cells) == 90 + 30 and signature(cells) == expected
    main = [c for c in cells if c.block == "main"]
    assert all({k: c.config[k] for k in PAPER} == PAPER for c in main)
    inits = {(c.method_label, c.config["method_options"]["init"], c.config["method_options"]["output_loss"])
             for c in main if c.method == "dfa"}
    assert inits == {("dfa", "lls-ref", "ce"), ("dfa-kaiming", "kaiming", "ce")}  # `dfa`: the LLS reference's
    drtp_net = [c for c in cells if c.block.startswith("drtp-net")]
    assert {(c.config["optimizer"], c.config["lr"], c.config["batch_size"]) for c in drtp_net} == {("nesterov", 1e-4, 100)}
    pepita_net = [c for c in cells if c.block == "pepita-net"]
    assert {(c.dataset, c.config["optimizer"], c.config["lr"], c.config["batch_size"], tuple(c.config["lr_milestones"]))
            for c in pepita_net} == {("mnist-raw", "sgd", 0.1, 64, (60, 90)), ("cifar10-raw", "sgd", 0.01, 64, (60, 90)),
                                     ("cifar100-raw", "sgd", 0.01, 64, (60, 90))}  # MNIST: the authors' MNIST command


@pytest.mark.parametrize("name", ["table1", "table2", "table3"])
def test_paper_tables_use_the_reference_exact_computations(name):
    """No cell picks a cleaner-than-reference variant: bases and SmallConvL's linear pooling default."""
    cleaner = {"sin-f64", "square-pm1", "random-cxt", "cos"}
    suite = load_suite(name)
    for c in expand(suite, Overrides(include=tuple(b.name for b in suite.blocks if b.optional))):
        options = METHODS.get(c.method).options
        if "basis" in options:
            assert c.config["method_options"].get("basis", options["basis"].default) not in cleaner, c.label
        assert c.config["model_options"].get("linear_pool", 2048) == 2048, c.label
        if c.method == "drtp":
            assert c.config["method_options"].get("output_loss", options["output_loss"].default) == "bce", c.label


def test_table3_is_five_rules_on_vgg8_and_mobilenet_on_vww_with_the_vgg8_variant_on_request():
    suite = load_suite("table3")
    methods = ("bp", "local-losses", "lls-square", "lls-m", "lls-mxm")
    vgg = {("main", m, "vgg8", d, 300, s) for d in ("cifar10-aug", "cifar100-aug", "imagenette-aug", "tinyimagenet")
           for m in methods for s in SEEDS}
    mobilenet = {("vww-mobilenet", m, "mobilenetv1", "vww", 500, s) for m in methods for s in SEEDS}
    cells = expand(suite)
    assert len(cells) == 125 and signature(cells) == vgg | mobilenet
    assert all(c.config["method_options"]["basis"] == "square" for c in cells if c.method.startswith("lls"))
    with_vgg8 = expand(suite, Overrides(include=("vww-vgg8",)))
    assert signature(with_vgg8) == vgg | mobilenet | {("vww-vgg8", m, "vgg8", "vww", 300, s)
                                                       for m in methods for s in SEEDS}


def test_cell_keys_are_distinct_stable_and_survive_serialisation():
    cells = [c for name in shipped_suites() for c in expand(load_suite(name))]
    assert len({c.key for c in cells}) == len(cells)
    again = [c.key for name in shipped_suites() for c in expand(load_suite(name))]
    assert again == [c.key for c in cells]
    shipped = [Cell.from_dict(json.loads(json.dumps(c.to_dict()))) for c in cells[:5]]
    assert [c.key for c in shipped] == [c.key for c in cells[:5]]


def test_overrides_shorten_filter_and_record_the_budget():
    suite = load_suite("table2")
    full = {c.label: c for c in expand(suite)}
    cells = expand(suite, Overrides(seeds=2, epochs=3, limit_train_batches=10, methods=("bp", "lls-square"),
                                    datasets=("mnist-plain",)))
    assert sorted(c.label for c in cells) == sorted(f"{m}/smallconvl/mnist-plain/s{s}" for m in ("bp", "lls-square")
                                                    for s in (0, 1))
    for c in cells:
        assert c.config["epochs"] == 3 and c.config["limit_train_batches"] == 10
        assert c.budget == "shortened" and c.budget_overrides == {"epochs": 3, "limit_train_batches": 10}
        assert c.tags()["budget"] == "shortened" and c.key != full[c.label].key
    assert [c.seed for c in expand(suite, Overrides(seeds=(3, 7), methods=("bp",), datasets=("mnist-plain",)))] == [3, 7]
    longer = expand(suite, Overrides(epochs=200, methods=("bp",), datasets=("mnist-plain",)))
    assert {c.budget for c in longer} == {"modified"}
    unchanged = expand(suite, Overrides(epochs=100, methods=("bp",), datasets=("mnist-plain",)))
    assert {c.budget for c in unchanged} == {"paper"} and unchanged[0].key == full[unchanged[0].label].key
    variant = expand(load_suite("table1"), Overrides(datasets=("cifar10-aug",), seeds=1))
    assert {(c.model, c.dataset) for c in variant} == {("vgg8", "cifar10-aug")}  # a variant selects its cells
    with pytest.raises(ConfigError, match="no method 'nope'.*lls-square"):
        expand(suite, Overrides(methods=("nope",)))
    with pytest.raises(ConfigError, match="declares 5 seeds"):
        expand(suite, Overrides(seeds=6))
    with pytest.raises(ConfigError, match="no optional block 'x'"):
        expand(suite, Overrides(include=("x",)))


GOOD = {"name": "mine", "description": "a small suite", "seeds": 1, "settings": {"epochs": 1},
        "matrix": {"datasets": ["digits"], "models": ["smallconv"], "methods": ["bp", "lls"]}}


@pytest.mark.parametrize("change, key, message", [
    (lambda d: d["matrix"]["methods"].append("backprop"), "matrix.methods[2].method", "unknown method 'backprop'; valid methods: bp,"),
    (lambda d: d["matrix"].update(models=["resnet"]), "matrix.models[0].model", "unknown model 'resnet'; valid models:"),
    (lambda d: d["matrix"].update(datasets=["mnistt"]), "matrix.datasets[0]", "unknown dataset 'mnistt'; valid datasets:"),
    (lambda d: d["settings"].update(epochs="ten"), "settings.epochs", "must be int; got 'ten'"),
    (lambda d: d["settings"].update(lr=True), "settings.lr", "must be float"),
    (lambda d: d["settings"].update(lr_milestones=[60, "x"]), "settings.lr_milestones", "must be list[int]"),
    (lambda d: d.update(seeds="five"), "seeds", "must be a count >= 1 or a list"),
    (lambda d: d["matrix"].update(methods="bp"), "matrix.methods", "must be a non-empty list"),
    (lambda d: d.pop("matrix"), "matrix", "missing (required)"),
    (lambda d: d.update(name="my suite"), "name", "must be letters, digits"),
    (lambda d: d["matrix"].pop("models"), "matrix.models", "missing (required)"),
    (lambda d: d.update(epochs=3), "epochs", "unknown key; allowed keys: name, description"),
    (lambda d: d["settings"].update(device="cuda"), "settings.device", "chosen when the suite runs"),
    (lambda d: d["settings"].update(seed=3), "settings.seed", "unknown setting (set by the matrix)"),
    (lambda d: d["matrix"].update(methods=[{"method": "lls", "options": {"basis": "triangle"}}]),
     "matrix.methods[0].options", "basis='triangle' is not allowed; valid values: sin-ref, square, random, cos, sin-f64, square-pm1, random-cxt"),
    (lambda d: d.update(overrides=[{"when": {"model": "vgg8"}, "settings": {"epochs": 2}}]), "overrides[0].when.model",
     "'vgg8' matches no cell"),
])
def test_a_bad_suite_file_names_the_file_the_key_and_the_allowed_values(tmp_path, change, key, message):
    data = json.loads(json.dumps(GOOD))
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SuiteError) as info:
        load_suite(str(path))
    text = str(info.value)
    assert text.startswith(f"{path}: {key}: "), text
    assert message in text


def test_the_good_base_of_the_bad_files_loads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert [c.label for c in expand(load_suite(str(path)))] == ["bp/smallconv/digits/s0", "lls/smallconv/digits/s0"]


def test_cli_reports_a_bad_suite_in_one_line_and_dry_run_records_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**GOOD, "matrix": {**GOOD["matrix"], "methods": ["bp", "nope"]}}))
    result = CliRunner().invoke(cli, ["run", "suite", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"Error: {bad}: matrix.methods[1].method: unknown method 'nope'; valid methods: {', '.join(METHODS.names())}"]
    result = CliRunner().invoke(cli, ["run", "suite", "table2", "--dry-run", "--seeds", "1", "--epochs", "2"])
    assert result.exit_code == 0, result.output
    assert "24 cells; budget: shortened (epochs=2)" in result.output
    assert "drtp-conv-cifar" in result.output and "pepita-fc" in result.output
    assert list(tmp_path.iterdir()) == [bad]  # no mlflow.db, no run dir


def test_a_suite_file_that_is_not_utf8_is_one_line(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_bytes(b"\xff\xfe\x00bad")
    result = CliRunner().invoke(cli, ["run", "suite", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {bad}: not a UTF-8 text file (byte 0xff at offset 0); a suite is a YAML file in UTF-8"]
