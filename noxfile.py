"""Developer sessions: ``nox -s tests lint typecheck docs bench``.

Every session pins torch 2.13.0 first (see .ci/constraints.txt): an unpinned
torch would pull the newest multi-GB CUDA build. On Python 3.11 that pin
takes the CPU wheel when one is on the machine; on 3.12 and 3.13 PyPI only has
the CUDA build (about 4.7 GB installed), which runs on the CPU all the same.
``nox -s tests-3.12`` runs the suite on one version.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True

CONSTRAINTS = ("-c", ".ci/constraints.txt")


def install(session: nox.Session, extras: str) -> None:
    session.install("torch==2.13.0")
    session.install("-e", f".[{extras}]", *CONSTRAINTS)


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    """The test suite (the README's test command)."""
    install(session, "dev")
    session.run("python", "-m", "pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "benchmarks", "scripts")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "scripts")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the library and the protocol fakes."""
    install(session, "dev")
    session.run("mypy", "src", "tests/fakes.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site, failing on any warning."""
    install(session, "docs")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in --quick mode (pass --full via posargs for the full run)."""
    install(session, "dev,bench")
    quick = [] if "--full" in session.posargs else ["--quick"]
    for script in sorted(__import__("pathlib").Path("benchmarks").glob("bench_*.py")):
        session.run("python", str(script), *quick)
