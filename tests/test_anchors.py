"""The anchors suite and the published-number comparison of reports."""
import textwrap

import pandas as pd
import pytest

from llsbench.reports.anchors import comparison, verdict
from llsbench.suites import expand, load_suite
from llsbench.suites.published import Published
from llsbench.suites.schema import SuiteError

SUITE = """
name: quoted
description: a suite quoting a number
seeds: 3
settings: {epochs: 2}
matrix:
  datasets: [digits]
  models: [smallconv]
  methods: [drtp]
published:
  - {dataset: digits, model: smallconv, method: drtp, metric: test_error, value: 4.0, std: 0.1, epochs: 100,
     source: "a paper, Table 1", setup: "the net"%s}
"""


def write(tmp_path, text=None):
    path = tmp_path / "quoted.yaml"
    path.write_text(textwrap.dedent(SUITE % "") if text is None else text)
    return path


def test_published_entries_are_parsed_and_checked(tmp_path):
    suite = load_suite(str(write(tmp_path)))
    (p,) = suite.published
    assert (p.dataset, p.model, p.method, p.value, p.std, p.epochs) == ("digits", "smallconv", "drtp", 4.0, 0.1, 100)
    assert p.accuracy() == 96.0
    good = textwrap.dedent(SUITE % "")
    with pytest.raises(SuiteError, match=r"published\[0\]\.metric: 'top5' is not allowed; valid values: test_error"):
        load_suite(str(write(tmp_path, good.replace("metric: test_error", "metric: top5"))))
    with pytest.raises(SuiteError, match=r"published\[0\]: \('digits', 'smallconv', 'dfa'\) is no"):
        load_suite(str(write(tmp_path, good.replace("method: drtp, metric", "method: dfa, metric"))))
    with pytest.raises(SuiteError, match=r"published\[0\]\.kind: 'mine' is not allowed; valid values: published"):
        load_suite(str(write(tmp_path, good.replace('setup: "the net"', 'setup: "the net", kind: mine'))))
    assert load_suite(str(write(tmp_path, good.replace('setup: "the net"', 'setup: "the net", kind: authors-code')))
                      ).published[0].kind == "authors-code"
    with pytest.raises(SuiteError, match=r"published\[0\]\.source: missing"):
        load_suite(str(write(tmp_path, good.replace('source: "a paper, Table 1", ', ""))))


def quote(value=4.0, std=0.1, epochs=100, note=""):
    return Published("mnist-raw", "drtp-fc", "drtp", "test_error", value, epochs, "src", "setup", std, note)


def test_verdict_is_within_two_combined_std_else_says_why():
    assert verdict(quote(), 4.25, 0.1, (100, None)) == "yes"  # |0.25| ≤ 2·√(0.1² + 0.1²) = 0.283
    assert verdict(quote(), 4.3, 0.1, (100, None)).startswith("NO: off by 0.30 pp > 2 std (0.28)")
    off = verdict(quote(), 10.0, 0.5, (2, None))
    assert off.startswith("NO: off by 6.00 pp > 2 std (1.02)") and "shorter budget: 2 epoch(s) vs 100 epochs" in off
    capped = verdict(quote(note="tanh vs relu"), 10.0, 0.5, (1, 300))
    assert "1 epoch(s) of 300 batches vs 100 epochs" in capped and capped.endswith("tanh vs relu")


def test_comparison_puts_llsbench_beside_the_quote_in_its_metric():
    table = pd.DataFrame({"dataset": ["mnist-raw"], "model": ["drtp-fc"], "method": ["drtp"], "n_seeds": [3],
                          "test_acc_mean": [90.0], "test_acc_std": [0.5]})
    accuracy = Published("mnist-raw", "drtp-fc", "drtp", "test_acc", 90.2, 100, "src", "setup")
    missing = Published("mnist-raw", "drtp-fc", "dfa", "test_acc", 97.0, 100, "src", "setup")
    frame = comparison((quote(), accuracy, missing), table, {("mnist-raw", "drtp-fc", "drtp"): (2, None)})
    error, acc, absent = (frame.iloc[i] for i in range(3))
    assert error["llsbench (mean ± std)"] == "10.00 ± 0.50" and error["quoted"] == "4.00 ± 0.10"
    assert error["source"] == "[published] src"
    assert error["Δ (pp)"] == "+6.00" and error["llsbench budget"] == "2 epoch(s)"
    assert error["within 2 std?"].startswith("NO")
    assert acc["llsbench (mean ± std)"] == "90.00 ± 0.50" and acc["quoted"] == "90.20" and acc["within 2 std?"] == "yes"
    assert absent["within 2 std?"] == "not run" and absent["llsbench (mean ± std)"] == "—"


def test_shipped_anchors_quote_a_source_for_every_number():
    suite = load_suite("anchors")
    assert len(suite.published) >= 4 and len(suite.seeds) >= 3
    for p in suite.published:
        assert p.source and p.setup and (p.epochs == 100 or p.kind == "authors-code")
    assert {p.method for p in suite.published if p.kind == "published"} == {"drtp", "dfa-bce"}


def test_anchor_dfa_cells_are_the_drtp_authors_dfa_whatever_dfas_default():
    """The DRTP authors' DFA (Kaiming-uniform B, BCE on a sigmoid, no 1/N) is set explicitly, so
    these cells compute what they computed when `dfa`'s default was that B."""
    cells = [c for c in expand(load_suite("anchors")) if c.method == "dfa"]
    assert cells and {c.method_label for c in cells} == {"dfa-bce"}
    assert all(c.config["method_options"] == {"init": "kaiming", "signal_reduction": "sum", "output_loss": "bce"}
               for c in cells)


def test_anchor_pepita_cells_use_the_authors_mnist_command():
    """GiorgiaD/PEPITA's README MNIST command: --eta 0.1 --batch_size 64 --update_type mom (0.9), eta x0.1 at 60, 90."""
    cells = [c for c in expand(load_suite("anchors")) if c.method == "pepita"]
    assert cells and {(c.config["optimizer"], c.config["lr"], c.config["momentum"], c.config["batch_size"],
                       tuple(c.config["lr_milestones"])) for c in cells} == {("sgd", 0.1, 0.9, 64, (60, 90))}
