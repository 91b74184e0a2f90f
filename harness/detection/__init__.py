"""Detection power: mutant ports, mutation score, lint, fuzzing, diagnosis of a disagreement, coverage."""
