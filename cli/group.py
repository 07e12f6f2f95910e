"""The top-level command group: click/typer usage errors (unknown option, missing option, a value
of the wrong type) print one line and exit 2 like every other bad input, with the JSON error
document on stdout when `--json` is among the arguments. `--help` and no-arguments help unchanged.
"""
from __future__ import annotations

import sys

from typer.core import TyperGroup

from .common import EXIT_BAD_INPUT


class OneLineErrorGroup(TyperGroup):
    """TyperGroup whose usage errors are one line (`error: …`) and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from typer import _click
        from typer._click.exceptions import NoArgsIsHelpError
        from typer.exceptions import Abort

        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except NoArgsIsHelpError as e:
            from typer import rich_utils

            rich_utils.rich_format_error(e)  # prints the help, as typer does
            rv = e.exit_code
        except _click.exceptions.UsageError as e:
            rv = _usage_error(e, "--json" in argv)
        except _click.exceptions.ClickException as e:
            e.show()
            rv = e.exit_code
        except Abort:
            _click.echo("Aborted!", file=sys.stderr)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _usage_error(e, json_out: bool) -> int:
    import json

    param = getattr(e, "param", None)
    name = param.opts[0] if param is not None and getattr(param, "opts", None) else None
    cmd = e.ctx.command_path if e.ctx is not None else "specperf"
    line = " ".join(e.format_message().split())
    if json_out:
        sys.stdout.write(json.dumps({"error": line, "value": name, "allowed": f"see `{cmd} --help`"}) + "\n")
    sys.stderr.write(f"error: {line} (see `{cmd} --help`)\n")
    return EXIT_BAD_INPUT
