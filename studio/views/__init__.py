"""Pure renderers: plain data in, an HTML string or a plotly figure out (tests call them directly)."""
