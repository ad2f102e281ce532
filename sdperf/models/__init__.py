"""Built-in models: their catalogue, seeded weights, offline tokenizers, the cache, and the builder."""
