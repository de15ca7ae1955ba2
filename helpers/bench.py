"""`python -m helpers.bench`: the command the README names; the code is in `helpers.measure.bench`."""
from helpers.measure.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
