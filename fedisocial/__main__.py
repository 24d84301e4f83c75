from fedisocial.cli import main

main()
