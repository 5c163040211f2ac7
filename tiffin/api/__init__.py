"""The public API's request handling, for every service that serves it: what the typed
endpoints do (endpoints.py) and the front door that answers them on BentoML's port
(frontdoor.py)."""
