#!/usr/bin/env python3
"""The file map of the Rust sources at two revisions: lines per file (src/, storage/src/,
python/src/) and the largest functions, before -> after.

    python3 scripts/file_map.py [BEFORE [AFTER]] [--top N] [--min-change L]

BEFORE and AFTER are git revisions (default: 124a6c6, the parent of issue 13's first commit, and
HEAD). Files whose length changed by fewer than L lines (default 20) are left out of the table.
A function is a line that starts (after indentation) with `fn`, `pub fn`, `pub(crate) fn` and so
on, up to the line at the same indentation that closes it: what rustfmt writes.
"""

import argparse
import re
import subprocess

ROOTS = ("src/", "storage/src/", "python/src/")
FN = re.compile(r"^(\s*)(?:pub(?:\([a-z]+\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?fn\s+([A-Za-z0-9_]+)")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def files(rev: str) -> dict[str, str]:
    names = [n for n in git("ls-tree", "-r", "--name-only", rev).splitlines()
             if n.endswith(".rs") and n.startswith(ROOTS)]
    return {n: git("show", f"{rev}:{n}") for n in names}


def functions(path: str, text: str) -> list[tuple[int, str]]:
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                out.append((j - i + 1, f"{path} {m.group(2)}"))
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", nargs="?", default="124a6c6")
    ap.add_argument("after", nargs="?", default="HEAD")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--min-change", type=int, default=20)
    a = ap.parse_args()
    old, new = files(a.before), files(a.after)
    count = lambda t: len(t.splitlines())  # noqa: E731
    print(f"Rust files: {len(old)} -> {len(new)}; lines {sum(map(count, old.values())):,} -> "
          f"{sum(map(count, new.values())):,} ({a.before} -> {a.after})\n")
    print("| file | lines before | lines after |")
    print("| --- | ---: | ---: |")
    for name in sorted(set(old) | set(new)):
        b, n = count(old.get(name, "")), count(new.get(name, ""))
        if abs(b - n) >= a.min_change:
            print(f"| {name} | {b if name in old else '-'} | {n if name in new else '-'} |")
    for label, tree in (("before", old), ("after", new)):
        fns = sorted((f for p, t in tree.items() for f in functions(p, t)), reverse=True)[: a.top]
        print(f"\nlargest functions {label}: " + "; ".join(f"{what} {n}" for n, what in fns))


if __name__ == "__main__":
    main()
