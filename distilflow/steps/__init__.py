"""Steps that several jobs share, one floor below them: a resumable tracked training session (teacher head,
distillation), and a GLUE task fine-tuned in its MLflow run with the report published (the GLUE stages and
`distilflow glue`). A job imports these, never another job."""
