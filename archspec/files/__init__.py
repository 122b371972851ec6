"""Files archspec writes: atomically, and never over a file it reads."""
