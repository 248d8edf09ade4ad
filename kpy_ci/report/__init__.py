"""Reports of a replay (JUnit XML, GitHub Actions, console), all made from ``report.model``."""
