"""Configuration as data: hardware profiles and their TOML, and the recipe registry."""
