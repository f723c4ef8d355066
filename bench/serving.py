"""The served student's latency as a client sees it: MLflow's scoring server for the champion on
127.0.0.1, the worked example sent again and again over HTTP, median and 90th percentile.

    python bench/serving.py [--store sqlite:///mlruns/mlflow.db] [--model distilflow-student] [--requests 50]

Prints the answer (top-k tokens with scores) and the timings. Needs a registered champion (`make run`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import urllib.request

import mlflow

from distilflow.ops.local_server import free_port, local_server, scoring_server_command

SENTENCE = "I completed writing my [MASK]."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="sqlite:///mlruns/mlflow.db")
    parser.add_argument("--model", default="distilflow-student")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    uri = f"models:/{args.model}@champion"
    mlflow.set_tracking_uri(args.store)
    version = mlflow.MlflowClient().get_model_version_by_alias(args.model, "champion")
    body = json.dumps({"inputs": [SENTENCE], "params": {"top_k": 5}}).encode()
    port = free_port()
    with local_server(scoring_server_command(uri, port), "/ping", port, env={"MLFLOW_TRACKING_URI": args.store}) as url:
        def ask() -> list:
            request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["predictions"]

        answer = ask()
        http = _timings(ask, args.requests)
    print(f"champion: {args.model} version {version.version} (the PyTorch fp32 student on the CPU)")
    print("answer:", ", ".join(f"{p['token']} {p['score']:.3f}" for p in answer[0]))
    print(f"HTTP (mlflow models serve, one sentence, top 5): median {statistics.median(http):.1f} ms, "
          f"p90 {statistics.quantiles(http, n=10)[-1]:.1f} ms over {len(http)} requests")


def _timings(call, count: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


if __name__ == "__main__":
    main()
