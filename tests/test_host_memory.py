"""The host-memory policy: `retain` stops the page faults of a training step, changes no number,
and is applied by every command and recorded with each run."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from llsbench import host_memory
from llsbench.cli import cli
from llsbench.host_memory import ENV

# A conv layer's forward and backward on SmallConvL's first map at batch 128 (48 MiB): above
# glibc's largest mmap threshold, so under `system` each step maps and faults it in afresh.
STEP = r"""
import json, resource, sys, torch
from llsbench.host_memory import apply_host_memory_policy
policy = apply_host_memory_policy(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)
conv = torch.nn.Conv2d(3, 96, 3, padding=1)
x = torch.randn(128, 3, 32, 32)
faults, sums = [], []
for _ in range(6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    conv.zero_grad()
    h = torch.nn.functional.leaky_relu(conv(x))
    (h * h).mean().backward()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    sums.append(conv.weight.grad.double().sum().item())
print(json.dumps({"policy": policy, "faults": faults, "grad_sum": sums[-1]}))
"""


def step_in_fresh_process(policy: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEP, policy], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(host_memory._glibc() is None,
                    reason="`retain` is glibc's mallopt; another C library keeps its own policy (next test)")
def test_retain_stops_page_faults_and_changes_no_number():
    system, retain = step_in_fresh_process("system"), step_in_fresh_process("retain")
    assert (system["policy"], retain["policy"]) == ("system", "retain")
    map_pages = 128 * 96 * 32 * 32 * 4 // 4096
    after_first = {"system": system["faults"][1:], "retain": retain["faults"][1:]}
    assert min(after_first["system"]) > 2 * map_pages  # every big map faulted in afresh, every step
    # a reused heap block needs no fault; now and then glibc still carves one from fresh heap
    assert sum(after_first["retain"]) < 0.3 * sum(after_first["system"]), after_first
    assert retain["grad_sum"] == system["grad_sum"]


def test_without_glibc_the_policy_is_left_alone_and_reported_as_system(monkeypatch):
    monkeypatch.setattr(host_memory, "_glibc", lambda: None)
    assert host_memory.apply_host_memory_policy("retain") == "system"


def test_a_bad_policy_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(ENV, "huge")
    result = CliRunner().invoke(cli, ["list", "models"])
    assert result.exit_code == 2
    assert f"{ENV}='huge' is not a host-memory policy; valid: retain, system" in result.output


def test_bench_names_the_policy_it_ran_under(monkeypatch):
    monkeypatch.setenv(ENV, "retain")
    result = CliRunner().invoke(cli, ["bench", "--model", "smallconv", "--dataset", "mnist", "--methods", "bp",
                                      "--batch-size", "4", "--steps", "1", "--warmup", "0", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "host memory retain" in result.output
