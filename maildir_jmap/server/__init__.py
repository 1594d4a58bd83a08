"""The server room: the composition root, with no HTTP in it (server/server.py)."""
