"""Video summaries: shots, their importance, a knapsack selection and the summary files."""
