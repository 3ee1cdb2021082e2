"""Helpers shared by the tests: live server processes (server.py), PouchDB Server (pouchdb.py)."""
