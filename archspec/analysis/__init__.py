"""Static analysis over an expanded graph, numbers only: passes (costs, memory, receptive
field), counting conventions, the Analysis data, diff and sweep."""
