"""Commands that list what is installed: plugins, indexers, tasks, encoders, backbones, datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import DataDir, app, console


@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List installed plugins, their versions and what each registers."""
    import json

    from rich.table import Table

    from ..registry import get_registry

    infos = get_registry().plugins
    if as_json:
        print(json.dumps([vars(i) for i in infos], indent=2))
        return
    table = Table(title="indexbench plugins", title_justify="left")
    for col in ("plugin", "version", "registers"):
        table.add_column(col)
    for info in infos:
        if info.error:
            what = f"[red]failed to load: {info.error}[/]"
        else:
            what = "; ".join(f"{kind}s: {', '.join(names)}" for kind, names in info.registers.items() if names) or "-"
        what += "".join(f"\n[yellow]{warning}[/]" for warning in info.warnings)
        table.add_row(info.name + (" [dim](built-in)[/]" if info.builtin and "built-in" not in info.name else ""),
                      info.version, what)
    console().print(table)


@app.command()
def indexers() -> None:
    """List indexers with their kind and options (set as name:key=value)."""
    import dataclasses

    from rich.table import Table

    from ..generative.options import GenerativeOptions
    from ..registry import get_registry

    engine_fields = {f.name for f in dataclasses.fields(GenerativeOptions)}
    table = Table(title="indexers", title_justify="left",
                  caption="+ engine: the generative engine's options (backbone, epochs, max_steps, lr, "
                          "num_beams, ...; see README) apply too")
    for col in ("indexer", "kind", "plugin", "options (defaults)", "description"):
        table.add_column(col)
    for name, entry in sorted(get_registry().indexers.items()):
        inherits = issubclass(entry.config_class, GenerativeOptions)
        opts = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(entry.config_class)
                         if f.default is not dataclasses.MISSING
                         and not (inherits and f.name in engine_fields))
        if inherits:
            opts = f"{opts}, + engine" if opts else "+ engine"
        table.add_row(name, entry.kind, entry.plugin, opts or "-", entry.description)
    console().print(table)


@app.command()
def tasks() -> None:
    """List tasks with their metrics."""
    from rich.table import Table

    from ..registry import get_registry

    table = Table(title="tasks", title_justify="left")
    for col in ("task", "metrics", "description"):
        table.add_column(col)
    for name, task in sorted(get_registry().tasks.items()):
        table.add_row(name, ", ".join(task.metrics), task.description)
    console().print(table)


def print_entries(title: str, entries: dict) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in (title.rstrip("s"), "plugin", "description"):
        table.add_column(col)
    for name, entry in sorted(entries.items()):
        table.add_row(name, entry.plugin, entry.description)
    console().print(table)


@app.command()
def encoders() -> None:
    """List text encoders (for dense retrieval and two-stage semantic IDs)."""
    from ..registry import get_registry

    print_entries("encoders", get_registry().encoders)


@app.command()
def backbones() -> None:
    """List seq2seq backbones of the generative engine (a local checkpoint path also works)."""
    from ..registry import get_registry

    print_entries("backbones", get_registry().backbones)


@app.command()
def datasets(data_dir: DataDir = None) -> None:
    """List datasets and whether their files are present and valid."""
    from rich.markup import escape
    from rich.table import Table

    from .. import paths
    from ..datasets import dataset_identity, dataset_status
    from ..registry import get_registry

    root = paths.data_dir(data_dir)
    table = Table(title=f"datasets (data dir: {root})", title_justify="left")
    for col in ("dataset", "status", "identity", "tasks", "description"):
        table.add_column(col)
    colours = {"ok": "green", "built-in": "green", "missing": "yellow", "invalid": "red"}
    identity_colours = {"canonical": "green", "same-statistics": "green", "differs": "yellow", "unknown": "white"}
    for name, entry in sorted(get_registry().datasets.items()):
        status, message = dataset_status(entry, root)
        identity = ""
        if status in ("ok", "built-in"):
            found = dataset_identity(entry, root)
            identity = f"[{identity_colours.get(found['status'], 'white')}]{escape(found['summary'])}[/]"
        table.add_row(name, f"[{colours.get(status, 'white')}]{status}[/] {escape(message)}", identity,
                      ", ".join(entry.tasks) or "all", entry.description)
    console().print(table)
