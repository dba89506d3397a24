"""Accounts and tokens: passwords, access and refresh tokens, the current caller, guards."""
