"""Benchmarks: ``python -m bench.rpc`` (gRPC latency, throughput, memory, FSM cost) and
``python -m bench.policies`` (policies x traces).

``make bench*`` runs these modules with the venv's Python and no ``PYTHONPATH``, so the scaler
package in ``src/`` is put on the path here (pytest and ``./scaler`` do the same their own way).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_SRC = str(ROOT / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)
