"""Prefect tasks: thin wrappers over distilflow.pipeline that add logging and retries."""
