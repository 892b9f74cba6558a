"""Developer sessions. `nox -s tests` runs the test suite in the environment it is started
from (install first with `pip install -e ".[test]"`, as README.md says), so CI and users test
exactly the install they made."""
import nox

nox.options.sessions = ["tests"]


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The whole test suite (uses real MNIST from LLSBENCH_DATA_DIR)."""
    session.run("python", "-m", "pytest", "-q", "-ra", "--durations=15", *session.posargs)


@nox.session(venv_backend="none")
def quick(session: nox.Session) -> None:
    """Tests that need no dataset on disk and train for seconds at most."""
    session.run("python", "-m", "pytest", "-q", "-m", "not slow", *session.posargs)


@nox.session(venv_backend="none")
def cuda(session: nox.Session) -> None:
    """The CUDA paths: every rule trains on the GPU, data stays on the device."""
    session.run("python", "-m", "pytest", "-q", "-m", "cuda", *session.posargs)


@nox.session(venv_backend="none")
def reference(session: nox.Session) -> None:
    """Step time against the LLS authors' code (../shared/bench), in one process and as each is
    run: `nox -s reference -- --model vgg8 --pairs 2 -- --threads 1 --rounds 5`."""
    session.run("python", "-m", "llsbench.profiling.against_reference", *session.posargs)
