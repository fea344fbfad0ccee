"""Read -> chunk -> embed -> backend.write (pipeline), and the same on Ray (ray)."""
