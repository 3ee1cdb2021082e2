"""The REST API: a Flask app factory (`create_app` in app.py) with one blueprint per resource."""
