"""Workflow engine core: models, engine, ports, adapters and use cases."""
