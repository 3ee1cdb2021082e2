"""`python -m elasticthought` runs the command-line interface."""

from elasticthought.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
