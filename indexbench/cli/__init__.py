"""The `indexbench` command: a thin Typer layer over `indexbench.api`, `indexbench.runner` and
friends. The application and its shared pieces are in `app`; each command group in its module
(`running`, `results`, `reporting`, `listing`), registered on import."""

from __future__ import annotations

from importlib import import_module

from .app import app, sigterm_unwinds

# Importing a command module registers its commands, in the order --help lists them.
for _module in ("running", "results", "reporting", "listing"):
    import_module(f"{__name__}.{_module}")


def main() -> None:
    app()


__all__ = ["app", "main", "sigterm_unwinds"]
