"""Sizes and ports a server holds to: defaults of the settings in tiffin/config.py where one
exists (TIFFIN_MAX_IMAGE_BYTES, TIFFIN_MAX_JSON_BYTES, the ports), fixed otherwise."""

HTTP_PORT, GRPC_PORT = 3000, 3001  # BentoML's; OIP gRPC
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # an upload to /classify_image (a setting); a hot-path body (fixed)
MAX_JSON_BYTES = 64 * 1024  # a typed JSON request
MAX_OIP_BYTES = 16 * 1024 * 1024  # an OIP request, REST or gRPC
MAX_OIP_ITEMS = 256  # items in one OIP request; larger batches are split by the client
MAX_TEXT_CHARS = 5000  # a review snippet
MAX_PIXELS = 40_000_000  # an upload past this is refused before decoding (decompression bombs)
# ... and one longer than this on either side: Pillow keeps a pointer per row, so a 1 x 40M
# strip took 5 s and 725 MB to decode; 16384 is WebP's bound, past any camera's
MAX_SIDE = 16384
