"""Request and answer models of the typed API (pydantic; used by services, clients and tests)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tiffin.wire.catalog import EXAMPLE_DEMAND_ROW, EXAMPLE_TEXT, MONTHS, WEATHER
from tiffin.wire.limits import MAX_TEXT_CHARS

Month = Literal[tuple(MONTHS)]  # type: ignore[valid-type]
Weather = Literal[tuple(WEATHER)]  # type: ignore[valid-type]
Tier = Literal["small", "large", "auto"]


def _unit(description: str) -> object:
    return Field(ge=0.0, le=1.0, allow_inf_nan=False, description=description + " (normalised to 0..1, as in ISLP Bikeshare)")


class DemandFeatures(BaseModel):
    """One hour of calendar and weather, in ISLP Bikeshare's column names and units."""

    # strict: a number field takes numbers only (not true/false or "3"), as the schema says
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"example": EXAMPLE_DEMAND_ROW})

    season: int = Field(ge=1, le=4, description="1 winter, 2 spring, 3 summer, 4 fall")
    mnth: Month = Field(description="month as spelled in the data set")
    hr: int = Field(ge=0, le=23, description="hour of the day")
    holiday: int = Field(ge=0, le=1, description="1 on a public holiday")
    weekday: int = Field(ge=0, le=6, description="0 Sunday ... 6 Saturday")
    workingday: int = Field(ge=0, le=1, description="1 when neither weekend nor holiday")
    weathersit: Weather = Field(description="weather situation")
    temp: float = _unit("temperature")
    atemp: float = _unit("feels-like temperature")
    hum: float = _unit("relative humidity")
    windspeed: float = _unit("wind speed")


class TextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"example": {"text": EXAMPLE_TEXT, "tier": "small"}})

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="a review snippet in English")
    tier: Tier = Field("small", description="small (TextCNN), large (MiniLM), or auto: small, and large when small is unsure")


BatchKind = Literal["image", "text", "demand"]
MAX_BATCH_PATH = 1024


class BatchJob(BaseModel):
    """A bulk-scoring job (tiffin/api/batch.py): paths relative to the server's TIFFIN_BATCH_DIR."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"example": {"input": "reviews.jsonl", "output": "answers.jsonl", "kind": "text", "tier": "small"}},
    )

    input: str = Field(min_length=1, max_length=MAX_BATCH_PATH, description="a JSONL/CSV file, or a folder of PNG/JPEG files")
    output: str = Field(min_length=1, max_length=MAX_BATCH_PATH, description="the JSONL file the answers are appended to")
    kind: BatchKind = Field("text", description="what the items are: text rows, demand rows, or images")
    tier: Tier = Field("small", description="for text: small, large or auto")


class ImageResult(BaseModel):
    label: str
    probabilities: dict[str, float]
    model: str = Field(description="model-store tag that answered")
    batch_size: int = Field(description="how many requests shared the model's forward pass")


class TextResult(BaseModel):
    label: Literal["rotten", "fresh"]
    probability: float = Field(description="probability of the returned label")
    model: str
    tier: Literal["small", "large"]
    batch_size: int


class DemandResult(BaseModel):
    bikers: float = Field(description="predicted riders in that hour")
    model: str
    batch_size: int
