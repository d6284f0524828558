#!/usr/bin/env python3
"""Compare two driver outputs scenario by scenario ("== name" blocks).

  compare.py LABEL_A FILE_A LABEL_B FILE_B   print a diff per differing scenario; exit 1 if any
  compare.py --names FILE_A FILE_B           print the differing scenario names (space separated)
"""
import difflib
import sys


def blocks(path):
    order, res, cur = [], {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("== "):
                cur = line[3:]
                if cur in res:  # a resumed run repeats nothing, but be safe
                    cur = cur + " (again)"
                order.append(cur)
                res[cur] = []
            elif line.startswith("# "):
                continue  # a driver banner (printed again when a run resumes)
            elif cur is not None:
                res[cur].append(line)
            # lines before the first scenario (driver banner) are not compared
    return order, res


def differing(a, b):
    oa, ra = a
    ob, rb = b
    names = oa + [n for n in ob if n not in ra]
    return [n for n in names if ra.get(n) != rb.get(n)], names


def main():
    if sys.argv[1] == "--names":
        bad, _ = differing(blocks(sys.argv[2]), blocks(sys.argv[3]))
        print(" ".join(bad))
        return 0
    la, fa, lb, fb = sys.argv[1:5]
    a, b = blocks(fa), blocks(fb)
    bad, names = differing(a, b)
    for n in bad:
        x = a[1].get(n)
        y = b[1].get(n)
        print("--- scenario %s: %s vs %s" % (n, la, lb))
        if x is None:
            print("    (missing in %s)" % la)
            x = []
        if y is None:
            print("    (missing in %s)" % lb)
            y = []
        for line in list(difflib.unified_diff(x, y, la, lb, lineterm="", n=2))[2:]:
            print("    " + line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
