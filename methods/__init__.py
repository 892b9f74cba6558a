"""Built-in learning rules of llsbench, registered through the `llsbench.methods` entry points."""
