"""python -m bench [--quick] [--only etl,loader,train,inference,scale,accuracy,serving,vae,compare]
[--data NAME=PATH ...] [--split NAME=DIR ...]:
run benchmarks, write bench/results/*.json and regenerate BENCHMARKS.md. With --data, `accuracy` measures those
real data sets (your files, never the repository's) instead of the synthetic sizes; `--only full_ranking --split
NAME=DIR` measures given splits of real data end to end (bench/full_ranking.py)."""
from __future__ import annotations

import argparse
import sys
import time

from . import accuracy, compare, etl, full_ranking, inference, loader, report, scale, serving, train, vae

BENCHMARKS = {"etl": etl, "train": train, "inference": inference, "loader": loader, "scale": scale,
              "accuracy": accuracy, "serving": serving, "vae": vae, "compare": compare, "full_ranking": full_ranking}
DEFAULT = [name for name in BENCHMARKS if name != "full_ranking"]  # that one needs real data (--split)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, single runs (a few minutes)")
    p.add_argument("--only", default=",".join(DEFAULT), help="comma-separated subset")
    p.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                   help="real data for `accuracy`: a prepared folder or a raw ratings file, named as in the table "
                        "(ncf-ml-1m, ml-100k, ml-1m-pairs get the published figures beside them); repeatable")
    p.add_argument("--split", action="append", default=[], metavar="NAME=DIR",
                   help="a given split of real data for `full_ranking`: DIR holds train.txt and test.txt (per-user "
                        "lines, or .csv), e.g. from `python -m bench.given_split`; repeatable")
    args = p.parse_args(argv)

    def named(values, flag):
        found = {}
        for item in values:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                p.error(f"{flag} {item!r}: expected NAME=PATH")
            found[name] = path
        return found

    real, splits = named(args.data, "--data"), named(args.split, "--split")
    for name in args.only.split(","):
        begin = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        if name == "accuracy" and real:
            accuracy.run_real(real, args.quick)
        elif name == "full_ranking" and splits:
            full_ranking.run_splits(splits, args.quick)
        else:
            BENCHMARKS[name].run(args.quick)
        print(f"[bench] {name} done in {time.perf_counter() - begin:.0f}s", file=sys.stderr, flush=True)
    print(f"[bench] wrote {report.write()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
