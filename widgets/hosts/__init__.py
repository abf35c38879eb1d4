"""The servers that host the guide: each runs the same flow, engine and view."""
