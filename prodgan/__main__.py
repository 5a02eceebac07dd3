from prodgan.cli import main

main()
