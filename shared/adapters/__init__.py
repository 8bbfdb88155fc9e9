"""Adapters for the ports: embedded (SQLite, in-memory, local) and Google Cloud ones.

Import the module you need (``shared.adapters.sqlite_store``...); nothing here imports
an SDK or opens a connection, so importing the package stays cheap.
"""
