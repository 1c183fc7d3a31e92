"""One module per paper: the method, its CONFIGS per scale, and what its chapter runs."""
