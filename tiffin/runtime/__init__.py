"""What serves the models inside a BentoML process: the runner base, the hot path (batcher,
HTTP/1.1 listener, ASGI helpers), the request guard, calls between services, and process
tuning (CPU layout, malloc, gc, logs)."""
