"""Accounts: sign-up."""
