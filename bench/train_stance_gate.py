"""Train the stance cascade's relevance gate (`tasks/stance/models/stance_gate.npz`).

The training code is `bench/lib/stance_gate_training.py` (its docstring has the method, the data and
the figures); this is its command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lib.stance_gate_training import main

if __name__ == "__main__":
    # --help here; the flags (--distilled, --lora, ...) are read by main() from sys.argv
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_known_args()
    sys.exit(main())
