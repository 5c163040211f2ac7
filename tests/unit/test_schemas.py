import pytest
from pydantic import ValidationError

from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW
from tiffin.wire.limits import MAX_TEXT_CHARS
from tiffin.wire.schemas import DemandFeatures, TextRequest


def test_example_row_is_valid_and_shown_in_schema():
    assert DemandFeatures(**EXAMPLE_DEMAND_ROW).hr == 8
    assert DemandFeatures.model_json_schema()["example"] == EXAMPLE_DEMAND_ROW


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("hr", 24, "less than or equal to 23"),
        ("season", 0, "greater than or equal to 1"),
        ("mnth", "Smarch", "Input should be 'Jan'"),
        ("weathersit", "sunny", "Input should be 'clear'"),
        ("temp", 1.5, "less than or equal to 1"),
        ("hum", float("nan"), "finite number"),
        ("holiday", 2, "less than or equal to 1"),
    ],
)
def test_out_of_range_fields_are_named(field, value, fragment):
    with pytest.raises(ValidationError) as err:
        DemandFeatures(**{**EXAMPLE_DEMAND_ROW, field: value})
    assert err.value.errors()[0]["loc"] == (field,)
    assert fragment in str(err.value)


def test_missing_and_unknown_fields_are_refused():
    row = dict(EXAMPLE_DEMAND_ROW)
    del row["temp"]
    with pytest.raises(ValidationError, match="temp"):
        DemandFeatures(**row)
    with pytest.raises(ValidationError, match="casual"):
        DemandFeatures(**EXAMPLE_DEMAND_ROW, casual=3)


def test_text_request_bounds():
    assert TextRequest(text="fine").tier == "small"
    for bad in ("", "x" * (MAX_TEXT_CHARS + 1)):
        with pytest.raises(ValidationError, match="text"):
            TextRequest(text=bad)
    with pytest.raises(ValidationError, match="tier"):
        TextRequest(text="fine", tier="medium")
