"""``python -m buzon`` runs the command line."""

from buzon.cli.main import main

if __name__ == "__main__":
    main()
