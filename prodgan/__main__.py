"""`python -m prodgan`: the same CLI as the `prodgan` command."""

from prodgan.cli import main

main()
