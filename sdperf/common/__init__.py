"""What the pytest process and its workers both use: the message protocol, PNG metadata, the package stack."""
