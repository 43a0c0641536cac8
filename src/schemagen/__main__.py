from schemagen.cli.main import main

main()
