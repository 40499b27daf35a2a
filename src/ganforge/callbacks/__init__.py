"""Lightning callbacks: sample grids, checkpoint policy, divergence guard."""
