from slmnode.cli import main

main()
