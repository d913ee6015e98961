"""Generate the Python stubs for proto/serverless-sim.proto into src/scaler/wire/.

The contract's file name has a hyphen, which is not a valid module name, so the proto is
compiled from a temporary copy named ``scaler/wire/serverless_sim.proto``: the generated
modules then import each other as ``scaler.wire.serverless_sim_pb2``.

Usage: python tools/gen_proto.py [OUT_DIR]   (default: src/)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "proto" / "serverless-sim.proto"
PACKAGE_PATH = Path("scaler") / "wire"
SRC = ROOT / "src"
GENERATED = ("serverless_sim_pb2.py", "serverless_sim_pb2.pyi", "serverless_sim_pb2_grpc.py")


def generate(out_root: Path) -> list[Path]:
    """Compile the contract into ``out_root/scaler/wire`` and return the written files."""
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(tmp)
        (include / PACKAGE_PATH).mkdir(parents=True)
        shutil.copyfile(SOURCE, include / PACKAGE_PATH / "serverless_sim.proto")
        (out_root / PACKAGE_PATH).mkdir(parents=True, exist_ok=True)
        args = [
            "grpc_tools.protoc",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(PACKAGE_PATH / "serverless_sim.proto"),
        ]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on " + str(SOURCE))
    return [out_root / PACKAGE_PATH / name for name in GENERATED]


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else SRC
    for path in generate(out):
        print(f"wrote {path}")
