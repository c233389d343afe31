"""python -m bench [--quick] [--only etl,loader,train,inference,scale,accuracy,serving,vae]: run benchmarks, write
bench/results/*.json and regenerate BENCHMARKS.md."""
from __future__ import annotations

import argparse
import sys
import time

from . import accuracy, etl, inference, loader, report, scale, serving, train, vae

BENCHMARKS = {"etl": etl, "train": train, "inference": inference, "loader": loader, "scale": scale,
              "accuracy": accuracy, "serving": serving, "vae": vae}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, single runs (a few minutes)")
    p.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    args = p.parse_args(argv)
    for name in args.only.split(","):
        begin = time.perf_counter()
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        BENCHMARKS[name].run(args.quick)
        print(f"[bench] {name} done in {time.perf_counter() - begin:.0f}s", file=sys.stderr, flush=True)
    print(f"[bench] wrote {report.write()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
