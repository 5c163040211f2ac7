"""Sizes and ports a server holds to by default (the settings in tiffin/config.py override them)."""

HTTP_PORT, GRPC_PORT, FAST_PORT = 3000, 3001, 3002  # BentoML's; OIP gRPC; the image hot path
MAX_IMAGE_BYTES = 8 * 1024 * 1024  # a multipart upload to /classify_image, and a hot-path body
MAX_JSON_BYTES = 64 * 1024  # a typed JSON request
MAX_OIP_BYTES = 16 * 1024 * 1024  # an OIP request, REST or gRPC
MAX_OIP_ITEMS = 256  # items in one OIP request; larger batches are split by the client
MAX_PIXELS = 40_000_000  # an upload past this is refused before decoding (decompression bombs)
