"""What a server and its callers share, with no torch and no BentoML: the served models'
names and classes, examples, limits, request/answer schemas, and image encoding."""
