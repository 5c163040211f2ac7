"""One training script per model family: `python -m train.<name> [--quick]`."""
