#!/usr/bin/env python3
"""Count rows of a TSV whose text overlaps texts of other TSV files.

Usage: python3 scripts/check_overlap.py [--lines] [-n N] FILE [AGAINST ...]

A row of FILE overlaps an AGAINST file when its text equals a text there, or
when the two share any substring of N characters (default 10). Every TSV has a
header line with a `text` column. Only counts are printed, one line per AGAINST
file, so the other files' texts never reach the screen; `--lines` also prints
the line numbers of FILE's overlapping rows (FILE's own lines, never the other
file's). Exit status: 0 if no row overlaps, 1 if any does, 2 on bad input.
"""

import sys


def read_texts(path):
    """(line number, text) for every data row of a TSV with a `text` column."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    header = lines[0].rstrip("\r").split("\t")
    if "text" not in header:
        raise ValueError(f"{path}: no `text` column in the header")
    col = header.index("text")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        line = line.rstrip("\r")
        if not line:
            continue
        fields = line.split("\t")
        if col < len(fields):
            rows.append((number, fields[col]))
    return rows


def shingles(text, n):
    return {text[i : i + n] for i in range(len(text) - n + 1)}


def main(argv):
    args = list(argv)
    show_lines = False
    n = 10
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        if flag == "--lines":
            show_lines = True
        elif flag == "-n" and args:
            n = int(args.pop(0))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    if not args or n < 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        mine = read_texts(args[0])
        others = {path: read_texts(path) for path in args[1:]}
    except (OSError, ValueError) as err:
        print(err, file=sys.stderr)
        return 2

    total = 0
    for path, rows in others.items():
        exact = {text for _, text in rows}
        grams = set()
        for _, text in rows:
            grams |= shingles(text, n)
        equal = []
        shared = []
        for number, text in mine:
            if text in exact:
                equal.append(number)
            elif shingles(text, n) & grams:
                shared.append(number)
        count = len(equal) + len(shared)
        total += count
        print(f"{path}: {count} overlapping rows "
              f"({len(equal)} equal, {len(shared)} share a {n}-char substring) "
              f"of {len(mine)}")
        if show_lines and count:
            print("  lines of " + args[0] + ": "
                  + " ".join(str(x) for x in sorted(equal + shared)))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
