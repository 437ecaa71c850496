"""The core's own registrations: tasks, dataset formats, text encoders and seq2seq backbones.

They go through the same hooks as any plugin, so `indexbench plugins` lists them the same way.
"""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl
def register_tasks(register):
    from .tasks import all_tasks

    for task in all_tasks():
        register(task)


@hookimpl
def register_datasets(register):
    from .datasets import builtin_datasets

    for entry in builtin_datasets():
        register(entry)


@hookimpl
def register_encoders(register):
    from .encoders import builtin_encoders

    for entry in builtin_encoders():
        register(entry)


@hookimpl
def register_backbones(register):
    from .generative.backbones import builtin_backbones

    for entry in builtin_backbones():
        register(entry)
