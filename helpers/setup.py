"""`python -m helpers.setup`: the command the README names; the code is in `helpers.course.setup`."""
from helpers.course.setup import main

if __name__ == "__main__":
    raise SystemExit(main())
