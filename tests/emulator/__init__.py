"""Local exchange emulators that ccxt talks to in tests instead of the network."""
