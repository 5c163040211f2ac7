"""One training script per model family (`python -m train.<name> [--quick]`), `train.all` for
every family in the registry, and what they share: the loop (`loop`), the data sets (`datasets`)."""
