"""Predictions per symbol: remote ML API, then local models, then neutral (step 3 of the cycle)."""
