from features.cli import main

main()
