"""python -m serving: a Triton Inference Server for a trained checkpoint (see serving/models.py)."""
from __future__ import annotations

import json
import sys

from contract.errors import UserError, interrupted, print_error

from .args import parser
from .server import say, serve


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        counts = serve(args)
    except UserError as exc:
        return print_error(exc)
    except KeyboardInterrupt:  # Ctrl-C while loading, before the server runs
        return interrupted()
    say("stopped")
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
