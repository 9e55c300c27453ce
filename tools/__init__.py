"""Tools for authors and maintainers (not part of the installed package)."""
