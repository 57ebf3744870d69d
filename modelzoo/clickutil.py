"""Click helpers shared by the ``zoo``, ``sane`` and ``bench`` command groups."""

from __future__ import annotations

from typing import Any

import click

from modelzoo.errors import ZooError

#: ``-h`` as well as ``--help`` (subcommands inherit it from their group's context).
HELP_OPTIONS = ["-h", "--help"]


class ZooGroup(click.Group):
    """The click group of every toolkit CLI: ``-h``/``--help`` everywhere, usage errors exit 2
    (click's default) and toolkit errors (:class:`~modelzoo.errors.ZooError`) become one clean
    ``Error: ...`` line on stderr with exit code 2, never a traceback.

    Subgroups made with ``@group.group()`` are ZooGroups too.
    """

    group_class = type  # subgroups get this class as well

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = dict(kwargs.pop("context_settings", None) or {})
        settings.setdefault("help_option_names", HELP_OPTIONS)
        super().__init__(*args, context_settings=settings, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:  # noqa: D102
        try:
            return super().invoke(ctx)
        except ZooError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)
