"""scaler: a serverless instance scaler (Assign/Idle over gRPC) with an FSM per instance."""

__version__ = "0.1.0"
