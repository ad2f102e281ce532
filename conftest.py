"""Repository-wide pytest configuration.

The sdperf plugin itself is registered through its `pytest11` entry point, so it
works the same from any folder; here only what the repository's own tests need.
"""

# pytester runs the plugin the way users do; it must be enabled from the root conftest.
pytest_plugins = ["pytester"]
