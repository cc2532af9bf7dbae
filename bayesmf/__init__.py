"""bayesmf."""
