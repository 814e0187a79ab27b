from tokend.cli import main

main()
