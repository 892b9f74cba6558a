"""How the cells of one suite invocation are executed.

`run_suite` owns what surrounds the cells — the parent run, its counts, Ctrl-C — and hands
the cells to an `Engine`: `SequentialEngine` (the default) runs them one after the other in
this process; `llsbench.executor.ray_engine.RayEngine` runs them concurrently as Ray tasks on
this machine or a cluster. The Ray engine is imported only when asked for, so the sequential
path never imports (or starts) Ray.
"""
from llsbench.executor.engine import Engine, SequentialEngine
from llsbench.executor.progress import SuiteProgress

__all__ = ["Engine", "SequentialEngine", "SuiteProgress"]
