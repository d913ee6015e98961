"""simulator: our replay of the serverless scaler challenge (dataset reader, scorer, platform)."""
