"""`python -m llsbench.profiling.against_reference`: the script runs in fresh processes under
each host-memory policy, and the three views are computed from the right runs."""
import json
import textwrap

import pytest

from llsbench.profiling.against_reference import main

FAKE = textwrap.dedent("""
    import json, sys
    from llsbench.host_memory import host_memory_policy
    assert sys.argv[1:] == ["--model", "tiny", "--threads", "1", "--json"], sys.argv
    ours = 1.0 if host_memory_policy() == "retain" else 2.0
    print("noise before the result")
    print(json.dumps({"median_step_s": {"reference-bp": 2.0, "reference-lls": 1.6,
                                        "llsbench-bp": ours, "llsbench-lls": ours * 0.75}}))
""")


def test_views_compare_the_runs_of_each_policy(tmp_path, capsys):
    script = tmp_path / "bench.py"
    script.write_text(FAKE)
    main(["--script", str(script), "--model", "tiny", "--pairs", "2", "--", "--threads", "1"])
    out = capsys.readouterr().out
    assert out.count("pair ") == 2
    assert "one process, both under system: bp 1.00, lls 1.07" in out
    assert "one process, both under retain: bp 2.00, lls 2.13" in out
    assert "as each is run (reference: system, llsbench: retain): bp 2.00, lls 2.13" in out
    assert "llsbench LLS/BP under retain: lls/bp 0.75" in out
    assert json.loads(out.splitlines()[0].split("system ", 1)[1])["llsbench-bp"] == 2.0


def test_a_missing_script_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--script", str(tmp_path / "nope.py")])
    assert stop.value.code == 2
    assert "nope.py: no such file" in capsys.readouterr().err
