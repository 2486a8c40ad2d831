from edgeward.cli.main import main

main()
