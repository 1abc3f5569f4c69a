"""`python -m src.review`: the review report of a change (src/review/report.py)."""

from src.review.report import main

if __name__ == "__main__":
    main()
