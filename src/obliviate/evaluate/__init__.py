"""Per-item computation (teacher-forced scores, greedy generations) and aggregation."""
