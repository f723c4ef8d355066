"""distilflow: distil BERT-family masked-LM teachers into half-depth students.

The core package is plain PyTorch/transformers code with no orchestration; Prefect lives in
`tasks/` and `flows/`, which only wrap and compose what is here.
"""

__version__ = "0.1.0"
