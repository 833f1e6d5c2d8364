"""Graph passes: pure functions over Graphs (and from a Graph to a kernel schedule)."""
