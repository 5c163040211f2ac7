"""tiffin: models trained here, packed into bentos, served by BentoML.

This package holds everything that training and serving share (architectures,
preprocessing, data loading, model-store helpers) so the two cannot drift.
"""

__version__ = "0.1.0"
