"""Generated gRPC stubs of proto/serverless-sim.proto (run `make proto` to regenerate)."""

from scaler.wire import serverless_sim_pb2 as pb
from scaler.wire import serverless_sim_pb2_grpc as rpc

__all__ = ["pb", "rpc"]
