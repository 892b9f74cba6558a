"""Built-in suite files (YAML), found by name."""
