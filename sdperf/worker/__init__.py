"""The worker process (child side only): loads a pipeline, applies a recipe, times generations; imports torch, never the host side."""
