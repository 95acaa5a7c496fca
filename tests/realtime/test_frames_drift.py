"""The frames agree everywhere: realtime/protocol.py, docs/protocol.md and the UI's frames.ts.

The server is the truth: the server side is read from the frame builders and the
client frame Structs, and the docs and the TypeScript must name the same frame
types and the same fields. A last test keeps every server frame in the builders.
"""

from __future__ import annotations

import ast
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest

from realtime import protocol as p

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "protocol.md"
FRAMES_TS = ROOT / "frontend" / "src" / "protocol" / "frames.ts"


# -- the server side ----------------------------------------------------------


def full_server_frames() -> list[dict[str, Any]]:
    """One frame per server type, every optional field given."""
    return [
        p.welcome("c-1", "pod-a", "ann", {"max_streams": 2}),
        p.stream_start(
            "st-1",
            "q1",
            "s-1",
            "bio",
            "hint",
            text="Why?",
            hint_level=2,
            problem="p-1",
            hint_only=True,
        ),
        p.delta("st-1", 1, "Hi"),
        p.stream_end(
            "st-1",
            1,
            "error",
            [],
            cached=False,
            model="offline",
            fallback=True,
            message="why",
            taken_over=True,
            hint_level=2,
            hint_only=True,
            withheld=[1],
        ),
        p.error(p.ErrorCode.RATE_LIMITED, "slow down", "q1", retry_after_ms=1500),
        p.session("o1", "s-1", "bio", "Cells", [], [p.running_stream("st-1", "q1", 1, "Hi")], []),
        p.pong("p1"),
        p.reconnect("draining", 250),
        p.predictions("cel", ["cells"], "t1"),
        p.document_progress("d-1", "bio", "failed", 1.0, "the PDF is encrypted"),
        p.feedback("a1", "p-1", correct=False, message="Not yet."),
    ]


def server_fields() -> dict[str, set[str]]:
    """Field names of each server frame type, as the builders write them."""
    frames = {frame["type"]: set(frame) - {"type"} for frame in full_server_frames()}
    assert set(frames) == set(p.SERVER_TYPES), "full_server_frames() misses a server type"
    return frames


def client_fields() -> dict[str, set[str]]:
    """Field names of each client frame type, from the Structs the server decodes with."""
    out = {}
    for struct in typing.get_args(p.ClientFrame):
        tag = struct.__struct_config__.tag
        out[tag] = {field.encode_name for field in msgspec.structs.fields(struct)}
    assert set(out) == set(p.CLIENT_TYPES)
    return out


# -- docs/protocol.md ---------------------------------------------------------


