"""Static analysis passes over an expanded graph: costs, memory, receptive field, report."""
