"""Reading `params.yaml` (with `--set key=value` overrides) into the typed config, one line per mistake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from distilflow.config import PATTERN_HINTS, Params
from distilflow.errors import DistilflowError, first_line

DEFAULT_PARAMS_PATH = Path("params.yaml")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML as PyYAML reads it, but a key given twice in one mapping (a section pasted twice) is an error
    naming both lines, where PyYAML would keep the last silently."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise DuplicateKeyError(f"'{key}' is given twice, on lines {seen[key]} and "
                                        f"{key_node.start_mark.line + 1}")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(yaml.YAMLError):
    pass


def load_params(path: Path | str = DEFAULT_PARAMS_PATH, overrides: list[str] | None = None) -> Params:
    """Read `path`, apply `key.sub=value` overrides, validate, and return the typed config."""
    path = Path(path)
    if not path.is_file():
        raise DistilflowError(f"params file '{path}' not found: run from the project root or pass --params PATH")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except DuplicateKeyError as error:
        raise DistilflowError(f"params file '{path}': {error}: keep one (the second would replace the first)") from None
    except UnicodeDecodeError:
        raise DistilflowError(f"params file '{path}' is not UTF-8 text: pass the YAML params file") from None
    except yaml.YAMLError as error:
        raise DistilflowError(f"params file '{path}' is not valid YAML ({first_line(error)}): fix its syntax") from None
    if not isinstance(raw, dict):
        raise DistilflowError(f"params file '{path}' must be a mapping of sections (teacher:, data:, ...)")
    for override in overrides or []:
        apply_override(raw, override)
    return validate_params(raw, source=str(path))


def validate_params(raw: dict[str, Any], source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise DistilflowError(describe_validation_error(error, source)) from None


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set `a.b.c=value` in the nested dict; the value is parsed as YAML (numbers, lists, null)."""
    key, sep, value_text = override.partition("=")
    if not sep or not key.strip():
        raise DistilflowError(f"override '{override}' must look like section.key=value, e.g. distill.loss.temperature=4")
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise DistilflowError(f"override '{override}': '{part}' is a value, not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value_text) if value_text.strip() else None
    except yaml.YAMLError as error:
        raise DistilflowError(f"override '{override}': its value is not valid YAML ({first_line(error)}): quote it, "
                              "or close its brackets, e.g. glue.seeds=[1,2,3]") from None


def describe_validation_error(error: ValidationError, source: str) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown key '{key}' (check its spelling and section)")
        elif item["type"] == "missing":
            problems.append(f"missing key '{key}'")
        elif item["type"] == "string_pattern_mismatch":
            hint = PATTERN_HINTS.get(item.get("ctx", {}).get("pattern"), item["msg"])
            problems.append(f"'{key}' = {item['input']!r}: {hint}")
        else:
            problems.append(f"'{key}': {item['msg']}")
    return f"invalid {source}: " + "; ".join(problems) + " — see the documented keys in params.yaml"
