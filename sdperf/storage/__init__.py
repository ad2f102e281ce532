"""What is kept on disk: case results and their schema, saved runs and baselines, golden images."""
