"""`python -m brie_bench.testing.loopback`: serve the loopback from the command line (see `server.main`)."""

from brie_bench.testing.loopback.server import main

main()
