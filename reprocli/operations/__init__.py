"""One module per user action: each takes a Project, returns a result and never prints."""
