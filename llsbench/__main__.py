from llsbench.cli import main

main()
