"""The read-only web dashboard: server-rendered HTML and inline SVG charts."""
