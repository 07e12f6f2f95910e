"""Tables that fit the terminal: the answer's columns (`key`) always in the first table, the other
columns stacked into further tables (each repeating the `repeat` columns that name the row) when
everything does not fit the console width; `--wide` puts every column in one table. Cells are never
truncated: a text column that still does not fit folds onto more lines.

Key assumption: a rich table with the default box costs a column's widest cell + 3 characters
(border and one space of padding each side) plus 1 for the closing border.
"""
from __future__ import annotations

from dataclasses import dataclass

WIDE_FALLBACK = 400  # console width for --wide when no width can be measured (a pipe)


@dataclass(frozen=True)
class Col:
    name: str
    justify: str = "right"
    key: bool = False  # part of the answer: always in the first table
    repeat: bool = False  # names the row: repeated in every stacked table
    text: bool = False  # free text (names, sources): folds instead of being cut


def _width(cols, rows, idx) -> int:
    return 1 + sum(3 + max([len(cols[i].name)] + [len(r[i]) for r in rows]) for i in idx)


def groups(cols, rows, width: int, wide: bool = False) -> list[list[int]]:
    """Column indices of each table: all in one when `wide` or when they fit `width`."""
    everything = list(range(len(cols)))
    if wide or _width(cols, rows, everything) <= width:
        return [everything]
    rep = [i for i, c in enumerate(cols) if c.repeat]
    out = [[i for i, c in enumerate(cols) if c.key and not c.repeat]]
    for i, c in enumerate(cols):
        if c.key or c.repeat:
            continue
        if out[-1] and _width(cols, rows, rep + out[-1] + [i]) > width:
            out.append([])
        out[-1].append(i)
    return [sorted(rep + g) for g in out if g]


def render(con, title: str | None, cols, rows, wide: bool = False, **table_kw) -> None:
    """Print `rows` (lists of cell strings) as one table or as stacked tables fitting `con`."""
    from rich.table import Table

    for n, idx in enumerate(groups(cols, rows, con.width, wide)):
        t = Table(title=title if n == 0 else None, **table_kw)
        for i in idx:
            c = cols[i]
            t.add_column(c.name, justify=c.justify, no_wrap=not c.text, overflow="fold")
        for r in rows:
            t.add_row(*(r[i] for i in idx))
        con.print(t)


def console(wide: bool = False):
    """The console to print on: the terminal's width (COLUMNS, else 80 for a pipe); with `wide`, one
    wide enough that no table is split or squeezed (tables never expand to fill it)."""
    from rich.console import Console

    con = Console()
    return Console(width=max(con.width, WIDE_FALLBACK)) if wide else con


def needed_width(cols, rows) -> int:
    """Characters one table holding every column needs."""
    return _width(cols, rows, range(len(cols)))


SPREADSHEET_FORMULA = ("=", "+", "@", "\t", "\r")  # a cell starting so is a formula to a spreadsheet (OWASP CSV injection)


def scalars(d: dict) -> dict:
    """The scalar fields of `d` (lists and dicts left to --json)."""
    return {k: v for k, v in d.items() if v is None or isinstance(v, (str, int, float, bool))}


def write_csv(rows: list[dict]) -> None:
    """`rows` as CSV on stdout (columns in first-seen order; a text cell that a spreadsheet would run
    as a formula gets a leading apostrophe)."""
    import csv
    import sys

    cols: dict = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    w = csv.DictWriter(sys.stdout, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("'" + v if isinstance(v, str) and v.startswith(SPREADSHEET_FORMULA) else v)
                    for k, v in r.items()})
