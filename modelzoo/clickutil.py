"""Click helpers shared by the ``zoo`` command groups."""

from __future__ import annotations

import click

from modelzoo.errors import ZooError


class ZooGroup(click.Group):
    """Click group that turns toolkit errors into clean one-line messages (exit code 2)."""

    def invoke(self, ctx: click.Context):  # noqa: D102
        try:
            return super().invoke(ctx)
        except ZooError as e:
            click.echo(f"Error: {e}", err=True)
            ctx.exit(2)
