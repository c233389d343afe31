"""python -m serving: a Triton Inference Server for a trained checkpoint (see serving/models.py)."""
from __future__ import annotations

import sys

from contract.console import entry_point, say

from .args import parser
from .server import serve


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def body() -> dict:
        counts = serve(args)  # Ctrl-C while loading, before the server runs, is `interrupted`
        say("stopped")
        return counts

    return entry_point(body)


if __name__ == "__main__":
    sys.exit(main())
