"""Exchange access through ccxt: the client factory and the errors callers handle."""
