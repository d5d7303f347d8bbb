from aitm.cli import main

main()
