"""`python -m harness report`: run cases in every engine; write reports/results.json and reports/index.html."""
