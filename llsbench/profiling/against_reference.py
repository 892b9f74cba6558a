"""llsbench's step time against the LLS authors' code, in one process and as each is run.

`../shared/bench/ref_vs_llsbench.py` times both codes interleaved in one process, so both run
under the same host-memory policy: it measures the code alone. A user runs the reference's own
scripts under glibc's default policy and llsbench under `retain` (`llsbench/host_memory.py`).
This runs that script in fresh processes, alternately under `system` and `retain`, and prints
both views; the script itself (and with it the reference code) only ever runs in a subprocess.

    python -m llsbench.profiling.against_reference --model smallconvl --pairs 3 -- --threads 1
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

DEFAULT_SCRIPT = Path("../shared/bench/ref_vs_llsbench.py")
_UNDER_POLICY = ("import runpy, sys; from llsbench.host_memory import apply_host_memory_policy; "
                 "apply_host_memory_policy(sys.argv[1]); sys.argv = sys.argv[2:]; "
                 "runpy.run_path(sys.argv[0], run_name='__main__')")
RULES = ("bp", "lls")


def timed_run(script: Path, policy: str, args: list[str]) -> dict[str, float]:
    """Median step seconds of the script's four steps, in a fresh process under `policy`."""
    cmd = [sys.executable, "-c", _UNDER_POLICY, policy, str(script), *args, "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_step_s"]


def views(system: list[dict], retain: list[dict]) -> dict[str, dict[str, float]]:
    """Reference step / llsbench step for each rule: medians over the runs of each view."""
    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    return {
        "one process, both under system": {r: med(system, f"reference-{r}") / med(system, f"llsbench-{r}") for r in RULES},
        "one process, both under retain": {r: med(retain, f"reference-{r}") / med(retain, f"llsbench-{r}") for r in RULES},
        "as each is run (reference: system, llsbench: retain)":
            {r: med(system, f"reference-{r}") / med(retain, f"llsbench-{r}") for r in RULES},
        "llsbench LLS/BP under retain": {"lls/bp": med(retain, "llsbench-lls") / med(retain, "llsbench-bp")},
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--script", type=Path, default=DEFAULT_SCRIPT, help="the interleaved benchmark script")
    ap.add_argument("--model", default="smallconvl")
    ap.add_argument("--pairs", type=int, default=3, help="system/retain process pairs, alternated")
    ap.add_argument("script_args", nargs="*", help="passed on to the script (after --), e.g. --threads 1")
    a = ap.parse_args(argv)
    if not a.script.is_file():
        ap.error(f"--script {a.script}: no such file (the benchmark lies in ../shared/bench/)")
    args = ["--model", a.model, *a.script_args]
    system, retain = [], []
    for i in range(a.pairs):
        system.append(timed_run(a.script, "system", args))
        retain.append(timed_run(a.script, "retain", args))
        print(f"pair {i + 1}: system {json.dumps(system[-1])}\n        retain {json.dumps(retain[-1])}", flush=True)
    print(f"\n{a.model}, {a.pairs} process pairs; speed-up = reference step / llsbench step (median of runs)")
    for view, ratios in views(system, retain).items():
        print(f"  {view}: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
