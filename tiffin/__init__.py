"""tiffin: models trained here, packed into bentos, served by BentoML.

This package holds what training, serving and clients share (settings, the model store,
the model families with their architectures and preprocessing, the wire format), so they
cannot drift; the layout is in the README.
"""

__version__ = "0.1.0"
