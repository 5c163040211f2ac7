"""BentoML services: one file per deployable (each runner, and the API that composes them)."""
