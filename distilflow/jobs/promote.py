"""Who serves: the promotion rule (challenger -> champion when it holds), promotion by hand, rollback."""

from __future__ import annotations

from distilflow.config import Params
from distilflow.ops import promotion_rule, registry
from distilflow.ops.tracking import Tracking


def by_rule(params: Params, version: str) -> promotion_rule.Decision:
    with Tracking(params.tracking):
        return registry.promote_by_policy(params.registry, version)


def to_version(params: Params, version: str) -> None:
    with Tracking(params.tracking):
        registry.promote(params.registry.model_name, version)


def rollback(params: Params) -> tuple[str, bool]:
    """The previous champion, and whether the alias moved to it."""
    with Tracking(params.tracking):
        return registry.rollback(params.registry.model_name)


def versions(params: Params) -> list[dict[str, str]]:
    with Tracking(params.tracking, for_writing=False):
        return registry.list_versions(params.registry.model_name)
