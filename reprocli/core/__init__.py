"""Storage: objects, manifests, pointers, the stat cache and the workspace; knows nothing of commands."""
