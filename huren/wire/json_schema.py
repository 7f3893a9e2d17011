"""JSON Schemas of the REST bodies, generated from the seed 002 field tables (for OpenAPI)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from huren.domain import kinds
from huren.domain.fields import (
    LAB_EXAM_REPORT,
    PDF,
    VOID_FILTER,
    Field,
)
from huren.domain.limits import FIRST_DAY, LAST_DAY

_FORMATS = {"dt": "YYYY-MM-DD hh24:mi:ss", "date": "YYYY-MM-DD"}


def node_schema(spec: Sequence[Field], *, extra: Sequence[Field] = ()) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for f in (*spec, *extra):
        desc = f.title
        if f.kind in _FORMATS:
            desc += f"，格式 {_FORMATS[f.kind]}，{FIRST_DAY.isoformat()} 至 {LAST_DAY.isoformat()}"
        elif f.kind == "num":
            desc += f"，整数，最多{f.size}位"
        elif f.kind == "str":
            desc += f"，文本（不接受数字或布尔值），最长{f.size}字符，不含控制字符或文字方向控制字符"
        elif f.kind == "b64":
            desc += "，PDF文件内容的Base64编码"
        if f.dictionary:
            desc += f"，字典 {f.dictionary}"
        # the domain's rules (huren.domain.validation), mirrored: a NUMBER may come as a JSON integer
        props[f.name] = {"type": ["string", "integer"] if f.kind == "num" else "string", "description": desc}
        if f.kind == "str":
            props[f.name]["maxLength"] = f.size
    return {
        "type": "object",
        "properties": props,
        "required": [f.name for f in spec if f.required],
    }


def report_schema(kind: str) -> dict[str, Any]:
    k = kinds.BY_NAME[kind]
    return {
        "type": "object",
        "required": [k.master_node, k.item_node],
        "properties": {
            k.master_node: node_schema(k.master_fields, extra=(PDF,)),
            k.item_node: {"type": "array", "minItems": 1, "items": node_schema(k.item_fields)},
        },
    }


def daily_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["lab_exam_report"],
        "properties": {"lab_exam_report": {"type": "array", "minItems": 1, "items": node_schema(LAB_EXAM_REPORT)}},
    }


def void_schema() -> dict[str, Any]:
    return node_schema(VOID_FILTER)


def body(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` for a JSON schema."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
