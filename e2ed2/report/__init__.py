"""Report stage: metric JSONs → tidy table → tables, seaborn figures, claims report.

Modules: ``aggregate`` (JSONs → table.csv), ``ci`` (t-intervals over seed blocks), ``tables``
(CSV / Markdown / LaTeX), ``figures`` (PNG + PDF), ``grid`` (fixed-latent sample grid),
``claims`` (C1–C9 rules → verdicts), ``page`` (claims.md / claims.html). CLI: ``python -m e2ed2.report``.
"""
