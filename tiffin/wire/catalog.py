"""The served models as a caller sees them: store names, class names, examples."""

from __future__ import annotations

# model-store names, which are also the OIP model names
FASHION = "fashion-cnn"
TEXT_SMALL = "review-textcnn"
TEXT_LARGE = "review-minilm"
DEMAND = "bikeshare-mlp"
TEXT_TIERS = {"small": TEXT_SMALL, "large": TEXT_LARGE}

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SENTIMENT_LABELS = ["rotten", "fresh"]
# Tier "auto": the small model answers alone when at least this sure, else the large one
# (TIFFIN_CASCADE_THRESHOLD on the server; a gRPC client runs the cascade itself).
CASCADE_THRESHOLD = 0.8
EXAMPLE_TEXT = "A witty, warm and wonderfully acted film that earns every one of its laughs."

# Bikeshare's spellings, as in the data set
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]
WEATHER = ["clear", "cloudy/misty", "light rain/snow", "heavy rain/snow"]
EXAMPLE_DEMAND_ROW = {
    "season": 3,
    "mnth": "July",
    "hr": 8,
    "holiday": 0,
    "weekday": 2,
    "workingday": 1,
    "weathersit": "clear",
    "temp": 0.7,
    "atemp": 0.65,
    "hum": 0.55,
    "windspeed": 0.2,
}
# Each demand column's OIP datatype, by the type of its example value.
DEMAND_DATATYPES = {name: {int: "INT64", str: "BYTES", float: "FP32"}[type(value)] for name, value in EXAMPLE_DEMAND_ROW.items()}
