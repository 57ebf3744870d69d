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


def verify_option(effect: str) -> Any:
    """The ``--verify/--no-verify`` option (default on) of commands that read a zoo.

    Args:
        effect: what ``--no-verify`` means for this command's output (appended to the help).
    """
    return click.option(
        "--verify/--no-verify", default=True, show_default=True,
        help="Check every shard of the zoo against the sha256 recorded in its zoo.json "
             "before using it (a corrupt shard stops the command, naming the shard); "
             "unchanged shards verified before are not re-hashed (ZOO/.verified.json). "
             f"--no-verify skips the check: {effect}")
