"""`specperf data rebuild [--check]`: rebuild every derived shipped file (perfmodel/data) from the
measured ones as perfmodel/data/manifest.json says (perfmodel.data_build), from a checkout (the
measured inputs of the derived files live in its evidence/ folder)."""
from __future__ import annotations

from typing import Annotated

import typer

from .common import handle_errors


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="The shipped data: rebuild its derived files.", no_args_is_help=True)

    @data.command("rebuild")
    @handle_errors
    def rebuild_cmd(check: Annotated[bool, typer.Option(
            "--check", help="Rebuild into a temporary folder and compare bytes; exit 1 if a file differs.")] = False,
                    write_evidence: Annotated[bool, typer.Option(
            "--write-evidence", help="Also rewrite the shape-check error files in evidence/.")] = False):
        """Rebuild perfmodel/data's derived files (fits, glue, merged tables, error bands)."""
        from specperf.perfmodel.data_build.cli import main

        code = main((["--check"] if check else []) + (["--write-evidence"] if write_evidence else []))
        if code:
            raise typer.Exit(code)

    app.add_typer(data, name="data")
