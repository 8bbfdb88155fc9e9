"""The engine: executor, transitions, validation and the step plug-in API."""
