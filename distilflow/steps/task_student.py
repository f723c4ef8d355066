"""Where a task's student starts (issue 44, item 3): a copy of your fine-tuned teacher classifier with fewer layers
(student.n_layers of them, half by default; narrower with student.hidden_size as the distilled student is), its
encoder layers, embeddings and classification head taken from the teacher as distillation takes them
(train/student.py), or the pipeline's distilled student (paths.student), whose classification head starts new.
Either is then fine-tuned on the task with the teacher's soft targets (glue_runs.evaluate_task)."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForSequenceClassification

from distilflow.base.model_folder import MODEL_META, read_model_meta, save_model
from distilflow.base.hashing import fingerprint
from distilflow.base.files import read_json
from distilflow.config import StudentConfig, TaskConfig
from distilflow.evaluation.teacher_classifier import TeacherClassifier
from distilflow.train.student import build_student


def student_start(config: TaskConfig, teacher: TeacherClassifier, shape: StudentConfig, distilled: Path,
                  folder: Path, seed: int) -> Path:
    """The folder the task's student is fine-tuned from (made once per teacher and shape: a rerun reuses it)."""
    if config.student == "distilled":
        read_model_meta(distilled, made_by="distill")  # one line when the pipeline's student is not there
        return distilled
    key = fingerprint(teacher.fingerprint, shape.model_dump(mode="json"), seed)
    if read_json(folder / MODEL_META).get("key") == key:
        return folder
    student, layers = build_student(teacher.model, shape, seed, auto_class=AutoModelForSequenceClassification)
    student.config.id2label, student.config.label2id = teacher.model.config.id2label, teacher.model.config.label2id
    student.config.problem_type = teacher.model.config.problem_type
    save_model(student, teacher.tokenizer, folder,
               {"made_by": "task", "key": key, "teacher_classifier": teacher.name, "teacher_layers": layers,
                "shape": {"layers": student.config.num_hidden_layers, "hidden_size": student.config.hidden_size}})
    return folder