def _section(markdown: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next ``## ``."""
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def _field_names(cell: str) -> set[str]:
    """Top-level field names of a table cell such as "`a`, `b` (about `x`), and `c`: prose".

    The first code span of each comma-separated item is a field; anything in
    parentheses or braces describes it; a top-level ``:`` or ``. `` ends the list.
    """
    names: set[str] = set()
    depth, code, span, named = 0, False, "", False
    for i, char in enumerate(cell):
        if code:
            if char == "`":
                code = False
                if depth == 0 and not named:
                    names.add(span)
                    named = True
            else:
                span += char
        elif char == "`":
            code, span = True, ""
        elif char in "({":
            depth += 1
        elif char in ")}":
            depth -= 1
        elif depth:
            continue
        elif char == ",":
            named = False
        elif char == ":" or (char == "." and cell[i + 1 : i + 2] in ("", " ")):
            break
    return names


def docs_fields(heading: str) -> dict[str, set[str]]:
    """Frame type to field names, from the first table under ``## heading``."""
    out = {}
    for line in _section(DOCS.read_text(encoding="utf-8"), heading).splitlines():
        row = re.fullmatch(r"\| `([a-z.]+)` \| (.*?) \|(.*)", line)
        if row:
            out[row[1]] = _field_names(row[2])
    return out


# -- frontend/src/protocol/frames.ts ------------------------------------------


def _ts_fields(body: str) -> tuple[str, set[str]]:
    """The ``type`` literal and the other field names of a TypeScript object type's body."""
    fields = dict(re.findall(r"(?:^|[{;\n])\s*(\w+)\??:\s*([^;\n]+)", body))
    kind = re.fullmatch(r'"([a-z.]+)"', fields.pop("type").strip())
    assert kind, body
    return kind[1], set(fields)


def ts_fields(union: str) -> dict[str, set[str]]:
    """Frame type to field names for the members of ``export type <union>``."""
    source = FRAMES_TS.read_text(encoding="utf-8")
    interfaces = {
        name: body
        for name, body in re.findall(r"export interface (\w+) \{\n(.*?)\n\}", source, re.S)
    }
    members = re.search(rf"export type {union} =\n(.*?);\n", source, re.S)
    assert members, union
    out = {}
    for member in re.findall(r"\|\s*(\w+|\{[^}]*\})", members[1]):
        body = member[1:-1] if member.startswith("{") else interfaces[member]
        # Nested object types (``presence: { pod: string; … }[]``) are not fields of the frame.
        kind, fields = _ts_fields(re.sub(r"\{[^{}]*\}", "{}", body))
        out[kind] = fields
    return out


# -- the tests ----------------------------------------------------------------


def test_docs_name_every_server_frame_and_its_fields() -> None:
    """docs/protocol.md lists each server frame type with the fields its builder writes."""
    assert docs_fields("Server → client") == server_fields()


def test_docs_name_every_client_frame_and_its_fields() -> None:
    """docs/protocol.md lists each client frame type with the fields the server accepts."""
    # ``id`` is described once for every client frame, above the table.
    documented = {kind: fields | {"id"} for kind, fields in docs_fields("Client → server").items()}
    assert documented == client_fields()


def test_typescript_names_every_server_frame_and_its_fields() -> None:
    """frames.ts ServerFrame has one member per server frame type with the builder's fields."""
    assert ts_fields("ServerFrame") == server_fields()


def test_typescript_names_every_client_frame_and_its_fields() -> None:
    """frames.ts ClientFrame has one member per client frame type with the Struct's fields."""
    assert ts_fields("ClientFrame") == client_fields()


def test_field_parser_reads_top_level_names_only() -> None:
    """Names in parentheses, braces or the prose after a colon are not fields."""
    cell = "`a` (the `x`), `b` {`y`, `z`}, and `c` for `d`: then `e`. More `f`"
    assert _field_names(cell) == {"a", "b", "c"}


# -- one home for server frames -----------------------------------------------


def runtime_modules() -> list[Path]:
    """Every module of the packages the import contract lists."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = config["tool"]["importlinter"]["root_packages"]
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def server_frame_literals(source: str) -> list[int]:
    """Lines of dict literals or ``dict(type=...)`` calls whose type is a server frame type."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        kinds: list[ast.expr | None]
        if isinstance(node, ast.Dict):
            kinds = [v for k, v in zip(node.keys, node.values, strict=True) if _is_type_key(k)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "dict"
        ):
            kinds = [k.value for k in node.keywords if k.arg == "type"]
        else:
            continue
        if any(isinstance(k, ast.Constant) and k.value in p.SERVER_TYPES for k in kinds):
            lines.append(node.lineno)
    return lines


def _is_type_key(key: ast.expr | None) -> bool:
    return isinstance(key, ast.Constant) and key.value == "type"


@pytest.mark.parametrize(
    "source",
    [
        'frame = {"type": "delta", "stream": s, "seq": 1, "text": t}',
        'send(dict(type="stream.start", stream=s))',
        'frames = [{"seq": n, "type": "stream.end"} for n in range(3)]',
    ],
)
def test_scan_finds_a_server_frame_literal(source: str) -> None:
    """The scan below recognises a server frame written as a dict."""
    assert server_frame_literals(source) == [1]


def test_only_the_protocol_module_builds_server_frames() -> None:
    """No runtime module other than realtime/protocol.py writes a server frame dict."""
    home = ROOT / "realtime" / "protocol.py"
    modules = runtime_modules()
    assert home in modules
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules
        if path != home
        for line in server_frame_literals(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []
