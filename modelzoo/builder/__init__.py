"""Building zoos: recipe -> plan of groups -> trained groups (local or Ray) -> zoo shards.

- :mod:`~modelzoo.builder.recipe`: the YAML recipe (architecture, source, grid, seeds, epochs).
- :mod:`~modelzoo.builder.groups`: the recipe's models cut into populations, and training one
  group into zoo rows (what a worker runs).
- :mod:`~modelzoo.builder.ray_executor`: groups as Ray tasks; the driver writes their rows.
- :mod:`~modelzoo.builder.zoo`: :func:`build_zoo`, the resumable build itself.
- :mod:`~modelzoo.builder.plan`: a finished zoo checked against the plan of its recipe(s).
"""

from __future__ import annotations

from modelzoo.builder.groups import GroupJob, group_tables, plan_groups, resume_plan
from modelzoo.builder.zoo import build_zoo, numerics_key, resolve_device

__all__ = [
    "GroupJob",
    "build_zoo",
    "group_tables",
    "numerics_key",
    "plan_groups",
    "resolve_device",
    "resume_plan",
]
