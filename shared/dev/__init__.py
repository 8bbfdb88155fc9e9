"""Local development: the dev server (``server.py``: the four functions on one port), the
demo HTTP service the examples call, and the Google emulators (``emulators.py``: find,
install, start; ``on_emulators.py``: ``make dev-emulators``)."""
