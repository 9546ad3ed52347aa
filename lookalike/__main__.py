from lookalike.cli import main

main()
