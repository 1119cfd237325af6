"""Generators (households and organisations) and their bulk import from CSV.

A commune loads thousands of households at once from a spreadsheet export. Every row is
judged on its own: good rows become ``GeneratorRegistered`` events, bad rows are reported
with their line number, the column at fault and why.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError
from wastetrail_contracts.enums import CommuneClass, CustomerClass, GeneratorKind
from wastetrail_contracts.events.collection import GeneratorRegistered

from wastetrail_collection.domain.ids import generator_id_for
from wastetrail_collection.domain.rules import Rejection

COLUMNS = ("code", "kind", "name", "commune", "commune_class", "customer_class", "address",
           "members", "tag_ids", "active")
REQUIRED_COLUMNS = ("code", "name", "commune", "commune_class")
# Spreadsheets written by people: accept the Vietnamese words communes actually use.
_KIND = {"household": GeneratorKind.HOUSEHOLD, "hộ gia đình": GeneratorKind.HOUSEHOLD,
         "organisation": GeneratorKind.ORGANISATION, "organization": GeneratorKind.ORGANISATION,
         "tổ chức": GeneratorKind.ORGANISATION}
_COMMUNE_CLASS = {"urban": CommuneClass.URBAN, "đô thị": CommuneClass.URBAN,
                  "phường": CommuneClass.URBAN, "rural": CommuneClass.RURAL,
                  "nông thôn": CommuneClass.RURAL, "xã": CommuneClass.RURAL}
_CUSTOMER_CLASS = {c.value: c for c in CustomerClass} | {
    "hộ gia đình": CustomerClass.HOUSEHOLD, "hộ kinh doanh": CustomerClass.INDIVIDUAL_BUSINESS,
    "tổ chức": CustomerClass.ORGANISATION, "organization": CustomerClass.ORGANISATION}
_TRUE = {"true", "1", "yes", "y", "có", "x"}
_FALSE = {"false", "0", "no", "n", "không"}


class CsvFileError(ValueError):
    """The file as a whole cannot be read (encoding, header): nothing is imported."""

    def __init__(self, line: int, field: str, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class RowError:
    """A rejected CSV row: its line in the file, the column at fault and why."""

    line: int
    field: str
    reason: str
    code: str | None = None


@dataclass(frozen=True)
class ImportRow:
    """An accepted CSV row, as the event that registers (or updates) the generator."""

    line: int
    event: GeneratorRegistered


@dataclass
class CsvImport:
    """The outcome of reading a generators CSV: good rows and bad rows."""

    rows: list[ImportRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def normalise(text: str) -> str:
    """Trimmed, NFC-normalised text.

    Vietnamese letters can arrive decomposed (e.g. from macOS exports); NFC makes
    "Nguyễn" typed two ways the same string, so codes and names compare equal.
    """
    return unicodedata.normalize("NFC", text).strip()


def split_tags(text: str) -> tuple[str, ...]:
    """Tag ids from one cell: separated by ';' or '|', blanks ignored."""
    return tuple(t for t in (normalise(p) for p in text.replace("|", ";").split(";")) if t)


def build_generator(cells: Mapping[str, str]) -> GeneratorRegistered | Rejection:
    """One generator from textual cells (CSV row or form), or the first broken rule."""
    code = normalise(cells.get("code", ""))
    for column in REQUIRED_COLUMNS:
        if not normalise(cells.get(column, "")):
            return Rejection("missing", column, f"{column} is required")
    kind_text = normalise(cells.get("kind", "")).lower() or "household"
    kind = _KIND.get(kind_text)
    if kind is None:
        return Rejection("invalid", "kind", f"kind {kind_text!r} is not household/organisation")
    class_text = normalise(cells.get("commune_class", "")).lower()
    commune_class = _COMMUNE_CLASS.get(class_text)
    if commune_class is None:
        return Rejection("invalid", "commune_class",
                         f"commune_class {class_text!r} is not urban/rural")
    customer_text = normalise(cells.get("customer_class", "")).lower()
    if customer_text:
        customer_class = _CUSTOMER_CLASS.get(customer_text)
        if customer_class is None:
            return Rejection("invalid", "customer_class",
                             f"customer_class {customer_text!r} is not one of "
                             f"{', '.join(c.value for c in CustomerClass)}")
    else:
        customer_class = (CustomerClass.ORGANISATION if kind is GeneratorKind.ORGANISATION
                          else CustomerClass.HOUSEHOLD)
    members_text = normalise(cells.get("members", "")) or "1"
    if not members_text.isdigit():
        return Rejection("invalid", "members", f"members {members_text!r} is not a whole number")
    active_text = normalise(cells.get("active", "")).lower() or "true"
    if active_text not in _TRUE | _FALSE:
        return Rejection("invalid", "active", f"active {active_text!r} is not true/false")
    try:
        return GeneratorRegistered(
            generator_id=generator_id_for(code),
            code=code,
            kind=kind,
            name=normalise(cells.get("name", "")),
            commune=normalise(cells.get("commune", "")),
            commune_class=commune_class,
            customer_class=customer_class,
            address=normalise(cells.get("address", "")),
            members=int(members_text),
            tag_ids=split_tags(cells.get("tag_ids", "")),
            active=active_text in _TRUE,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        column = str(first["loc"][0]) if first["loc"] else _field_in(str(first["msg"]))
        return Rejection("invalid", column, f"{column}: {first['msg']}")


def _field_in(message: str) -> str:
    # Model-level validators say "Value error, tag_ids: a tag appears twice".
    for column in COLUMNS:
        if f"{column}:" in message:
            return column
    return "row"


def decode_csv(data: bytes) -> str:
    """The file's text; UTF-8 (with or without BOM), else the first line that is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvFileError(line, "file", "not UTF-8 text; save the file as CSV UTF-8") from exc


