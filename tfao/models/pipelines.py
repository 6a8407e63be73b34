"""``tfao.pipeline(task, model=...)``: task-named callables over the registry's model families."""

from __future__ import annotations

from tfao.models import registry
from tfao.models.sources import open_source


def pipeline(task: str, model, *, mode: str | None = None, home=None):
    """A callable for ``task`` over ``model``: a model folder, a model manifest id in the weave of the node
    home ``home``, or a ModelSource; the family that reads it is found in the registry."""
    if not registry.serves(task):
        raise ValueError(f"unknown task {task!r} (supported: {', '.join(registry.tasks())})")
    source = open_source(model, home)
    family = registry.family_of(source, task)
    return family.tasks[task](registry.load(family, source), mode=mode)
