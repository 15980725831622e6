"""The web dashboard on the ops endpoint: what the bot sees, thinks and holds, in a browser.

``shape`` (pure: down-sampling, drawdown, the protection state, the ML card, event order) turns
records into what the page shows; ``reader`` reads the database on its own read-only
connection in a worker thread, off the cycle's path; ``routes`` serves the login, the page, its
static files (Lightweight Charts vendored under ``static/vendor``) and the JSON API.
"""
