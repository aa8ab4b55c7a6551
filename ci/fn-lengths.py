#!/usr/bin/env python3
"""Function lengths of Rust sources, for the "small functions" standard.

Usage: python3 ci/fn-lengths.py [--top N] [--max N] [--exclude SUBSTR]... PATH...

Counts, for every `fn` item with a body, the lines from its `fn` line to
its closing brace (both included). Test code is left out: files under a
`tests/` or `benches/` directory, files named `tests.rs`, and everything
after a `#[cfg(test)]` line at the start of a line (the usual test module
at the end of a file). Doc comments and attributes above a function are
not counted. Prints the count, median, p90 and max, and the longest
functions; with `--max N`, exits 1 if any function is longer than N lines.

The scan is lexical (it skips strings, chars and comments when matching
braces), not a parser: good enough to compare layouts, not a proof.
"""
import argparse
import os
import re
import sys

FN_RE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
                   r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)")


def strip_code(text):
    """Returns text with strings, chars and comments blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 40]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """Yields (name, first line, length) for every fn with a body in path."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = strip_code(text).split("\n")
    # Leave out the test module at the end of the file.
    for k, line in enumerate(lines):
        if re.match(r"^\s*#\[cfg\(test\)\]", line) and k + 1 < len(lines) \
                and re.match(r"^\s*(pub(\([^)]*\))?\s+)?mod\s", lines[k + 1]):
            lines = lines[:k]
            break
    for k, line in enumerate(lines):
        m = FN_RE.match(line)
        if not m:
            continue
        depth, opened = 0, False
        for j in range(k, len(lines)):
            for ch in lines[j]:
                if ch == "{":
                    depth, opened = depth + 1, True
                elif ch == "}":
                    depth -= 1
                elif ch == ";" and not opened and depth == 0:
                    break  # a declaration without a body
            else:
                if opened and depth == 0:
                    yield m.group(1), k + 1, j - k + 1
                    break
                continue
            break


def is_test_path(path):
    parts = path.replace("\\", "/").split("/")
    return "tests" in parts[:-1] or "benches" in parts[:-1] or parts[-1] == "tests.rs"


def collect(paths, excludes):
    rows = []
    for root in paths:
        files = [root] if os.path.isfile(root) else [
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")]
        for path in sorted(files):
            if is_test_path(path) or any(e in path for e in excludes):
                continue
            for name, line, length in functions(path):
                rows.append((length, f"{path}:{line}", name))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--max", type=int, default=None)
    ap.add_argument("--exclude", action="append", default=[])
    args = ap.parse_args()
    rows = collect(args.paths, args.exclude)
    if not rows:
        print("no functions found")
        return 0
    lengths = sorted(r[0] for r in rows)
    n = len(lengths)
    median = lengths[(n - 1) // 2]
    p90 = lengths[min(n - 1, int(0.9 * n))]
    print(f"functions: {n}  median: {median}  p90: {p90}  max: {lengths[-1]}")
    for length, where, name in sorted(rows, reverse=True)[:args.top]:
        print(f"{length:5}  {name}  {where}")
    if args.max is not None and lengths[-1] > args.max:
        print(f"longer than {args.max} lines: {sum(1 for x in lengths if x > args.max)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
