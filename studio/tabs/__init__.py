"""One module per tab: layout plus events that call ``backend.services`` (no engine logic here)."""
