"""Prefect tasks: thin wrappers over distilflow's jobs and operations that add logging, retries and
progress artifacts. The stages themselves run as separate processes through DVC."""
