"""Demo hosts and the demo task: a tiny related T5 pair and a sentiment task they can learn, built offline."""
