"""The generators CSV: UTF-8 Vietnamese, good rows kept, bad rows reported by line."""

from __future__ import annotations

import unicodedata

import pytest
from wastetrail_collection.domain.generators import (
    CsvFileError,
    decode_csv,
    parse_generators_csv,
)
from wastetrail_collection.domain.ids import generator_id_for
from wastetrail_contracts.enums import CommuneClass, CustomerClass, GeneratorKind

HEADER = "code,kind,name,commune,commune_class,customer_class,address,members,tag_ids,active\n"


def test_good_and_bad_rows_with_line_numbers() -> None:
    text = HEADER + (
        'HN-001,household,Nguyễn Văn An,phuong-1,urban,,"Số 12, ngõ 34, Phố Huế",4,QR-1;QR-2,\n'
        "HN-002,household,,phuong-1,urban,,,1,,\n"                      # line 3: no name
        "HN-003,household,Trần Thị Bình,phuong-1,suburban,,,1,,\n"     # line 4: bad class
        "\n"                                                           # line 5: blank
        "HN-004,tổ chức,Công ty TNHH Xanh,xa-2,nông thôn,,,1,QR-9,\n"  # line 6: Vietnamese words
        "HN-001,household,Lê Văn Cường,phuong-1,urban,,,1,,\n"          # line 7: duplicate code
        "HN-005,household,Phạm Thị Dung,phuong-1,urban,,,1,QR-2,\n"     # line 8: tag taken
        "HN-006,household,Hoàng Văn Em,phuong-1,urban,,,two,,\n"        # line 9: members
        "HN-007,organisation,Trường Tiểu học,phuong-1,urban,household,,1,,\n"  # line 10
        "HN-008,household,Đỗ Thị Gấm,phuong-1,urban,,,1,,no\n"          # line 11: inactive
    )
    result = parse_generators_csv(text)
    assert [r.line for r in result.rows] == [2, 6, 11]
    first = result.rows[0].event
    assert first.generator_id == generator_id_for("HN-001")
    assert first.name == "Nguyễn Văn An"
    assert first.address == "Số 12, ngõ 34, Phố Huế"
    assert first.tag_ids == ("QR-1", "QR-2")
    assert first.members == 4
    org = result.rows[1].event
    assert (org.kind, org.commune_class, org.customer_class) == (
        GeneratorKind.ORGANISATION, CommuneClass.RURAL, CustomerClass.ORGANISATION)
    assert result.rows[2].event.active is False
    errors = {e.line: (e.field, e.reason) for e in result.errors}
    assert sorted(errors) == [3, 4, 7, 8, 9, 10]
    assert errors[3][0] == "name"
    assert errors[4][0] == "commune_class"
    assert "line 2" in errors[7][1]
    assert errors[8] == ("tag_ids", "tag 'QR-2' already on line 2")
    assert errors[9][0] == "members"
    assert errors[10][0] == "customer_class"


def test_decomposed_vietnamese_is_normalised() -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Văn An")
    result = parse_generators_csv(HEADER + f"HN-1,household,{decomposed},p-1,urban,,,1,,\n")
    assert result.rows[0].event.name == "Nguyễn Văn An"


def test_a_quoted_cell_spanning_lines_keeps_the_following_line_numbers() -> None:
    text = HEADER + ('HN-1,household,A,p-1,urban,,"dòng 1\ndòng 2",1,,\n'
                     "HN-2,household,,p-1,urban,,,1,,\n")
    result = parse_generators_csv(text)
    assert result.rows[0].line == 2
    assert result.errors[0].line == 4


def test_semicolon_separated_file_from_excel() -> None:
    text = "code;name;commune;commune_class;tag_ids\nHN-1;Nguyễn An;p-1;đô thị;QR-1|QR-2\n"
    result = parse_generators_csv(text)
    assert result.rows[0].event.tag_ids == ("QR-1", "QR-2")
    assert result.rows[0].event.commune_class is CommuneClass.URBAN


def test_wrong_cell_count_is_a_row_error() -> None:
    result = parse_generators_csv(HEADER + "HN-1,household,A\n")
    assert result.errors[0].line == 2
    assert result.errors[0].field == "row"


def test_file_errors() -> None:
    with pytest.raises(CsvFileError) as unknown:
        parse_generators_csv("code,name,comune,commune_class\n")
    assert unknown.value.line == 1
    assert "comune" in unknown.value.reason
    with pytest.raises(CsvFileError):
        parse_generators_csv("code,name\n")
    with pytest.raises(CsvFileError):
        parse_generators_csv("")


def test_utf8_with_bom_and_a_latin1_file() -> None:
    assert decode_csv("\ufeffcode".encode()) == "code"
    latin = (HEADER + "HN-1,household,Nguyen,p,urban,,,1,,\nHN-2,household,Tr\xe2n,p,urban,,,1,,\n")
    with pytest.raises(CsvFileError) as exc:
        decode_csv(latin.encode("latin-1"))
    assert exc.value.line == 3
