"""One catalogue names every domain value once, in Vietnamese and English."""

from __future__ import annotations

from wastetrail_contracts import labels
from wastetrail_contracts.enums import AlertKind, Category, Material, TreatmentMethod


def test_every_method_group_material_and_alarm_has_both_languages() -> None:
    for value in [*TreatmentMethod, *Category, *Material, *AlertKind]:
        vi, en = labels.pair(value.value)
        assert vi and en and vi != value.value, value


def test_one_name_per_thing() -> None:
    assert labels.pair("composting") == ("Ủ phân compost", "Composting")
    assert labels.label("recyclable") == "Chất thải rắn có khả năng tái sử dụng, tái chế"
    assert labels.label("recyclable", "en") == "Recyclable"
    assert labels.both("direct_landfill") == "Chôn lấp trực tiếp / Direct landfill"
    assert labels.pair("no-such-key") == ("no-such-key", "no-such-key")
