from brie_bench.cli import main

main()
