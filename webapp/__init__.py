"""The web application: scores, render jobs, performances, accounts (one Django app)."""
