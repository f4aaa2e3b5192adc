from oneedit.cli import main

main()