def parse_generators_csv(text: str, *, max_rows: int = 100_000) -> CsvImport:
    """Read a generators CSV: each good row becomes an event, each bad row an error.

    Line numbers are the file's physical lines (the header is line 1), as a spreadsheet
    shows them. A code or tag that appears twice keeps its first row; later rows are errors.
    """
    # The header names the columns, so its separators say which one the file uses
    # (Excel in a Vietnamese locale writes ';').
    header_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in header_line else ";" if ";" in header_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [normalise(h).lower() for h in next(reader)]
    except StopIteration:
        raise CsvFileError(1, "header", "the file is empty") from None
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise CsvFileError(1, "header", f"unknown columns {unknown}; expected {list(COLUMNS)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CsvFileError(1, "header", f"missing columns {missing}")
    result = CsvImport()
    code_lines: dict[str, int] = {}
    tag_lines: dict[str, int] = {}
    line = reader.line_num
    count = 0
    for record in reader:
        start, line = line + 1, reader.line_num  # a quoted cell may span several lines
        if not any(cell.strip() for cell in record):
            continue
        count += 1
        if count > max_rows:
            raise CsvFileError(start, "file", f"more than {max_rows} rows; split the file")
        if len(record) != len(header):
            result.errors.append(RowError(start, "row",
                                          f"{len(record)} cells, the header has {len(header)}"))
            continue
        decided = build_generator(dict(zip(header, record, strict=True)))
        if isinstance(decided, Rejection):
            code = normalise(record[header.index("code")]) or None
            result.errors.append(RowError(start, decided.field, decided.detail, code))
            continue
        if decided.code in code_lines:
            result.errors.append(RowError(start, "code", f"code {decided.code!r} already on "
                                          f"line {code_lines[decided.code]}", decided.code))
            continue
        clash = next((t for t in decided.tag_ids if t in tag_lines), None)
        if clash is not None:
            result.errors.append(RowError(start, "tag_ids", f"tag {clash!r} already on line "
                                          f"{tag_lines[clash]}", decided.code))
            continue
        code_lines[decided.code] = start
        tag_lines.update(dict.fromkeys(decided.tag_ids, start))
        result.rows.append(ImportRow(start, decided))
    return result
