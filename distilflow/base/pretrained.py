"""Where models and datasets come from: a local path, the offline Hub mirror, or the Hub.

Resolution order for a name: an existing local path -> `$DISTILFLOW_HUB_MIRROR/<name>` when that
variable is set and the folder exists -> the Hub id itself (transformers/datasets download it).
The real loaders (`from_pretrained`, `load_dataset`) are always used, so online users get the Hub.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers import logging as hf_logging

from distilflow.errors import DistilflowError, first_line

MIRROR_ENV = "DISTILFLOW_HUB_MIRROR"


def resolve(name: str) -> str:
    """The path or Hub id that the loaders should be given for `name`."""
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    mirror = os.environ.get(MIRROR_ENV)
    if mirror and (Path(mirror) / name).is_dir():
        return str(Path(mirror) / name)
    return name


def _where_we_looked(name: str) -> str:
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        mirror_says = f"${MIRROR_ENV} unset"
    elif not Path(mirror).is_dir():
        mirror_says = f"${MIRROR_ENV}={mirror} is no folder (for `make`: ../shared/hub beside the checkout)"
    else:
        mirror_says = f"not in ${MIRROR_ENV} ({mirror})"
    return f"not a local path, {mirror_says}"


SET_TEACHER = "set teacher.model in params.yaml to an existing folder or Hub id"  # where params.yaml named it


def load_tokenizer(name: str, fix: str = "") -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(resolve(name))
    except Exception as error:  # OSError, ValueError, a corrupt tokenizer.json (JSON / tokenizers errors)
        raise _load_error(name, "tokenizer of", error, fix or GIVE_A_MODEL) from None


GIVE_A_MODEL = "give an existing model folder or Hub id"


def load_pretrained(auto_class, name: str, role: str, fix: str = GIVE_A_MODEL, **kwargs):
    """`auto_class.from_pretrained(name)` with load reports silenced and one-line errors: a name that is
    found nowhere, or a local folder that is there but unreadable (a truncated model.safetensors). `fix`
    says where the name came from (params.yaml or the command line)."""
    try:
        with quiet_transformers():
            return auto_class.from_pretrained(resolve(name), **kwargs)
    except Exception as error:  # OSError, ValueError, SafetensorError, RuntimeError (shape mismatch), ...
        raise _load_error(name, role, error, fix) from None


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _load_error(name: str, role: str, error: Exception, fix: str) -> DistilflowError:
    folder = Path(resolve(name))
    if not folder.is_dir():
        return DistilflowError(f"{role} '{name}' not found ({_where_we_looked(name)}; Hub: {first_line(error)[:200]}): {fix}")
    what = f"{role} '{name}' is there but unreadable ({type(error).__name__}: {first_line(error)[:160]})"
    if (folder / "distilflow.json").is_file():  # a stage wrote it (model_folder.MODEL_META)
        return DistilflowError(f"{what}: rebuild it (rerun the stage that wrote it, e.g. `dvc repro`)")
    if not role.startswith("tokenizer") and not any((folder / weights).is_file() for weights in WEIGHT_FILES):
        return DistilflowError(f"{role} folder '{name}' has no weights (none of {', '.join(WEIGHT_FILES[::2])}): "
                               "give a complete model folder (save_pretrained writes config, weights and tokenizer)")
    return DistilflowError(f"{what}: copy it again, or write it again with save_pretrained")


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report: missing heads/poolers are expected and handled by callers."""
    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


def load_masked_lm(name: str, role: str = "model", fix: str = "") -> tuple[PreTrainedModel, set[str]]:
    """Load `name` as a masked-LM; returns the model and the weight names that were missing.

    Missing head weights are normal for encoders without an MLM head; the caller decides what to do.
    """
    model, info = load_pretrained(AutoModelForMaskedLM, name, role, fix or GIVE_A_MODEL, output_loading_info=True)
    return model, set(info["missing_keys"])


def model_fingerprint(model: torch.nn.Module, exclude: set[str] = frozenset()) -> str:
    """Content hash of a model's weights, independent of where it was loaded from.

    `exclude`: weights the checkpoint did not have (randomly initialised on load, so not its identity).
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name in exclude:
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def encoder_fingerprint(name: str) -> str:
    """Identity of a model's encoder weights, wherever it is loaded from (its head, if any, left out)."""
    from transformers import AutoModel

    model, info = load_pretrained(AutoModel, name, "model", output_loading_info=True)
    return model_fingerprint(model, exclude=set(info["missing_keys"]))


def require_length_fits(name: str, role: str, lengths: dict[str, int], fix: str = GIVE_A_MODEL) -> None:
    """Each {setting: length} within the model's position embeddings, checked from its config before any
    work (past them, training or timing would crash part-way)."""
    from transformers import AutoConfig

    positions = getattr(load_pretrained(AutoConfig, name, role, fix), "max_position_embeddings", None)
    for setting, length in lengths.items():
        if positions is not None and length > positions:
            raise DistilflowError(f"{setting}={length} exceeds the {positions} positions of {role} '{name}': "
                                  f"set {setting} to at most {positions}")
