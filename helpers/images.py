"""`python -m helpers.images`: the command the README names; the code is in `helpers.course.images`."""
from helpers.course.images import main

if __name__ == "__main__":
    raise SystemExit(main())
