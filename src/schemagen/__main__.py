from schemagen.cli import main

main()
